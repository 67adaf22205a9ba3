//! Zone data: the records of a zone file in canonical order, the apex, and parsing.

use std::collections::BTreeMap;
use std::ops::Bound;

use ferrodns_plugin::proto::rr::rdata::{CNAME, HTTPS, MX, NS, SOA};
use ferrodns_plugin::proto::rr::{Name, RData, Record, RecordType};

/// A name's position in the zone: its labels from the right, lowercased, each followed by a dot
/// (CoreDNS's tree compares names this way).
pub type Key = Vec<Vec<u8>>;

/// The key of a name.
pub fn key(name: &Name) -> Key {
    let mut labels: Vec<Vec<u8>> = name
        .iter()
        .map(|l| {
            let mut v: Vec<u8> = l.iter().map(u8::to_ascii_lowercase).collect();
            v.push(b'.');
            v
        })
        .collect();
    labels.reverse();
    labels
}

/// Whether `child` is `parent` or below it.
pub fn is_subdomain(parent: &Name, child: &Name) -> bool {
    let p = key(parent);
    let c = key(child);
    c.starts_with(&p)
}

/// The records of one owner name.
#[derive(Debug, Clone)]
pub struct Elem {
    /// The owner name (of the first record inserted).
    pub name: Name,
    /// Records by type, in insertion order.
    pub rrs: Vec<(RecordType, Vec<Record>)>,
}

impl Elem {
    /// The records of a type (empty when there is none).
    pub fn get(&self, t: RecordType) -> &[Record] {
        self.rrs
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }

    /// The records of a type with their owner replaced by `qname` (wildcard expansion).
    pub fn for_wildcard(&self, t: RecordType, qname: &Name) -> Vec<Record> {
        self.get(t)
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.name = qname.clone();
                r
            })
            .collect()
    }
}

/// The non-apex records of a zone in canonical order.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    map: BTreeMap<Key, Elem>,
}

impl Tree {
    /// Add a record.
    pub fn insert(&mut self, r: Record) {
        let k = key(&r.name);
        let t = r.record_type();
        let e = self.map.entry(k).or_insert_with(|| Elem {
            name: r.name.clone(),
            rrs: Vec::new(),
        });
        match e.rrs.iter_mut().find(|(k, _)| *k == t) {
            Some((_, v)) => v.push(r),
            None => e.rrs.push((t, vec![r])),
        }
    }

    /// The element of exactly this name.
    pub fn search(&self, name: &Name) -> Option<&Elem> {
        self.map.get(&key(name))
    }

    /// The smallest element at or after `name`.
    pub fn next(&self, name: &Name) -> Option<(&Key, &Elem)> {
        self.map
            .range((Bound::Included(key(name)), Bound::Unbounded))
            .next()
    }

    /// The largest element at or before `name`.
    pub fn prev(&self, name: &Name) -> Option<&Elem> {
        self.map
            .range((Bound::Unbounded, Bound::Included(key(name))))
            .next_back()
            .map(|(_, e)| e)
    }

    /// Whether a name strictly below `name` exists, as CoreDNS tells it: the element following
    /// `name` is a descendant (false when `name` itself exists).
    pub fn has_descendant(&self, name: &Name) -> bool {
        let k = key(name);
        match self.next(name) {
            Some((x, _)) => *x != k && x.starts_with(&k),
            None => false,
        }
    }

    /// Glue for NS records: the A then AAAA records of each target that lies below the NS
    /// owner (with their signatures when `dnssec`).
    pub fn glue(&self, ns: &[Record], dnssec: bool) -> Vec<Record> {
        let mut out = Vec::new();
        for r in ns {
            if let RData::NS(NS(target)) = &r.data
                && is_subdomain(&r.name, target)
                && let Some(e) = self.search(target)
            {
                for t in [RecordType::A, RecordType::AAAA] {
                    out.extend(e.get(t).iter().cloned());
                    if dnssec {
                        out.extend(crate::dnssec::covering(e.get(RecordType::RRSIG), t));
                    }
                }
            }
        }
        out
    }

    /// The number of owner names.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// One zone's data.
#[derive(Debug, Clone)]
pub struct ZoneData {
    /// The origin (lowercased, fully qualified).
    pub origin: Name,
    /// The SOA record.
    pub soa: Option<Record>,
    /// The apex NS records.
    pub ns: Vec<Record>,
    /// The signatures of the SOA.
    pub sig_soa: Vec<Record>,
    /// The signatures of the apex NS records.
    pub sig_ns: Vec<Record>,
    /// Everything else.
    pub tree: Tree,
}

impl ZoneData {
    /// An empty zone (a file that could not be opened yet): every query is SERVFAIL.
    pub fn empty(origin: Name) -> Self {
        ZoneData {
            origin,
            soa: None,
            ns: Vec::new(),
            sig_soa: Vec::new(),
            sig_ns: Vec::new(),
            tree: Tree::default(),
        }
    }

    /// The SOA serial, if there is an SOA.
    pub fn serial(&self) -> Option<u32> {
        match self.soa.as_ref().map(|r| &r.data) {
            Some(RData::SOA(s)) => Some(s.serial),
            _ => None,
        }
    }

    /// Add a record as CoreDNS's `Zone.Insert` does (names lowercased except SRV owners, apex
    /// SOA and NS kept apart).
    pub fn insert(&mut self, mut r: Record) -> Result<(), String> {
        let t = r.record_type();
        if t != RecordType::SRV {
            r.name = r.name.to_lowercase();
        }
        r.data = match std::mem::replace(&mut r.data, RData::Update0(t)) {
            RData::NS(NS(n)) => RData::NS(NS(n.to_lowercase())),
            RData::SOA(s) => RData::SOA(SOA::new(
                s.mname.to_lowercase(),
                s.rname.to_lowercase(),
                s.serial,
                s.refresh,
                s.retry,
                s.expire,
                s.minimum,
            )),
            RData::CNAME(CNAME(n)) => RData::CNAME(CNAME(n.to_lowercase())),
            RData::MX(m) => RData::MX(MX::new(m.preference, m.exchange.to_lowercase())),
            RData::SVCB(mut s) => {
                s.target_name = s.target_name.to_lowercase();
                RData::SVCB(s)
            }
            RData::HTTPS(HTTPS(mut s)) => {
                s.target_name = s.target_name.to_lowercase();
                RData::HTTPS(HTTPS(s))
            }
            other => other,
        };
        match t {
            RecordType::NS if key(&r.name) == key(&self.origin) => {
                self.ns.push(r);
                return Ok(());
            }
            RecordType::SOA => {
                self.soa = Some(r);
                return Ok(());
            }
            RecordType::RRSIG => match crate::dnssec::covered(&r) {
                Some(RecordType::SOA) => {
                    self.sig_soa.push(r);
                    return Ok(());
                }
                Some(RecordType::NS) if key(&r.name) == key(&self.origin) => {
                    self.sig_ns.push(r);
                    return Ok(());
                }
                _ => {}
            },
            RecordType::NSEC3 | RecordType::NSEC3PARAM => {
                return Err(format!(
                    "NSEC3 zone is not supported, dropping RR: {} for zone: {}",
                    r.name, self.origin
                ));
            }
            _ => {}
        }
        self.tree.insert(r);
        Ok(())
    }
}

/// Why a zone file was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The SOA serial is the one given: nothing to do (not logged on reload).
    SameSerial(String),
    /// Anything else, with its text.
    Other(String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::SameSerial(s) | ParseError::Other(s) => f.write_str(s),
        }
    }
}

/// Parse zone file text for `origin` (`file` names it in errors and resolves `$INCLUDE`). With
/// `serial`, a zone whose SOA has that serial is refused with [`ParseError::SameSerial`].
pub fn parse(
    text: &str,
    origin: &Name,
    file: &str,
    serial: Option<u32>,
) -> Result<ZoneData, ParseError> {
    let origin_text = origin.to_string();
    let records = crate::master::Reader::read(text, origin, file).map_err(|e| {
        ParseError::Other(format!(
            "failed to parse file \"{file}\" for origin {origin_text} with error {e}"
        ))
    })?;
    let mut z = ZoneData::empty(origin.to_lowercase());
    let soa_serial = records.iter().find_map(|r| match &r.data {
        RData::SOA(s) => Some(s.serial),
        _ => None,
    });
    let Some(found) = soa_serial else {
        return Err(ParseError::Other(format!(
            "file \"{file}\" has no SOA record for origin {origin_text}"
        )));
    };
    if let Some(s) = serial
        && s == found
    {
        return Err(ParseError::SameSerial(format!(
            "no change in SOA serial for origin {origin_text} in file {file}, with {s} SOA serial"
        )));
    }
    for r in records {
        z.insert(r).map_err(ParseError::Other)?;
    }
    Ok(z)
}

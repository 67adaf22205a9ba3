//! The authoritative lookup of CoreDNS's *file* plugin: exact names, CNAME chasing inside the
//! zone (and through the server for names outside it), wildcards, DNAME, delegations with glue,
//! and NXDOMAIN/NODATA with the SOA.

use ferrodns_plugin::Request;
use ferrodns_plugin::proto::op::ResponseCode;
use ferrodns_plugin::proto::rr::rdata::CNAME;
use ferrodns_plugin::proto::rr::{Name, RData, Record, RecordType};

use crate::dnssec::covering;
use crate::zone::{Elem, Tree, ZoneData, is_subdomain, key};

/// How a lookup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer (possibly empty: an empty non-terminal).
    Success,
    /// The name does not exist.
    NameError,
    /// A referral to a delegated child.
    Delegation,
    /// The name exists without records of the type.
    NoData,
    /// The lookup failed.
    ServerFailure,
}

/// Answer, authority, additional and outcome.
pub type Sections = (Vec<Record>, Vec<Record>, Vec<Record>, Outcome);

/// Something that resolves names outside the zone (the server, through the request).
pub trait Upstream {
    /// Resolve `name`/`qtype`: the reply's rcode and answer, or `None` on failure.
    fn resolve(
        &self,
        name: Name,
        qtype: RecordType,
    ) -> impl std::future::Future<Output = Option<(ResponseCode, Vec<Record>)>> + Send;

    /// Note the owner of the wildcard that synthesised the answer (CoreDNS's `zone/wildcard`
    /// metadata label). The default ignores it.
    fn wildcard(&self, _owner: &Name) {}
}

impl Upstream for Request {
    async fn resolve(&self, name: Name, qtype: RecordType) -> Option<(ResponseCode, Vec<Record>)> {
        let m = self.lookup(name, qtype).await.ok()?;
        Some((m.metadata.response_code, m.answers))
    }
}

/// The name made of the origin plus `i` more labels of `qname` from the right; `None` when
/// that is more labels than `qname` has.
fn name_from_right(z: &ZoneData, qname: &Name, i: usize) -> Option<Name> {
    if i == 0 {
        return Some(z.origin.clone());
    }
    let want = labels(&z.origin) + i;
    if want > labels(qname) {
        return None;
    }
    Some(qname.trim_to(want))
}

/// `*.` and the name without its first label, if it has more than one label.
fn wildcard_of(name: &Name) -> Option<Name> {
    if labels(name) < 2 {
        return None;
    }
    name.base_name().prepend_label("*").ok()
}

fn sigs(elem: &Elem, t: RecordType) -> Vec<Record> {
    covering(elem.get(RecordType::RRSIG), t)
}

/// Records of a type, with their signatures when `dnssec`.
fn type_from_elem(elem: &Elem, t: RecordType, dnssec: bool) -> Vec<Record> {
    let mut rrs = elem.get(t).to_vec();
    if dnssec {
        rrs.extend(sigs(elem, t));
    }
    rrs
}

fn delegation_from_elem(
    tr: &Tree,
    elem: &Elem,
    qname: &Name,
    qtype: RecordType,
    dnssec: bool,
) -> Option<(Vec<Record>, Vec<Record>)> {
    let ns = elem.get(RecordType::NS);
    if ns.is_empty() || (qtype == RecordType::DS && key(&elem.name) == key(qname)) {
        return None;
    }
    let extra = tr.glue(ns, dnssec);
    let mut ns = ns.to_vec();
    if dnssec {
        ns.extend(type_from_elem(elem, RecordType::DS, true));
    }
    Some((ns, extra))
}

fn find_delegation(
    z: &ZoneData,
    qname: &Name,
    qtype: RecordType,
    dnssec: bool,
    exact: Option<&Elem>,
) -> Option<(Vec<Record>, Vec<Record>)> {
    let mut i = 1;
    loop {
        let name = name_from_right(z, qname, i)?;
        if key(&name) == key(qname) {
            return exact.and_then(|e| delegation_from_elem(&z.tree, e, qname, qtype, dnssec));
        }
        if let Some(e) = z.tree.search(&name)
            && let Some(d) = delegation_from_elem(&z.tree, e, qname, qtype, dnssec)
        {
            return Some(d);
        }
        i += 1;
    }
}

fn closer_ent_exists(tr: &Tree, qname: &Name, wildcard: &Name) -> bool {
    if !wildcard.is_wildcard() {
        return false;
    }
    let parent = wildcard.base_name();
    let mut name = qname.clone();
    while labels(&name) > 0 {
        name = name.base_name();
        if key(&name) == key(&parent) || !is_subdomain(&parent, &name) {
            return false;
        }
        if tr.has_descendant(&name) {
            return true;
        }
    }
    false
}

/// The A and AAAA records (and their signatures when `dnssec`) of in-zone targets of SRV, MX,
/// SVCB and HTTPS answers.
pub fn additional(z: &ZoneData, answer: &[Record], dnssec: bool) -> Vec<Record> {
    let mut extra = Vec::new();
    let mut seen: Vec<Vec<Vec<u8>>> = Vec::new();
    for r in answer {
        let target = match &r.data {
            RData::SRV(s) => &s.target,
            RData::MX(m) => &m.exchange,
            RData::SVCB(s) => &s.target_name,
            RData::HTTPS(h) => &h.0.target_name,
            _ => continue,
        };
        if !is_subdomain(&z.origin, target) {
            continue;
        }
        let k = key(target);
        if seen.contains(&k) {
            continue;
        }
        seen.push(k);
        if let Some(e) = z.tree.search(target) {
            for t in [RecordType::A, RecordType::AAAA] {
                if !e.get(t).is_empty() {
                    extra.extend(type_from_elem(e, t, dnssec));
                }
            }
        }
    }
    extra
}

/// The SOA (and its signatures when `dnssec`).
fn soa(z: &ZoneData, dnssec: bool) -> Vec<Record> {
    let mut out: Vec<Record> = z.soa.iter().cloned().collect();
    if dnssec {
        out.extend(z.sig_soa.iter().cloned());
    }
    out
}

/// The apex NS records (and their signatures when `dnssec`).
fn ns(z: &ZoneData, dnssec: bool) -> Vec<Record> {
    let mut out = z.ns.clone();
    if dnssec {
        out.extend(z.sig_ns.iter().cloned());
    }
    out
}

fn authority(z: &ZoneData, outcome: Outcome, dnssec: bool) -> Vec<Record> {
    match outcome {
        Outcome::NameError | Outcome::NoData => soa(z, dnssec),
        _ => ns(z, dnssec),
    }
}

async fn do_lookup<U: Upstream + Sync>(
    up: &U,
    target: &Name,
    qtype: RecordType,
) -> (Vec<Record>, Outcome) {
    match up.resolve(target.clone(), qtype).await {
        None => (Vec::new(), Outcome::ServerFailure),
        Some((ResponseCode::NXDomain, a)) => (a, Outcome::NameError),
        Some((ResponseCode::ServFail, a)) => (a, Outcome::ServerFailure),
        Some((ResponseCode::NoError, a)) if a.is_empty() => (a, Outcome::NoData),
        Some((_, a)) => (a, Outcome::Success),
    }
}

/// Follow a CNAME (`rrs`, found at `elem`) inside the zone, then through the server for
/// targets outside it.
async fn external_lookup<U: Upstream + Sync>(
    z: &ZoneData,
    up: &U,
    qtype: RecordType,
    dnssec: bool,
    elem: &Elem,
    mut rrs: Vec<Record>,
) -> Sections {
    let mut target = match rrs.first().map(|r| &r.data) {
        Some(RData::CNAME(CNAME(t))) => t.clone(),
        _ => return (rrs, ns(z, dnssec), Vec::new(), Outcome::Success),
    };
    if dnssec {
        rrs.extend(sigs(elem, RecordType::CNAME));
    }
    let mut i = 0;
    loop {
        let elem = z.tree.search(&target);
        if let Some((ns, extra)) = find_delegation(z, &target, qtype, dnssec, elem) {
            return (rrs, ns, extra, Outcome::Delegation);
        }
        let elem = match elem {
            Some(e)
                if !(qtype == RecordType::NS
                    || (qtype == RecordType::SOA && key(&target) == key(&z.origin))) =>
            {
                e
            }
            _ => {
                let (found, outcome) = do_lookup(up, &target, qtype).await;
                rrs.extend(found);
                let extra = additional(z, &rrs, dnssec);
                return (rrs, authority(z, outcome, dnssec), extra, outcome);
            }
        };
        let cname = elem.get(RecordType::CNAME);
        if cname.is_empty() {
            let targets = elem.get(qtype);
            if !targets.is_empty() {
                rrs.extend(type_from_elem(elem, qtype, dnssec));
            }
            let extra = additional(z, &rrs, dnssec);
            return (rrs, ns(z, dnssec), extra, Outcome::Success);
        }
        rrs.extend(type_from_elem(elem, RecordType::CNAME, dnssec));
        target = match &cname[0].data {
            RData::CNAME(CNAME(t)) => t.clone(),
            _ => target,
        };
        i += 1;
        if i > 8 {
            let extra = additional(z, &rrs, dnssec);
            return (rrs, ns(z, dnssec), extra, Outcome::Success);
        }
    }
}

/// The DNAME substitution of `qname` (strictly below `owner`), if it makes a valid name.
fn substitute(qname: &Name, owner: &Name, target: &Name) -> Option<Name> {
    if !is_subdomain(owner, qname) || key(qname) == key(owner) {
        return None;
    }
    let keep = labels(qname) - labels(owner);
    let front: Vec<Vec<u8>> = qname.iter().take(keep).map(|l| l.to_vec()).collect();
    let prefix = Name::from_labels(front).ok()?;
    let mut out = prefix.append_name(target).ok()?;
    out.set_fqdn(true);
    Some(out)
}

/// Look `qname` (lowercased) up in the zone; `dnssec` is the query's DO bit.
pub async fn lookup<U: Upstream + Sync>(
    z: &ZoneData,
    up: &U,
    qname: &Name,
    qtype: RecordType,
    dnssec: bool,
) -> Sections {
    if z.soa.is_none() {
        return (vec![], vec![], vec![], Outcome::ServerFailure);
    }
    let tr = &z.tree;
    if key(qname) == key(&z.origin) {
        match qtype {
            RecordType::SOA => return (soa(z, dnssec), ns(z, dnssec), vec![], Outcome::Success),
            RecordType::NS => {
                let nsrrs = ns(z, dnssec);
                let glue = tr.glue(&nsrrs, dnssec);
                return (nsrrs, vec![], glue, Outcome::Success);
            }
            _ => {}
        }
    }

    let mut found: Option<&Elem> = None;
    let mut wild_name: Option<Name> = None;
    let mut wild_elem: Option<&Elem> = None;
    let mut i = 0;
    while let Some(parts) = name_from_right(z, qname, i) {
        let Some(elem) = tr.search(&parts) else {
            found = None;
            if let Some(w) = wildcard_of(&parts) {
                if let Some(e) = tr.search(&w) {
                    wild_elem = Some(e);
                    wild_name = Some(e.name.clone());
                } else if tr.has_descendant(&w) {
                    wild_elem = None;
                    wild_name = Some(w);
                }
            }
            i += 1;
            continue;
        };
        found = Some(elem);
        if let Some(d) = elem.get(RecordType::DNAME).first()
            && let Some(dtarget) = crate::master::dname_target(d)
            && let Some(new) = substitute(qname, &d.name, &dtarget)
        {
            if key(&new) == key(qname) {
                return (vec![], vec![], vec![], Outcome::ServerFailure);
            }
            let mut cname = Record::from_rdata(qname.clone(), d.ttl, RData::CNAME(CNAME(new)));
            cname.dns_class = d.dns_class;
            let (answer, ns, extra, outcome) = if qtype == RecordType::CNAME {
                (vec![cname], ns(z, dnssec), vec![], Outcome::Success)
            } else {
                Box::pin(external_lookup(z, up, qtype, dnssec, elem, vec![cname])).await
            };
            let mut all = type_from_elem(elem, RecordType::DNAME, dnssec);
            all.extend(answer);
            return (all, ns, extra, outcome);
        }
        if let Some((ns, glue)) = delegation_from_elem(tr, elem, qname, qtype, dnssec) {
            return (vec![], ns, glue, Outcome::Delegation);
        }
        i += 1;
    }

    if let Some(elem) = found {
        let cname = elem.get(RecordType::CNAME);
        if !cname.is_empty() && qtype != RecordType::CNAME {
            return Box::pin(external_lookup(z, up, qtype, dnssec, elem, cname.to_vec())).await;
        }
        if elem.get(qtype).is_empty() {
            let mut auth = soa(z, dnssec);
            if dnssec {
                auth.extend(type_from_elem(elem, RecordType::NSEC, true));
            }
            return (vec![], auth, vec![], Outcome::NoData);
        }
        let rrs = type_from_elem(elem, qtype, dnssec);
        let extra = additional(z, elem.get(qtype), dnssec);
        return (rrs, ns(z, dnssec), extra, Outcome::Success);
    }

    if let Some(w) = &wild_name
        && !closer_ent_exists(tr, qname, w)
    {
        let Some(we) = wild_elem else {
            return (vec![], soa(z, dnssec), vec![], Outcome::NoData);
        };
        up.wildcard(&we.name);
        let cname = we.for_wildcard(RecordType::CNAME, qname);
        if !cname.is_empty() && qtype != RecordType::CNAME {
            return Box::pin(external_lookup(z, up, qtype, dnssec, we, cname)).await;
        }
        let mut rrs = we.for_wildcard(qtype, qname);
        if rrs.is_empty() {
            let mut auth = soa(z, dnssec);
            if dnssec {
                auth.extend(type_from_elem(we, RecordType::NSEC, true));
            }
            return (vec![], auth, vec![], Outcome::NoData);
        }
        let extra = additional(z, &rrs, dnssec);
        let mut auth = ns(z, dnssec);
        if dnssec {
            if let Some(deny) = tr.prev(qname) {
                auth.extend(type_from_elem(deny, RecordType::NSEC, true));
            }
            rrs.extend(covering(&we.for_wildcard(RecordType::RRSIG, qname), qtype));
        }
        return (rrs, auth, extra, Outcome::Success);
    }

    let outcome = if tr.has_descendant(qname) {
        Outcome::Success
    } else {
        Outcome::NameError
    };
    let mut auth = soa(z, dnssec);
    if dnssec && let Some(deny) = tr.prev(qname) {
        auth.extend(type_from_elem(deny, RecordType::NSEC, true));
        if outcome == Outcome::NameError
            && let Some(ce) = closest_encloser(z, qname)
            && let Ok(wildcard) = ce.name.prepend_label("*")
            && let Some(ss) = tr.prev(&wildcard)
            && key(&ss.name) != key(&deny.name)
        {
            auth.extend(type_from_elem(ss, RecordType::NSEC, true));
        }
    }
    (vec![], auth, vec![], outcome)
}

/// The closest existing ancestor of `qname` (the apex element at worst).
fn closest_encloser<'a>(z: &'a ZoneData, qname: &Name) -> Option<&'a Elem> {
    let mut name = qname.clone();
    while labels(&name) > 1 {
        if let Some(e) = z.tree.search(&name) {
            return Some(e);
        }
        name = name.base_name();
    }
    z.tree.search(&z.origin)
}

/// The number of labels of a name, a leading `*` included (hickory's `num_labels` leaves it
/// out).
fn labels(name: &Name) -> usize {
    name.iter().count()
}

//! Hand-off: the entries of both caches passed to the process that takes over this one's
//! sockets, and taken in again there under the new cache's own bounds.
//!
//! The state is ours alone (the predecessor is some ferrodns):
//!
//! ```text
//! "FDC" VERSION(b'1') EXPORT_UNIX_MS(u64)  then records: LEN(u32) BODY(LEN bytes)
//! BODY  = 0|1 (success|denial) KEY(u64) ENTRY  |  2 LISTENER-LABEL(utf-8, rest of the body)
//! ENTRY = FLAGS(u8) ORIG_TTL(u32) AGE_MS(u64) HITS(u64) LAST_HIT_AGE_MS(u64)
//!         [WILDCARD_LEN(u16) WILDCARD] WIRE_LEN(u16) WIRE [ENTRY (the last known good one)]
//! ```
//!
//! Integers are big-endian. Ages are taken at export; the importer adds the wall-clock time
//! between export and import. Everything else an entry holds (question, TTL offsets, rcode,
//! AD, RA) is read again from its wire bytes, which also checks them.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ferrodns_plugin::proto::op::Message;
use ferrodns_plugin::wire::{HEADER_LEN, WireHeader};
use tokio::time::Instant;

use crate::Cache;
use crate::entry::{self, Entry, Freq, Kind, PackedWire};

/// The first bytes of a state; the byte after them is the version.
pub const MAGIC: &[u8; 3] = b"FDC";
/// The version this code writes and reads.
pub const VERSION: u8 = b'1';

const HEADER: usize = 4 + 8;
const KIND_SUCCESS: u8 = 0;
const KIND_DENIAL: u8 = 1;
const KIND_LABEL: u8 = 2;
const F_ANSWERING: u8 = 1;
const F_WILDCARD: u8 = 2;
const F_LAST_GOOD: u8 = 4;
/// At most this many listener labels are taken in (each makes metric series).
const MAX_LABELS: usize = 64;

/// Why (part of) a state was not taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffError {
    /// It does not start with our magic.
    NotOurs,
    /// Another version of the format.
    UnknownVersion(u8),
    /// It ends inside the header or a record's frame; the rest was ignored.
    Truncated,
    /// A record did not parse or failed its checks; it was skipped.
    Malformed,
}

impl fmt::Display for HandoffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandoffError::NotOurs => f.write_str("not a cache hand-off state"),
            HandoffError::UnknownVersion(v) => {
                write!(f, "unknown cache hand-off version {v:#04x}")
            }
            HandoffError::Truncated => f.write_str("cache hand-off state is truncated"),
            HandoffError::Malformed => f.write_str("malformed cache hand-off record"),
        }
    }
}

impl std::error::Error for HandoffError {}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Entries added to the success cache.
    pub success: usize,
    /// Entries added to the denial cache.
    pub denial: usize,
    /// Entry records left out: expired, outside the zones, disabled, malformed, or their key
    /// already held.
    pub skipped: usize,
    /// The first problem met in the state, if any.
    pub error: Option<HandoffError>,
}

impl Imported {
    fn note(&mut self, e: HandoffError) {
        self.error.get_or_insert(e);
    }
}

/// Milliseconds from `earlier` to `now` (0 when it is in the future).
fn age_ms(now: Instant, earlier: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(earlier).as_millis()).unwrap_or(u64::MAX)
}

/// Append `e` to `out`; false (with `out` as it may be half-written) when it cannot be
/// written. The last known good entry is written only at the outer level.
fn write_entry(out: &mut Vec<u8>, e: &Entry, now: Instant, outer: bool) -> bool {
    let Ok(wire_len) = u16::try_from(e.wire.msg().len()) else {
        return false;
    };
    let wildcard = e
        .wildcard
        .as_deref()
        .and_then(|w| u16::try_from(w.len()).ok().map(|n| (n, w)));
    let last_good = e.last_known_good.as_deref().filter(|_| outer);
    let mut flags = 0;
    if e.answering {
        flags |= F_ANSWERING;
    }
    if wildcard.is_some() {
        flags |= F_WILDCARD;
    }
    if last_good.is_some() {
        flags |= F_LAST_GOOD;
    }
    let (last_hit, hits) = (e.last_hit(), e.hits());
    out.push(flags);
    out.extend_from_slice(&e.orig_ttl.to_be_bytes());
    out.extend_from_slice(&age_ms(now, e.stored).to_be_bytes());
    out.extend_from_slice(&hits.to_be_bytes());
    out.extend_from_slice(&age_ms(now, last_hit).to_be_bytes());
    if let Some((n, w)) = wildcard {
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(w.as_bytes());
    }
    out.extend_from_slice(&wire_len.to_be_bytes());
    out.extend_from_slice(e.wire.msg());
    match last_good {
        Some(l) => write_entry(out, l, now, false),
        None => true,
    }
}

/// Start a record's frame; returns where its length goes.
fn open_frame(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    at
}

/// Close the frame opened at `at`, or drop it when it could not be written whole.
fn close_frame(out: &mut Vec<u8>, at: usize, ok: bool) {
    let len = out.len() - at - 4;
    match u32::try_from(len) {
        Ok(n) if ok => out[at..at + 4].copy_from_slice(&n.to_be_bytes()),
        _ => out.truncate(at),
    }
}

/// A cursor over untrusted bytes: every read is checked.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HandoffError> {
        if self.b.len() < n {
            return Err(HandoffError::Malformed);
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], HandoffError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, HandoffError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, HandoffError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, HandoffError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, HandoffError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

/// An entry as read, not yet checked against the wire or the configuration.
struct Raw<'a> {
    answering: bool,
    orig_ttl: u32,
    age_ms: u64,
    hits: u64,
    last_hit_age_ms: u64,
    wildcard: Option<&'a str>,
    wire: &'a [u8],
    last_good: Option<Box<Raw<'a>>>,
}

fn read_entry<'a>(r: &mut Reader<'a>, outer: bool) -> Result<Raw<'a>, HandoffError> {
    let flags = r.u8()?;
    if flags & !(F_ANSWERING | F_WILDCARD | F_LAST_GOOD) != 0
        || (!outer && flags & F_LAST_GOOD != 0)
    {
        return Err(HandoffError::Malformed);
    }
    let orig_ttl = r.u32()?;
    let age_ms = r.u64()?;
    let hits = r.u64()?;
    let last_hit_age_ms = r.u64()?;
    let wildcard = if flags & F_WILDCARD != 0 {
        let n = usize::from(r.u16()?);
        let w = std::str::from_utf8(r.take(n)?).map_err(|_| HandoffError::Malformed)?;
        Some(w)
    } else {
        None
    };
    let n = usize::from(r.u16()?);
    let wire = r.take(n)?;
    let last_good = if flags & F_LAST_GOOD != 0 {
        Some(Box::new(read_entry(r, false)?))
    } else {
        None
    };
    Ok(Raw {
        answering: flags & F_ANSWERING != 0,
        orig_ttl,
        age_ms,
        hits,
        last_hit_age_ms,
        wildcard,
        wire,
        last_good,
    })
}

/// The length of an uncompressed name at `pos` of `b` (the form the cache stores questions in).
fn plain_name_len(b: &[u8], pos: usize) -> Option<usize> {
    let mut at = pos;
    loop {
        let len = usize::from(*b.get(at)?);
        if len > 63 {
            return None;
        }
        at += 1 + len;
        if at - pos > 255 {
            return None;
        }
        if len == 0 {
            return Some(at - pos);
        }
    }
}

/// What the wire bytes of an entry say about it.
struct WireFacts {
    qname_len: u16,
    qtype: u16,
    qclass: u16,
    rcode: u8,
    ad: bool,
    ra: bool,
    offsets: Vec<u16>,
}

/// Read an entry's facts from its bytes, checking that they are what the cache stores: one
/// question with an uncompressed name, records that end exactly at the end.
fn wire_facts(wire: &[u8]) -> Option<WireFacts> {
    let h = WireHeader::read(wire)?;
    if h.qdcount != 1 {
        return None;
    }
    let qname_len = plain_name_len(wire, HEADER_LEN)?;
    let at = HEADER_LEN + qname_len;
    let tc = wire.get(at..at + 4)?;
    let offsets = entry::ttl_offsets(wire)?;
    // The walk above checks the records' frames only; a full decode also checks what is inside
    // them, so that a damaged state cannot make the cache send undecodable replies.
    Message::from_vec(wire).ok()?;
    Some(WireFacts {
        qname_len: u16::try_from(qname_len).ok()?,
        qtype: u16::from_be_bytes([tc[0], tc[1]]),
        qclass: u16::from_be_bytes([tc[2], tc[3]]),
        rcode: (h.flags & 0xf) as u8,
        ad: h.flags & 0x0020 != 0,
        ra: h.flags & 0x0080 != 0,
        offsets,
    })
}

/// The largest TTL this cache gives an entry of `kind` with `rcode` (zero: not cached).
fn ttl_cap(cache: &Cache, kind: Kind, rcode: u8) -> Duration {
    match kind {
        Kind::Success => cache.cfg.pttl,
        // SERVFAIL and NOTIMP are cached for `servfail`, the other denials up to the maximum.
        Kind::Denial if rcode == 2 || rcode == 4 => cache.cfg.failttl,
        Kind::Denial => cache.cfg.nttl,
    }
}

/// Rebuild an entry at `now`, `gap_ms` after its export: its age grows by the gap, its TTL is
/// clamped to `cap` (the original TTL lowered to the cap, the remaining TTL with it when
/// above), and it must still be one this cache could serve.
fn restore(
    cache: &Cache,
    raw: &Raw<'_>,
    facts: WireFacts,
    cap: Duration,
    last_known_good: Option<Arc<Entry>>,
    gap_ms: u64,
    now: Instant,
) -> Option<Entry> {
    let cap = u32::try_from(cap.as_secs()).unwrap_or(u32::MAX);
    if cap == 0 {
        return None;
    }
    let orig_ttl = raw.orig_ttl.min(cap);
    let age = i128::from(raw.age_ms) + i128::from(gap_ms);
    let left = i128::from(raw.orig_ttl) * 1000 - age;
    let full = i128::from(orig_ttl) * 1000;
    let age = u64::try_from(full - left.min(full)).ok()?;
    // The monotonic clock is older than any entry of a process that ran on this machine; an
    // age it cannot go back by is not one of those.
    let stored = now.checked_sub(Duration::from_millis(age))?;
    let last_hit_age = raw.last_hit_age_ms.saturating_add(gap_ms);
    let last_hit = now
        .checked_sub(Duration::from_millis(last_hit_age))
        .unwrap_or(stored);
    let e = Entry {
        wire: PackedWire::new(raw.wire, &facts.offsets),
        qname_len: facts.qname_len,
        qtype: facts.qtype,
        qclass: facts.qclass,
        rcode: facts.rcode,
        ad: facts.ad,
        ra: facts.ra,
        orig_ttl,
        stored,
        answering: raw.answering,
        last_known_good,
        wildcard: raw.wildcard.map(Into::into),
        freq: Freq::new(stored, last_hit, raw.hits),
        refreshing: Default::default(),
        // A back-off after a failed refresh is not passed on: the successor may try once early.
        retry_after_ms: Default::default(),
    };
    cache.servable(&e, now).then_some(e)
}

impl Cache {
    /// The hand-off state: every entry this cache could serve now (fresh, or stale within the
    /// `serve_stale` window) of both caches, and the listener labels it counts under.
    /// `unix_ms` is the wall-clock time of the export.
    pub fn export_state(&self, unix_ms: u64) -> Vec<u8> {
        let now = Instant::now();
        let success = self.pcache.snapshot();
        let denial = self.ncache.snapshot();
        let mut out = Vec::with_capacity(
            HEADER
                + success
                    .iter()
                    .chain(&denial)
                    .map(|(_, e)| 4 + 1 + 8 + 33 + 2 + e.wire.msg().len())
                    .sum::<usize>(),
        );
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&unix_ms.to_be_bytes());
        {
            let list = match self.servers.read() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            for (label, _) in list.iter().take(MAX_LABELS) {
                let at = open_frame(&mut out);
                out.push(KIND_LABEL);
                out.extend_from_slice(label.as_bytes());
                close_frame(&mut out, at, true);
            }
        }
        for (kind, list) in [(KIND_SUCCESS, success), (KIND_DENIAL, denial)] {
            for (key, e) in list {
                if !self.servable(&e, now) {
                    continue;
                }
                let at = open_frame(&mut out);
                out.push(kind);
                out.extend_from_slice(&key.to_be_bytes());
                let ok = write_entry(&mut out, &e, now, true);
                close_frame(&mut out, at, ok);
            }
        }
        out
    }

    /// Take in a hand-off state at wall-clock time `unix_ms`. Nothing in it can make this
    /// cache exceed its capacity (the stores evict as for any insert), its TTL caps, its zones
    /// or its `disable` settings; what does not parse is skipped. Counts no hit, miss or
    /// eviction; the entries gauges show the new sizes.
    pub fn import_state(&self, state: &[u8], unix_ms: u64) -> Imported {
        let mut done = Imported::default();
        let Some(head) = state.get(..HEADER) else {
            done.note(if state.starts_with(&MAGIC[..state.len().min(3)]) {
                HandoffError::Truncated
            } else {
                HandoffError::NotOurs
            });
            return done;
        };
        if &head[..3] != MAGIC {
            done.note(HandoffError::NotOurs);
            return done;
        }
        if head[3] != VERSION {
            done.note(HandoffError::UnknownVersion(head[3]));
            return done;
        }
        let mut exported = [0u8; 8];
        exported.copy_from_slice(&head[4..HEADER]);
        // A wall clock set back since the export counts as no time passed.
        let gap_ms = unix_ms.saturating_sub(u64::from_be_bytes(exported));
        let now = Instant::now();
        let mut labels = 0;
        let mut rest = &state[HEADER..];
        while !rest.is_empty() {
            let Some(len) = rest.get(..4) else {
                done.note(HandoffError::Truncated);
                break;
            };
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let Some(body) = rest.get(4..4usize.saturating_add(len)) else {
                done.note(HandoffError::Truncated);
                break;
            };
            rest = &rest[4 + len..];
            match body.first() {
                Some(&KIND_LABEL) => {
                    if labels < MAX_LABELS
                        && let Ok(label) = std::str::from_utf8(&body[1..])
                    {
                        labels += 1;
                        self.metrics_for(&Arc::from(label));
                    }
                }
                _ => match self.import_record(body, gap_ms, now) {
                    Ok(Some(Kind::Success)) => done.success += 1,
                    Ok(Some(Kind::Denial)) => done.denial += 1,
                    Ok(None) => done.skipped += 1,
                    Err(e) => {
                        done.skipped += 1;
                        done.note(e);
                    }
                },
            }
        }
        self.handed_off.store(true, Ordering::Relaxed);
        let list = match self.servers.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for (_, m) in list.iter() {
            m.entries_success.set(self.pcache.len() as i64);
            m.entries_denial.set(self.ncache.len() as i64);
        }
        done
    }

    /// One entry record: the cache it went to, `None` when it was left out.
    fn import_record(
        &self,
        body: &[u8],
        gap_ms: u64,
        now: Instant,
    ) -> Result<Option<Kind>, HandoffError> {
        let mut r = Reader { b: body };
        let kind = match r.u8()? {
            KIND_SUCCESS => Kind::Success,
            KIND_DENIAL => Kind::Denial,
            _ => return Err(HandoffError::Malformed),
        };
        let key = r.u64()?;
        let raw = read_entry(&mut r, true)?;
        if !r.b.is_empty() {
            return Err(HandoffError::Malformed);
        }
        let facts = wire_facts(raw.wire).ok_or(HandoffError::Malformed)?;
        let rcode_fits = match kind {
            Kind::Success => facts.rcode == 0,
            Kind::Denial => matches!(facts.rcode, 0 | 2 | 3 | 4),
        };
        if !rcode_fits {
            return Err(HandoffError::Malformed);
        }
        let qname = &raw.wire[HEADER_LEN..HEADER_LEN + usize::from(facts.qname_len)];
        // The key is the hash of the question and the query's DO and CD bits, which the entry
        // does not keep: it must be one of the four this question can have.
        let key_fits = [(false, false), (true, false), (false, true), (true, true)]
            .iter()
            .any(|&(d, c)| entry::key(qname, facts.qtype, facts.qclass, d, c) == key);
        if !key_fits {
            return Err(HandoffError::Malformed);
        }
        let (store, except) = match kind {
            Kind::Success => (&self.pcache, &self.pexcept),
            Kind::Denial => (&self.ncache, &self.nexcept),
        };
        if !entry::in_zones(qname, &self.zones) || entry::in_zones(qname, except) {
            return Ok(None);
        }
        // What this process cached itself is newer than what it is handed.
        if store.get(key).is_some() {
            return Ok(None);
        }
        // The last known good answer is only looked at under `prefer_positive`.
        let last_good = match (&raw.last_good, kind) {
            (Some(l), Kind::Success) if self.cfg.prefer_positive && l.answering => {
                wire_facts(l.wire).and_then(|f| {
                    let cap = ttl_cap(self, Kind::Success, f.rcode);
                    restore(self, l, f, cap, None, gap_ms, now).map(Arc::new)
                })
            }
            _ => None,
        };
        let cap = ttl_cap(self, kind, facts.rcode);
        let Some(e) = restore(self, &raw, facts, cap, last_good, gap_ms, now) else {
            return Ok(None);
        };
        store.add(key, Arc::new(e));
        Ok(Some(kind))
    }
}

//! Cache entries in wire format: the stored reply's bytes (header, question, records; no OPT)
//! with the offsets of every record's TTL, and the code that turns an entry back into a reply
//! for a client by patching a copy (ID, flags, the client's question name, TTLs).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use ferrodns_plugin::proto::op::Message;
use ferrodns_plugin::proto::serialize::binary::{BinEncodable, BinEncoder};
use ferrodns_plugin::wire::{HEADER_LEN, WireHeader, skip_name};
use tokio::time::Instant;

/// Which of the two caches an entry lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Positive answers and delegations.
    Success,
    /// NXDOMAIN, NODATA, SERVFAIL and NOTIMP.
    Denial,
}

impl Kind {
    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Success => "success",
            Kind::Denial => "denial",
        }
    }
}

/// One cached reply.
#[derive(Debug)]
pub struct Entry {
    /// Header (ID 0) + question + records, TTLs as stored; and where each TTL is.
    pub wire: PackedWire,
    /// Length of the question name in `wire` (starting at offset 12).
    pub qname_len: u16,
    /// Question type and class.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// The stored rcode (4 bits).
    pub rcode: u8,
    /// AD of the stored reply.
    pub ad: bool,
    /// RA of the stored reply.
    pub ra: bool,
    /// The TTL given to every record when stored (seconds).
    pub orig_ttl: u32,
    /// When it was stored.
    pub stored: Instant,
    /// Whether the reply answers its question (NOERROR with an answer of the asked type at the
    /// end of its CNAME chain).
    pub answering: bool,
    /// With `serve_stale_policy prefer_positive`: the answering entry this one replaced.
    pub last_known_good: Option<Arc<Entry>>,
    /// The wildcard that synthesised the reply (the `zone/wildcard` metadata label when it was
    /// stored), set again on hits as CoreDNS does.
    pub wildcard: Option<Box<str>>,
    /// Prefetch bookkeeping: the last hit and the hits of the current run.
    pub freq: Freq,
    /// A refresh of this entry is running.
    pub refreshing: AtomicBool,
    /// After a failed refresh, no new one before this many ms after `stored` (0: no wait).
    pub retry_after_ms: AtomicU32,
}

/// A stored reply and the offsets of its records' TTLs in one allocation (an entry is the
/// cache's unit of memory: a separate offsets allocation and its pointer cost 24 bytes a
/// time, ten thousand times over).
#[derive(Debug)]
pub struct PackedWire {
    /// The message, then each offset as two big-endian bytes.
    bytes: Box<[u8]>,
    msg_len: u16,
}

impl PackedWire {
    /// `msg` with the TTL offsets `offsets` (a message is at most 65,535 bytes long).
    pub fn new(msg: &[u8], offsets: &[u16]) -> PackedWire {
        let msg = &msg[..msg.len().min(usize::from(u16::MAX))];
        let mut bytes = Vec::with_capacity(msg.len() + 2 * offsets.len());
        bytes.extend_from_slice(msg);
        for o in offsets {
            bytes.extend_from_slice(&o.to_be_bytes());
        }
        PackedWire {
            bytes: bytes.into_boxed_slice(),
            msg_len: msg.len() as u16,
        }
    }

    /// The stored message.
    pub fn msg(&self) -> &[u8] {
        &self.bytes[..usize::from(self.msg_len)]
    }

    /// Where each record's 4-byte TTL is in [`PackedWire::msg`].
    pub fn ttl_offsets(&self) -> impl Iterator<Item = usize> + '_ {
        self.bytes[usize::from(self.msg_len)..]
            .chunks_exact(2)
            .map(|c| usize::from(u16::from_be_bytes([c[0], c[1]])))
    }

    /// Bytes held: the message and its offsets.
    pub fn held(&self) -> usize {
        self.bytes.len()
    }
}

/// Milliseconds from `from` to `to` (0 when `to` is earlier), saturating at `u32::MAX`.
fn ms_between(from: Instant, to: Instant) -> u32 {
    u32::try_from(to.saturating_duration_since(from).as_millis()).unwrap_or(u32::MAX)
}

/// Prefetch bookkeeping in one atomic word (an entry is the cache's unit of memory, so every
/// byte of it counts ten thousand times): the last hit, in ms after the entry was stored, in
/// the high half; the hits of the current run in the low half.
#[derive(Debug)]
pub struct Freq(AtomicU64);

impl Freq {
    /// `hits` so far, the last at `last_hit`, for an entry stored at `stored`.
    pub fn new(stored: Instant, last_hit: Instant, hits: u64) -> Freq {
        Freq(AtomicU64::new(Self::pack(
            ms_between(stored, last_hit),
            hits,
        )))
    }

    fn pack(last_ms: u32, hits: u64) -> u64 {
        u64::from(last_ms) << 32 | hits.min(u64::from(u32::MAX))
    }

    fn unpack(word: u64) -> (u32, u64) {
        ((word >> 32) as u32, word & u64::from(u32::MAX))
    }
}

impl Entry {
    /// Remaining TTL in whole seconds at `now` (negative once expired), as CoreDNS computes it.
    pub fn ttl(&self, now: Instant) -> i64 {
        let elapsed = now.saturating_duration_since(self.stored).as_secs() as i64;
        i64::from(self.orig_ttl) - elapsed
    }

    /// The stored question name (case as stored).
    pub fn qname(&self) -> &[u8] {
        &self.wire.msg()[HEADER_LEN..HEADER_LEN + usize::from(self.qname_len)]
    }

    /// Whether the entry is for this question (name compared without regard to ASCII case).
    pub fn matches(&self, qname: &[u8], qtype: u16, qclass: u16) -> bool {
        self.qtype == qtype && self.qclass == qclass && self.qname().eq_ignore_ascii_case(qname)
    }

    /// Whether it answers this question.
    pub fn answers(&self, qname: &[u8], qtype: u16, qclass: u16) -> bool {
        self.answering && self.matches(qname, qtype, qclass)
    }

    /// This entry, or the last known good one, if it answers the question.
    pub fn answering_entry(
        self: &Arc<Self>,
        qname: &[u8],
        qtype: u16,
        qclass: u16,
    ) -> Option<Arc<Entry>> {
        if self.answers(qname, qtype, qclass) {
            return Some(self.clone());
        }
        self.last_known_good
            .as_ref()
            .filter(|e| e.answers(qname, qtype, qclass))
            .cloned()
    }

    /// Count a hit for prefetching: hits with no gap of `window` or more.
    pub fn update_freq(&self, window: std::time::Duration, now: Instant) -> u64 {
        let now_ms = ms_between(self.stored, now);
        let mut word = self.freq.0.load(Ordering::Acquire);
        loop {
            let (last_ms, hits) = Freq::unpack(word);
            let last = self.stored + std::time::Duration::from_millis(u64::from(last_ms));
            let hits = if last + window < now { 1 } else { hits + 1 };
            match self.freq.0.compare_exchange_weak(
                word,
                Freq::pack(now_ms, hits),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return hits,
                Err(seen) => word = seen,
            }
        }
    }

    /// Hits counted so far.
    pub fn hits(&self) -> u64 {
        Freq::unpack(self.freq.0.load(Ordering::Acquire)).1
    }

    /// When the last hit was (the time it was stored if none).
    pub fn last_hit(&self) -> Instant {
        let (last_ms, _) = Freq::unpack(self.freq.0.load(Ordering::Acquire));
        self.stored + std::time::Duration::from_millis(u64::from(last_ms))
    }

    /// Set the bookkeeping: `hits` so far, the last at `now` (a refreshed entry inherits the
    /// count of the one it replaced).
    pub fn set_freq(&self, now: Instant, hits: u64) {
        self.freq.0.store(
            Freq::pack(ms_between(self.stored, now), hits),
            Ordering::Release,
        );
    }

    /// Start a refresh unless one runs or a failed one asked to wait.
    pub fn begin_refresh(&self, now: Instant, recheck: std::time::Duration) -> bool {
        if !recheck.is_zero() {
            let r = self.retry_after_ms.load(Ordering::Acquire);
            if r != 0 && ms_between(self.stored, now) < r {
                return false;
            }
        }
        self.refreshing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// A refresh ended.
    pub fn end_refresh(&self, now: Instant, recheck: std::time::Duration, refreshed: bool) {
        let next = if !recheck.is_zero() && !refreshed {
            ms_between(self.stored, now + recheck).max(1)
        } else {
            0
        };
        self.retry_after_ms.store(next, Ordering::Release);
        self.refreshing.store(false, Ordering::Release);
    }

    /// Write the reply for a client into `out` (cleared first): the stored bytes with the
    /// client's ID, header bits and question name, and every TTL set to `ttl`. `client_qname`
    /// must have the stored name's length (it is the same name in another case); when it does
    /// not, the stored name is kept.
    pub fn write_reply(&self, out: &mut Vec<u8>, req: &ClientBits<'_>, ttl: u32) {
        out.clear();
        out.extend_from_slice(self.wire.msg());
        out[0..2].copy_from_slice(&req.id.to_be_bytes());
        // QR, the client's opcode, AA, RD and CD; RA and the rcode as stored; AD as stored but
        // only for clients that set DO or AD; TC and Z clear.
        let mut flags: u16 = 0x8000 | 0x0400;
        flags |= req.flags & 0x7800; // opcode
        flags |= req.flags & 0x0100; // RD
        flags |= req.flags & 0x0010; // CD
        if self.ra {
            flags |= 0x0080;
        }
        if self.ad && (req.do_bit || req.flags & 0x0020 != 0) {
            flags |= 0x0020;
        }
        flags |= u16::from(self.rcode & 0xf);
        out[2..4].copy_from_slice(&flags.to_be_bytes());
        let qlen = usize::from(self.qname_len);
        if req.qname.len() == qlen {
            out[HEADER_LEN..HEADER_LEN + qlen].copy_from_slice(req.qname);
        }
        let t = ttl.to_be_bytes();
        for o in self.wire.ttl_offsets() {
            if let Some(ttl) = out.get_mut(o..o + 4) {
                ttl.copy_from_slice(&t);
            }
        }
    }
}

/// What of the client's query a hit reply needs.
#[derive(Debug, Clone, Copy)]
pub struct ClientBits<'a> {
    /// Query ID.
    pub id: u16,
    /// The query's flag bits.
    pub flags: u16,
    /// The DO bit of its OPT record.
    pub do_bit: bool,
    /// Its question name in wire form, case as sent.
    pub qname: &'a [u8],
}

/// The flag bits of a decoded message, as on the wire.
pub fn message_flags(m: &Message) -> u16 {
    let md = &m.metadata;
    let mut f: u16 = 0;
    if md.message_type == ferrodns_plugin::proto::op::MessageType::Response {
        f |= 0x8000;
    }
    f |= u16::from(u8::from(md.op_code) & 0xf) << 11;
    if md.authoritative {
        f |= 0x0400;
    }
    if md.truncation {
        f |= 0x0200;
    }
    if md.recursion_desired {
        f |= 0x0100;
    }
    if md.recursion_available {
        f |= 0x0080;
    }
    if md.authentic_data {
        f |= 0x0020;
    }
    if md.checking_disabled {
        f |= 0x0010;
    }
    f |= u16::from(md.response_code.low());
    f
}

/// Encode a reply (TTLs already rewritten, OPT left out) as an entry's bytes: the question name
/// is written uncompressed and is never a compression target, so a hit can overwrite it with
/// the client's spelling without changing any record. Returns the bytes, the TTL offsets and
/// the question name's length.
pub fn encode(m: &Message) -> Option<(Vec<u8>, Vec<u16>, u16)> {
    let q = m.queries.first()?;
    let mut buf = Vec::with_capacity(512);
    buf.extend_from_slice(&[0u8; HEADER_LEN]);
    let name = q.name().to_bytes().ok()?;
    let qname_len = u16::try_from(name.len()).ok()?;
    buf.extend_from_slice(&name);
    buf.extend_from_slice(&u16::from(q.query_type()).to_be_bytes());
    buf.extend_from_slice(&u16::from(q.query_class()).to_be_bytes());
    let start = buf.len();
    {
        let mut enc = BinEncoder::new(&mut buf);
        enc.set_offset(start);
        for r in m.answers.iter().chain(&m.authorities).chain(&m.additionals) {
            r.emit(&mut enc).ok()?;
        }
    }
    if buf.len() > usize::from(u16::MAX) {
        return None;
    }
    let counts = [m.answers.len(), m.authorities.len(), m.additionals.len()];
    let mut header = [0u8; HEADER_LEN];
    header[2..4].copy_from_slice(&message_flags(m).to_be_bytes());
    header[4..6].copy_from_slice(&1u16.to_be_bytes());
    for (i, c) in counts.iter().enumerate() {
        let c = u16::try_from(*c).ok()?;
        header[6 + 2 * i..8 + 2 * i].copy_from_slice(&c.to_be_bytes());
    }
    buf[..HEADER_LEN].copy_from_slice(&header);
    let offsets = ttl_offsets(&buf)?;
    Some((buf, offsets, qname_len))
}

/// The offset of every record's TTL in a message.
pub fn ttl_offsets(msg: &[u8]) -> Option<Vec<u16>> {
    let h = WireHeader::read(msg)?;
    let mut pos = HEADER_LEN;
    for _ in 0..h.qdcount {
        pos = skip_name(msg, pos)? + 4;
    }
    let total = usize::from(h.ancount) + usize::from(h.nscount) + usize::from(h.arcount);
    let mut out = Vec::with_capacity(total);
    for _ in 0..total {
        pos = skip_name(msg, pos)?;
        let fixed = msg.get(pos..pos + 10)?;
        out.push(u16::try_from(pos + 4).ok()?);
        pos += 10 + usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    }
    (pos == msg.len()).then_some(out)
}

/// CoreDNS's cache key: FNV-1 (64 bit) over DO, CD, qtype, qclass and the lowercased name (here
/// its wire form, lowercased as it is hashed).
pub fn key(qname: &[u8], qtype: u16, qclass: u16, do_bit: bool, cd: bool) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut feed = |b: u8| {
        h = h.wrapping_mul(PRIME);
        h ^= u64::from(b);
    };
    feed(if do_bit { b'1' } else { b'0' });
    feed(if cd { b'1' } else { b'0' });
    for b in qtype.to_be_bytes().into_iter().chain(qclass.to_be_bytes()) {
        feed(b);
    }
    for &b in qname {
        feed(b.to_ascii_lowercase());
    }
    h
}

/// Whether the wire name `qname` is at or under one of `zones` (lowercased wire names).
pub fn in_zones(qname: &[u8], zones: &[Vec<u8>]) -> bool {
    zones.iter().any(|z| in_zone(qname, z))
}

/// Whether the wire name `qname` is at or under the lowercased wire name `zone`.
pub fn in_zone(qname: &[u8], zone: &[u8]) -> bool {
    let mut pos = 0;
    loop {
        let rest = &qname[pos..];
        if rest.len() == zone.len() && rest.eq_ignore_ascii_case(zone) {
            return true;
        }
        match qname.get(pos) {
            Some(&0) | None => return false,
            Some(&len) => pos += 1 + usize::from(len),
        }
        if pos >= qname.len() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(name: &str) -> Vec<u8> {
        ferrodns_plugin::proto::rr::Name::from_ascii(name)
            .unwrap()
            .to_bytes()
            .unwrap()
    }

    #[test]
    fn zone_matching_on_wire_names() {
        let zones = vec![wire("example.org."), wire("b.c.")];
        assert!(in_zones(&wire("example.org."), &zones));
        assert!(in_zones(&wire("WWW.Example.ORG."), &zones));
        assert!(in_zones(&wire("x.y.b.c."), &zones));
        assert!(!in_zones(&wire("notexample.org."), &zones));
        assert!(!in_zones(&wire("org."), &zones));
        assert!(!in_zones(&wire("."), &zones));
        assert!(in_zones(&wire("anything."), &[wire(".")]));
    }

    #[test]
    fn key_ignores_case_and_splits_do_cd_type_class() {
        let a = key(&wire("Example.org."), 1, 1, false, false);
        assert_eq!(a, key(&wire("example.ORG."), 1, 1, false, false));
        let others = [
            key(&wire("example.org."), 1, 1, true, false),
            key(&wire("example.org."), 1, 1, false, true),
            key(&wire("example.org."), 28, 1, false, false),
            key(&wire("example.org."), 1, 3, false, false),
        ];
        assert!(others.iter().all(|k| *k != a));
        // FNV-1 64 of "00" + type + class + name, as CoreDNS's (over its text name).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in b"00\x00\x01\x00\x01".iter().chain(&wire("a.")) {
            h = h.wrapping_mul(0x0000_0100_0000_01b3) ^ u64::from(*b);
        }
        assert_eq!(key(&wire("A."), 1, 1, false, false), h);
    }

    #[test]
    fn ttl_offsets_walk_every_record() {
        use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, Query};
        use ferrodns_plugin::proto::rr::{Name, RData, Record, RecordType, rdata::A};
        let mut m = Message::new(0, MessageType::Response, OpCode::Query);
        let n = Name::from_ascii("example.org.").unwrap();
        m.add_query(Query::query(n.clone(), RecordType::A));
        m.add_answer(Record::from_rdata(
            n.clone(),
            7,
            RData::A(A::new(1, 2, 3, 4)),
        ));
        m.add_additional(Record::from_rdata(n, 7, RData::A(A::new(1, 2, 3, 5))));
        let (bytes, offsets, qlen) = encode(&m).unwrap();
        assert_eq!(qlen, 13);
        assert_eq!(offsets.len(), 2);
        for o in offsets {
            let o = usize::from(o);
            assert_eq!(&bytes[o..o + 4], &7u32.to_be_bytes());
        }
        // The answer's owner is written in full, not as a pointer into the question.
        assert_eq!(bytes[12 + 13 + 4], 7);
    }
}

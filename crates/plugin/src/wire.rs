//! Small allocation-free readers of DNS wire format, shared by the server's front and fast hooks.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

/// Length of the fixed DNS header.
pub const HEADER_LEN: usize = 12;

/// The header fields read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireHeader {
    /// Query ID.
    pub id: u16,
    /// The 16 flag bits (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode).
    pub flags: u16,
    /// Question count.
    pub qdcount: u16,
    /// Answer count.
    pub ancount: u16,
    /// Authority count.
    pub nscount: u16,
    /// Additional count.
    pub arcount: u16,
}

impl WireHeader {
    /// Read the header, `None` when fewer than 12 bytes.
    pub fn read(b: &[u8]) -> Option<Self> {
        if b.len() < HEADER_LEN {
            return None;
        }
        let u = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        Some(WireHeader {
            id: u(0),
            flags: u(2),
            qdcount: u(4),
            ancount: u(6),
            nscount: u(8),
            arcount: u(10),
        })
    }

    /// QR bit: the message is a response.
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// The 4-bit opcode.
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    /// The Z bit (reserved, must be zero in a query).
    pub fn z(&self) -> bool {
        self.flags & 0x0040 != 0
    }

    /// The 4-bit header rcode.
    pub fn rcode(&self) -> u8 {
        (self.flags & 0xf) as u8
    }
}

/// The header rcode of a wire message (without the EDNS extended bits).
pub fn rcode(b: &[u8]) -> Option<ResponseCode> {
    WireHeader::read(b).map(|h| ResponseCode::from_low(h.rcode()))
}

/// Skip an uncompressed or compressed name starting at `pos`; returns the offset after it.
/// Fails on bad label types, overlong names and running past the end.
pub fn skip_name(b: &[u8], mut pos: usize) -> Option<usize> {
    let mut total = 0usize;
    loop {
        let len = *b.get(pos)? as usize;
        match len & 0xc0 {
            0x00 => {
                pos += 1;
                if len == 0 {
                    return Some(pos);
                }
                total += len + 1;
                if total > 255 {
                    return None;
                }
                pos += len;
                if pos > b.len() {
                    return None;
                }
            }
            0xc0 => {
                b.get(pos + 1)?;
                return Some(pos + 2);
            }
            _ => return None,
        }
    }
}

/// The EDNS facts of a request read in place from its OPT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WireOpt {
    /// Advertised UDP payload size.
    pub udp_size: u16,
    /// EDNS version.
    pub version: u8,
    /// DO bit.
    pub dnssec_ok: bool,
    /// Length of the options RDATA (0 when there are no options).
    pub rdlen: u16,
}

/// Whether a chain that returned `rcode` without a reply wrote one itself (CoreDNS's
/// `plugin.ClientWrite`): every rcode but SERVFAIL, REFUSED, FORMERR and NOTIMP, which the server
/// answers with on the chain's behalf.
pub fn client_write(rcode: ResponseCode) -> bool {
    !matches!(
        rcode,
        ResponseCode::ServFail
            | ResponseCode::Refused
            | ResponseCode::FormErr
            | ResponseCode::NotImp
    )
}

/// The reply miekg/dns's `SetRcode` makes for a request: ID, QR, opcode, for a QUERY the RD and
/// CD bits, the first question, and the rcode; no records.
pub fn rcode_reply(request: &Message, rcode: ResponseCode) -> Message {
    let r = &request.metadata;
    let mut m = Message::new(r.id, MessageType::Response, r.op_code);
    if r.op_code == OpCode::Query {
        m.metadata.recursion_desired = r.recursion_desired;
        m.metadata.checking_disabled = r.checking_disabled;
    }
    m.metadata.response_code = rcode;
    if let Some(q) = request.queries.first() {
        m.queries.push(q.clone());
    }
    m
}

/// The length of a message encoded without name compression: miekg/dns's `Msg.Len()`, which
/// CoreDNS reports as a reply's size in logs and metrics.
pub fn uncompressed_len(m: &Message) -> Option<usize> {
    let mut buf = Vec::new();
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    m.emit(&mut enc).ok()?;
    Some(buf.len())
}

/// What the metrics of a reply need from it, read from its wire form without decoding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplySummary {
    /// The rcode with the extended bits of an OPT record, as a decoded message carries it.
    pub rcode: u16,
    /// [`uncompressed_len`] of the message: every compression pointer counted as the labels it
    /// stands for.
    pub uncompressed_len: usize,
}

/// Walk a reply's sections for its rcode and uncompressed length, allocating nothing. `None` when
/// the message does not parse (the caller may decode it to learn what it can).
///
/// Names are expanded where a record's RDATA carries them (NS, CNAME, SOA, PTR, MX, SRV, NAPTR,
/// DNAME and the other name-bearing types of RFCs 1035, 1183, 2163, 2230 and 2915), as a decoder
/// reads them; any other RDATA counts as its length.
pub fn reply_summary(b: &[u8]) -> Option<ReplySummary> {
    let h = WireHeader::read(b)?;
    let mut pos = HEADER_LEN;
    let mut len = HEADER_LEN;
    for _ in 0..h.qdcount {
        let (after, n) = expanded_name(b, pos)?;
        pos = after.checked_add(4).filter(|&p| p <= b.len())?;
        len += n + 4;
    }
    let mut high = 0u16;
    let records = u32::from(h.ancount) + u32::from(h.nscount) + u32::from(h.arcount);
    for _ in 0..records {
        let (after, n) = expanded_name(b, pos)?;
        let fixed = b.get(after..after.checked_add(10)?)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let start = after + 10;
        let end = start.checked_add(rdlen).filter(|&e| e <= b.len())?;
        if rtype == 41 {
            // OPT: the TTL's top byte holds the rcode's upper eight bits.
            high = u16::from(fixed[4]);
        }
        len += n + 10 + rdata_len(b, rtype, start, end)?;
        pos = end;
    }
    Some(ReplySummary {
        rcode: (high << 4) | u16::from(h.rcode()),
        uncompressed_len: len,
    })
}

/// The length of one record's RDATA with its names expanded.
fn rdata_len(b: &[u8], rtype: u16, start: usize, end: usize) -> Option<usize> {
    // Where the names sit: fixed bytes before the first name, and how many names follow
    // (NAPTR's three character-strings are handled on their own).
    let (skip, names) = match rtype {
        // NS, MD, MF, CNAME, MB, MG, MR, PTR, DNAME
        2..=5 | 7..=9 | 12 | 39 => (0, 1),
        // SOA (then 20 bytes of counters), MINFO, RP
        6 | 14 | 17 => (0, 2),
        // MX, AFSDB, RT, KX
        15 | 18 | 21 | 36 => (2, 1),
        // PX
        26 => (2, 2),
        // SRV
        33 => (6, 1),
        // NAPTR
        35 => (4, 1),
        _ => return Some(end - start),
    };
    let rdata = b.get(..end)?;
    let mut pos = start + skip;
    if rtype == 35 {
        for _ in 0..3 {
            let n = usize::from(*rdata.get(pos)?);
            pos += 1 + n;
        }
    }
    if pos > end {
        return None;
    }
    let mut len = pos - start;
    for _ in 0..names {
        let (after, n) = expanded_name(rdata, pos)?;
        len += n;
        pos = after;
    }
    // What follows the names (SOA's counters) counts as it is.
    Some(len + end.checked_sub(pos)?)
}

/// A name at `pos`: the offset after it in place, and its length with every pointer followed.
fn expanded_name(b: &[u8], start: usize) -> Option<(usize, usize)> {
    let mut pos = start;
    let mut after = None;
    let mut len = 1usize;
    // Each jump must go backwards, so a loop of pointers ends.
    let mut limit = start;
    loop {
        let label = usize::from(*b.get(pos)?);
        match label & 0xc0 {
            0x00 if label == 0 => return Some((after.unwrap_or(pos + 1), len)),
            0x00 => {
                len += label + 1;
                pos += label + 1;
                if len > 255 || pos >= b.len() {
                    return None;
                }
            }
            0xc0 => {
                let target = ((label & 0x3f) << 8) | usize::from(*b.get(pos + 1)?);
                if after.is_none() {
                    after = Some(pos + 2);
                }
                if target >= limit {
                    return None;
                }
                limit = target;
                pos = target;
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Query};
    use hickory_proto::rr::rdata::{CNAME, MX, NS, SOA, SRV};
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    use std::str::FromStr;

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap()
    }

    /// A reply with names repeated across sections and RDATA, so the encoder compresses them.
    fn reply() -> Message {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(name("www.example.org."), RecordType::A));
        let owner = name("www.example.org.");
        m.add_answer(Record::from_rdata(
            owner.clone(),
            30,
            RData::CNAME(CNAME(name("web.example.org."))),
        ));
        m.add_answer(Record::from_rdata(
            name("web.example.org."),
            30,
            RData::MX(MX::new(10, name("mail.example.org."))),
        ));
        m.add_answer(Record::from_rdata(
            name("_x._tcp.example.org."),
            30,
            RData::SRV(SRV::new(1, 2, 53, name("ns.example.org."))),
        ));
        m.add_authority(Record::from_rdata(
            name("example.org."),
            30,
            RData::SOA(SOA::new(
                name("ns.example.org."),
                name("hostmaster.example.org."),
                1,
                2,
                3,
                4,
                5,
            )),
        ));
        m.add_authority(Record::from_rdata(
            name("example.org."),
            30,
            RData::NS(NS(name("ns.example.org."))),
        ));
        m
    }

    #[test]
    fn summary_matches_the_decoded_message() {
        for edns_rcode in [None, Some(ResponseCode::BADVERS)] {
            let mut m = reply();
            m.metadata.response_code = ResponseCode::NXDomain;
            if let Some(rc) = edns_rcode {
                let mut e = Edns::new();
                e.set_max_payload(1232);
                m.set_edns(e);
                m.metadata.response_code = rc;
            }
            let wire = m.to_vec().unwrap();
            let uncompressed = uncompressed_len(&m).unwrap();
            assert!(wire.len() < uncompressed, "the encoder compressed nothing");
            let decoded = Message::from_vec(&wire).unwrap();
            let s = reply_summary(&wire).unwrap();
            assert_eq!(s.uncompressed_len, uncompressed);
            assert_eq!(s.uncompressed_len, uncompressed_len(&decoded).unwrap());
            assert_eq!(s.rcode, u16::from(decoded.metadata.response_code));
        }
    }

    #[test]
    fn summary_refuses_what_does_not_parse() {
        let wire = reply().to_vec().unwrap();
        for cut in [5, 20, wire.len() - 1] {
            assert_eq!(reply_summary(&wire[..cut]), None, "cut at {cut}");
        }
        // A pointer to itself.
        let mut looped = wire.clone();
        looped.truncate(HEADER_LEN);
        looped.extend_from_slice(&[0xc0, HEADER_LEN as u8, 0, 1, 0, 1]);
        assert_eq!(reply_summary(&looped), None);
    }
}

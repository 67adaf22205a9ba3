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

//! Requests in and replies out, at the wire level, with the rules of CoreDNS's DNS library:
//! which datagrams are dropped or answered with FORMERR/NOTIMP before any plugin sees them, how
//! the client's OPT record is echoed, and how a reply is truncated to the client's size.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

use ferrodns_plugin::fit;
use ferrodns_plugin::wire::{HEADER_LEN, WireHeader, skip_name};

/// What to do with a datagram before dispatch.
#[derive(Debug)]
pub enum Intake {
    /// Send nothing (too short to have a header, or a response sent to us).
    Drop,
    /// Answer at once with these bytes (FORMERR or NOTIMP).
    Reject(Vec<u8>),
    /// A decoded request for dispatch (its question list may be empty, which CoreDNS answers
    /// with SERVFAIL).
    Accept(Box<Message>),
}

/// Check and decode a request as CoreDNS's DNS library does.
pub fn intake(raw: &[u8]) -> Intake {
    let Some(h) = WireHeader::read(raw) else {
        return Intake::Drop;
    };
    if h.is_response() {
        return Intake::Drop;
    }
    let opcode = h.opcode();
    if opcode != 0 && opcode != 4 {
        return Intake::Reject(reject(&h, None, ResponseCode::NotImp));
    }
    if h.qdcount != 1 || h.ancount > 1 || h.nscount > 1 || h.arcount > 2 {
        return Intake::Reject(reject(&h, None, ResponseCode::FormErr));
    }
    match decode(raw, &h) {
        Ok(msg) => Intake::Accept(Box::new(msg)),
        Err(question) => Intake::Reject(reject(&h, question.as_ref(), ResponseCode::FormErr)),
    }
}

/// Decode leniently as miekg/dns does: a message that ends early stops the sections it is in
/// (a question may even lack its type and class), while bad data inside is an error. On error,
/// returns the question if it was read, to echo in the FORMERR reply.
fn decode(raw: &[u8], h: &WireHeader) -> Result<Message, Option<Query>> {
    let mut d = BinDecoder::new(raw);
    let header = hickory_proto::op::Header::read(&mut d).map_err(|_| None)?;
    let mut msg = Message::new(h.id, MessageType::Query, header.metadata.op_code);
    msg.metadata = header.metadata;
    if d.is_empty() {
        return Ok(msg);
    }
    let query = read_question(&mut d).ok_or(None)?;
    msg.queries.push(query.clone());
    let sections = [h.ancount, h.nscount, h.arcount];
    for (i, count) in sections.into_iter().enumerate() {
        for _ in 0..count {
            if d.is_empty() {
                break;
            }
            let additional = i == 2;
            let (records, edns, sig) =
                Message::read_records(&mut d, 1, additional, msg.metadata.op_code)
                    .map_err(|_| Some(query.clone()))?;
            match i {
                0 => msg.answers.extend(records),
                1 => msg.authorities.extend(records),
                _ => {
                    msg.additionals.extend(records);
                    if edns.is_some() {
                        msg.edns = edns;
                    }
                    if sig.is_some() {
                        msg.signature = sig;
                    }
                }
            }
        }
    }
    Ok(msg)
}

fn read_question(d: &mut BinDecoder<'_>) -> Option<Query> {
    let name = hickory_proto::rr::Name::read(d).ok()?;
    let mut q = Query::new();
    q.set_name(name);
    // miekg/dns accepts a question cut after its name or its type, with zero for what is
    // missing; mirror that so such queries get the same (REFUSED) answer.
    let zero_class = hickory_proto::rr::DNSClass::from(0u16);
    if d.is_empty() {
        q.set_query_type(hickory_proto::rr::RecordType::from(0u16));
        q.set_query_class(zero_class);
        return Some(q);
    }
    let t = d.read_u16().ok()?.unverified();
    q.set_query_type(hickory_proto::rr::RecordType::from(t));
    if d.is_empty() {
        q.set_query_class(zero_class);
        return Some(q);
    }
    let c = d.read_u16().ok()?.unverified();
    q.set_query_class(hickory_proto::rr::DNSClass::from(c));
    Some(q)
}

/// The FORMERR/NOTIMP reply: the request's header with QR set, AA and Z cleared, the rcode set
/// (and the opcode reset to QUERY for FORMERR), the question if one was read, nothing else.
fn reject(h: &WireHeader, question: Option<&Query>, rcode: ResponseCode) -> Vec<u8> {
    let mut flags = h.flags;
    flags |= 0x8000; // QR
    flags &= !0x0400; // AA
    flags &= !0x0040; // Z
    flags &= !0x000f; // rcode
    flags |= u16::from(rcode.low());
    if rcode == ResponseCode::FormErr {
        flags &= !0x7800; // opcode QUERY
    }
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&h.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&(question.is_some() as u16).to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    if let Some(q) = question {
        let mut enc = BinEncoder::new(&mut out);
        enc.set_offset(HEADER_LEN);
        if q.emit(&mut enc).is_err() {
            out.truncate(HEADER_LEN);
            out[5] = 0;
        }
    }
    out
}

pub use ferrodns_plugin::wire::rcode_reply;

/// The BADVERS reply: `SetReply` of the request with an OPT of version 0, UDP size 0 and the
/// extended rcode BADVERS, without the client's size or flags.
pub fn badvers(req: &Message) -> Vec<u8> {
    let mut m = rcode_reply(req, ResponseCode::BADVERS);
    let mut edns = Edns::new();
    edns.set_version(0);
    edns.set_dnssec_ok(false);
    m.edns = Some(edns);
    let mut out = encode(&m).unwrap_or_default();
    // hickory-proto cannot encode a size below 512; CoreDNS leaves it 0.
    set_opt_size(&mut out, 0);
    out
}

/// REFUSED for a query the memory budget has no room for, built from its bytes without
/// decoding it (CoreDNS's `forward` answers REFUSED past `max_concurrent`): the header with QR
/// set, opcode and RD kept, the first question if it is well formed, and an OPT record with the
/// client's UDP size if it sent one. `None` for something without a header, or a response.
pub fn budget_refused(raw: &[u8]) -> Option<Vec<u8>> {
    let h = WireHeader::read(raw)?;
    if h.is_response() {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len().min(512) + 11);
    out.extend_from_slice(&raw[..HEADER_LEN]);
    // QR, opcode and RD kept; AA, TC, RA, Z, AD, CD cleared; rcode REFUSED (5).
    out[2] = 0x80 | (raw[2] & 0x79);
    out[3] = 5;
    out[4..12].fill(0);
    let qd = u16::from_be_bytes([raw[4], raw[5]]);
    if qd > 0
        && let Some(end) = skip_name(raw, HEADER_LEN)
        && end + 4 <= raw.len()
    {
        out.extend_from_slice(&raw[HEADER_LEN..end + 4]);
        out[5] = 1;
    }
    if let Some(size) = request_opt_size(raw) {
        // Root name, type OPT, class = UDP size, TTL 0, no data.
        out.extend_from_slice(&[0, 0, 41]);
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        out[11] = 1;
    }
    Some(out)
}

/// The UDP size field of the request's OPT record as sent (miekg/dns uses the last OPT).
/// hickory-proto reads sizes below 512 as 512, but CoreDNS echoes the field as it is, even 0.
pub fn request_opt_size(raw: &[u8]) -> Option<u16> {
    let at = opt_class_offset(raw)?;
    Some(u16::from_be_bytes([raw[at], raw[at + 1]]))
}

/// Overwrite the UDP size field of the (last) OPT record of an encoded message.
pub fn set_opt_size(msg: &mut [u8], size: u16) {
    if let Some(at) = opt_class_offset(msg) {
        msg[at..at + 2].copy_from_slice(&size.to_be_bytes());
    }
}

/// Offset of the CLASS field of the last OPT record in the additional section.
fn opt_class_offset(msg: &[u8]) -> Option<usize> {
    let h = WireHeader::read(msg)?;
    let mut pos = HEADER_LEN;
    for _ in 0..h.qdcount {
        pos = skip_name(msg, pos)? + 4;
    }
    let before = usize::from(h.ancount) + usize::from(h.nscount);
    let mut found = None;
    for i in 0..before + usize::from(h.arcount) {
        pos = skip_name(msg, pos)?;
        let field = |at: usize| -> Option<u16> {
            Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
        };
        let rtype = field(pos)?;
        field(pos + 2)?;
        if i >= before && rtype == 41 {
            found = Some(pos + 2);
        }
        pos += 10 + usize::from(field(pos + 8)?);
    }
    found
}

/// Give a reply the client's OPT record as CoreDNS's `SizeAndDo` does (see
/// [`ferrodns_plugin::fit::size_and_do`]). Without an OPT in the request the reply is left
/// alone. A size below 512 cannot be set here: after encoding, put the request's size back with
/// [`set_opt_size`] and [`request_opt_size`].
pub fn echo_opt(req: &Message, reply: &mut Message) {
    if let Some(req_edns) = req.edns.as_ref() {
        fit::size_and_do(req_edns, reply);
    }
}

pub use ferrodns_plugin::fit::{encode, encode_within};

/// Offsets of one resource record in a message.
struct RrSpan {
    start: usize,
    end: usize,
    rtype: u16,
}

/// The question's end and every record's span, or `None` for a message that does not parse.
fn spans(msg: &[u8], h: &WireHeader) -> Option<(usize, Vec<RrSpan>)> {
    let mut pos = HEADER_LEN;
    for _ in 0..h.qdcount {
        pos = skip_name(msg, pos)? + 4;
    }
    let question_end = pos;
    let total = usize::from(h.ancount) + usize::from(h.nscount) + usize::from(h.arcount);
    let mut out = Vec::with_capacity(total);
    for _ in 0..total {
        let start = pos;
        pos = skip_name(msg, pos)?;
        let fixed = msg.get(pos..pos + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        pos += 10 + rdlen;
        if pos > msg.len() {
            return None;
        }
        out.push(RrSpan {
            start,
            end: pos,
            rtype,
        });
    }
    (question_end <= msg.len()).then_some((question_end, out))
}

/// Finish a reply a plugin gave as wire bytes, without decoding it: the request's ID, the
/// client's OPT echoed as [`echo_opt`] does, then truncation to `size` by whole records (TC
/// set, OPT kept), as [`encode_within`] does for decoded replies. `None` when the bytes do not
/// parse or carry an OPT record anywhere but last; the caller then decodes them.
pub fn finish_wire(
    req: &Message,
    opt_size: Option<u16>,
    reply: &[u8],
    size: usize,
) -> Option<Vec<u8>> {
    let h = WireHeader::read(reply)?;
    let (question_end, rrs) = spans(reply, &h)?;
    let opt_at = rrs.iter().position(|r| r.rtype == 41);
    if let Some(i) = opt_at
        && (i + 1 != rrs.len() || usize::from(h.arcount) == 0)
    {
        return None;
    }
    // Records other than the OPT, and the OPT to send (patched or the client's).
    let records = &rrs[..opt_at.unwrap_or(rrs.len())];
    let opt: Option<Vec<u8>> = match (req.edns.as_ref(), opt_at) {
        (None, Some(i)) => Some(reply[rrs[i].start..rrs[i].end].to_vec()),
        (None, None) => None,
        (Some(e), Some(i)) => {
            let mut o = reply[rrs[i].start..rrs[i].end].to_vec();
            // Root name, then TYPE(2) CLASS=size(2) TTL = ext-rcode, version, flags(2).
            let size = opt_size.unwrap_or(e.max_payload()).to_be_bytes();
            o[3..5].copy_from_slice(&size);
            o[6] = 0; // version
            o[8] = 0; // low flag bits cleared; DO and the high Z bits kept
            if e.flags().dnssec_ok {
                o[7] |= 0x80;
            }
            Some(o)
        }
        (Some(_), None) => {
            let mut m = Message::new(0, MessageType::Response, OpCode::Query);
            echo_opt(req, &mut m);
            let e = m.edns?;
            let mut o = Vec::with_capacity(32);
            Record::from(&e).emit(&mut BinEncoder::new(&mut o)).ok()?;
            if let Some(s) = opt_size {
                o[3..5].copy_from_slice(&s.to_be_bytes());
            }
            Some(o)
        }
    };
    let size = size.max(512);
    let opt_len = opt.as_ref().map_or(0, Vec::len);
    let records_end = records.last().map_or(question_end, |r| r.end);
    let fits = records_end + opt_len <= size;
    let kept = if fits {
        records.len()
    } else {
        let budget = size.saturating_sub(opt_len);
        records.iter().take_while(|r| r.end <= budget).count()
    };
    let cut_end = if kept == 0 {
        question_end
    } else {
        records[kept - 1].end
    };
    let mut out = Vec::with_capacity(cut_end + opt_len);
    out.extend_from_slice(&reply[..cut_end]);
    if let Some(o) = &opt {
        out.extend_from_slice(o);
    }
    out[0..2].copy_from_slice(&req.metadata.id.to_be_bytes());
    // Recount the sections over the records kept.
    let an = usize::from(h.ancount).min(kept);
    let ns = usize::from(h.nscount).min(kept - an);
    let ar = kept - an - ns + usize::from(opt.is_some());
    out[6..8].copy_from_slice(&(an as u16).to_be_bytes());
    out[8..10].copy_from_slice(&(ns as u16).to_be_bytes());
    out[10..12].copy_from_slice(&(ar as u16).to_be_bytes());
    if kept < records.len() {
        out[2] |= 0x02; // TC
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::{Name, RData, RecordType, rdata::A};

    fn query(name: &str) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m.to_vec().unwrap()
    }

    #[test]
    fn short_and_response_are_dropped() {
        assert!(matches!(intake(&[0u8; 11]), Intake::Drop));
        let mut q = query("example.org.");
        q[2] |= 0x80;
        assert!(matches!(intake(&q), Intake::Drop));
    }

    #[test]
    fn qdcount_two_is_formerr_without_question() {
        let mut q = query("example.org.");
        q[5] = 2;
        let Intake::Reject(r) = intake(&q) else {
            panic!("not rejected")
        };
        assert_eq!(r.len(), 12);
        assert_eq!(r[3] & 0xf, 1);
        assert_eq!(r[2] & 0x80, 0x80);
        assert_eq!(r[2] & 0x01, 0x01, "RD kept");
    }

    #[test]
    fn unknown_opcode_is_notimp_with_opcode_kept() {
        let mut q = query("example.org.");
        q[2] |= 2 << 3; // STATUS
        let Intake::Reject(r) = intake(&q) else {
            panic!("not rejected")
        };
        assert_eq!(r[3] & 0xf, 4);
        assert_eq!((r[2] >> 3) & 0xf, 2);
    }

    #[test]
    fn pointer_loop_is_formerr() {
        let mut q = query("example.org.").to_vec();
        q.truncate(12);
        q.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let Intake::Reject(r) = intake(&q) else {
            panic!("not rejected")
        };
        assert_eq!(r[3] & 0xf, 1);
    }

    #[test]
    fn header_only_is_accepted_without_question() {
        let q = query("example.org.");
        let Intake::Accept(m) = intake(&q[..12]) else {
            panic!("not accepted")
        };
        assert!(m.queries.is_empty());
    }

    fn with_opt(name: &str, size: u16, options: &[u8]) -> Vec<u8> {
        let mut q = query(name);
        q[11] = 1;
        q.extend_from_slice(&[0, 0, 41]);
        q.extend_from_slice(&size.to_be_bytes());
        q.extend_from_slice(&[0, 0, 0, 0]);
        q.extend_from_slice(&(options.len() as u16).to_be_bytes());
        q.extend_from_slice(options);
        q
    }

    #[test]
    fn small_opt_sizes_are_echoed_as_sent() {
        let raw = with_opt("example.org.", 100, &[]);
        assert_eq!(request_opt_size(&raw), Some(100));
        assert_eq!(request_opt_size(&query("example.org.")), None);
        let Intake::Accept(req) = intake(&raw) else {
            panic!("not accepted")
        };
        let mut reply = rcode_reply(&req, ResponseCode::Refused);
        echo_opt(&req, &mut reply);
        let mut out = encode_within(&reply, 512).unwrap();
        set_opt_size(&mut out, 100);
        assert_eq!(request_opt_size(&out), Some(100));
        let b = badvers(&req);
        assert_eq!(request_opt_size(&b), Some(0));
        // 16 is BADVERS (hickory-proto names it BADSIG when reading).
        assert_eq!(
            u16::from(Message::from_vec(&b).unwrap().metadata.response_code),
            16
        );
    }

    #[test]
    fn supported_options_are_echoed_others_dropped() {
        // NSID (empty), COOKIE (8 bytes), an unknown option 65001.
        let mut opts = vec![0, 3, 0, 0, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        opts.extend_from_slice(&[0xfd, 0xe9, 0, 2, 0xab, 0xcd]);
        let raw = with_opt("example.org.", 1232, &opts);
        let Intake::Accept(req) = intake(&raw) else {
            panic!("not accepted")
        };
        let mut reply = rcode_reply(&req, ResponseCode::Refused);
        echo_opt(&req, &mut reply);
        let codes: Vec<u16> = reply
            .edns
            .as_ref()
            .unwrap()
            .options()
            .options
            .iter()
            .map(|(c, _)| u16::from(*c))
            .collect();
        assert_eq!(codes, vec![3, 10]);
    }

    #[test]
    fn truncation_keeps_opt_and_sets_tc() {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        let name = Name::from_ascii("a-rather-long-name-for-filling.example.org.").unwrap();
        m.add_query(Query::query(name.clone(), RecordType::A));
        for i in 0..100u8 {
            m.add_answer(Record::from_rdata(
                name.clone(),
                60,
                RData::A(A::new(10, 0, 0, i)),
            ));
        }
        m.set_edns(Edns::new());
        let out = encode_within(&m, 512).unwrap();
        assert!(out.len() <= 512);
        let back = Message::from_vec(&out).unwrap();
        assert!(back.metadata.truncation);
        assert!(back.edns.is_some());
        assert!(!back.answers.is_empty() && back.answers.len() < 100);
    }
    fn big_reply(n: u8, with_opt: bool) -> Message {
        let mut m = Message::new(99, MessageType::Response, OpCode::Query);
        let name = Name::from_ascii("a-rather-long-name-for-filling.example.org.").unwrap();
        m.add_query(Query::query(name.clone(), RecordType::A));
        for i in 0..n {
            m.add_answer(Record::from_rdata(
                name.clone(),
                60,
                RData::A(A::new(10, 0, 0, i)),
            ));
        }
        if with_opt {
            let mut e = Edns::new();
            e.set_max_payload(4096);
            m.set_edns(e);
        }
        m
    }

    fn request_with(size: Option<u16>, dnssec_ok: bool) -> Message {
        let mut r = Message::new(7, MessageType::Query, OpCode::Query);
        r.add_query(Query::query(
            Name::from_ascii("a-rather-long-name-for-filling.example.org.").unwrap(),
            RecordType::A,
        ));
        if let Some(s) = size {
            let mut e = Edns::new();
            e.set_max_payload(s);
            e.set_dnssec_ok(dnssec_ok);
            r.set_edns(e);
        }
        r
    }

    #[test]
    fn wire_replies_finish_like_decoded_ones() {
        for (n, with_opt, req_size, dnssec_ok, size) in [
            (3u8, false, None, false, 512usize),
            (3, false, Some(1232u16), true, 1232),
            (3, true, Some(1232), false, 1232),
            (60, false, Some(512), false, 512),
            (60, true, Some(700), true, 700),
            (60, false, None, false, 65535),
        ] {
            let req = request_with(req_size, dnssec_ok);
            let reply = big_reply(n, with_opt);
            let wire = finish_wire(&req, req_size, &reply.to_vec().unwrap(), size).unwrap();
            let mut decoded = reply.clone();
            decoded.metadata.id = req.metadata.id;
            echo_opt(&req, &mut decoded);
            let via_message = encode_within(&decoded, size).unwrap();
            let (a, b) = (
                Message::from_vec(&wire).unwrap(),
                Message::from_vec(&via_message).unwrap(),
            );
            let case = format!("{n} {with_opt} {req_size:?} {dnssec_ok} {size}");
            assert!(wire.len() <= size.max(512), "{case}");
            assert_eq!(a.metadata, b.metadata, "{case}");
            assert_eq!(a.answers, b.answers, "{case}");
            assert_eq!(a.additionals, b.additionals, "{case}");
            assert_eq!(
                a.edns
                    .as_ref()
                    .map(|e| (e.max_payload(), e.flags().dnssec_ok, e.version())),
                b.edns
                    .as_ref()
                    .map(|e| (e.max_payload(), e.flags().dnssec_ok, e.version())),
                "{case}"
            );
        }
    }

    #[test]
    fn wire_reply_with_opt_not_last_is_left_to_the_decoder() {
        let mut reply = big_reply(1, true).to_vec().unwrap();
        // Claim one more additional record after the OPT.
        reply[11] += 1;
        let name_a = [0u8, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4];
        reply.extend_from_slice(&name_a);
        assert!(finish_wire(&request_with(None, false), None, &reply, 512).is_none());
    }
}

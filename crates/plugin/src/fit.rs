//! How the server fits a reply to its client, as CoreDNS's DNS library does: the client's OPT
//! record echoed (`SizeAndDo`), then records dropped from the end until the reply fits the
//! client's size, with TC set (`Truncate`). Exported so that a plugin that must see a reply as
//! the client gets it (`dnstap`) computes it the same way.

use hickory_proto::op::{Edns, Message};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use crate::wire::HEADER_LEN;

/// Give a reply the client's OPT record (`req_edns`) as CoreDNS's `SizeAndDo` does: a reply
/// with an OPT of its own keeps its options and gets the client's size, version 0 and the DO
/// bit if the client set it; a reply without one gets the client's, keeping only the options
/// the server echoes ([`crate::edns::is_supported`]).
pub fn size_and_do(req_edns: &Edns, reply: &mut Message) {
    let client_do = req_edns.flags().dnssec_ok;
    match reply.edns.as_mut() {
        Some(e) => {
            e.set_version(0);
            e.set_max_payload(req_edns.max_payload());
            // Keep only the DO bit and the high Z bits, as the TTL mask 0xff00 does.
            let flags = e.flags_mut();
            flags.z &= 0x7f00;
            if client_do {
                flags.dnssec_ok = true;
            }
        }
        None => {
            let mut e = Edns::new();
            e.set_version(0);
            e.set_max_payload(req_edns.max_payload());
            e.set_dnssec_ok(client_do);
            e.flags_mut().z = req_edns.flags().z & 0x7f00;
            // The request's OPT is reused: its supported options stay (CoreDNS's fixed list and
            // those a plugin registered, see `ferrodns_plugin::edns`), the others go.
            for (code, opt) in &req_edns.options().options {
                if crate::edns::is_supported(u16::from(*code)) {
                    e.options_mut().options.push((*code, opt.clone()));
                }
            }
            reply.edns = Some(e);
        }
    }
}

/// Encode a message (names compressed).
pub fn encode(m: &Message) -> Option<Vec<u8>> {
    m.to_vec().ok()
}

/// Encode a reply so that it fits `size` bytes (never less than 512), dropping records from the
/// end of the answer, authority and additional sections in that order and setting TC when any
/// had to go, as miekg/dns's `Truncate` does. The OPT record is always kept.
pub fn encode_within(m: &Message, size: usize) -> Option<Vec<u8>> {
    let size = size.max(512);
    let full = encode(m)?;
    if full.len() <= size {
        return Some(full);
    }
    let opt_len = m.edns.as_ref().map(opt_wire_len).unwrap_or(0);
    let budget = size.saturating_sub(opt_len);
    let mut out = Vec::with_capacity(size);
    let mut enc = BinEncoder::new(&mut out);
    enc.emit_vec(&[0u8; HEADER_LEN]).ok()?;
    for q in &m.queries {
        q.emit(&mut enc).ok()?;
    }
    let mut counts = [0u16; 3];
    let mut cut = false;
    for (i, section) in [&m.answers, &m.authorities, &m.additionals]
        .into_iter()
        .enumerate()
    {
        for r in section.iter() {
            if cut || enc.len() >= budget {
                cut = true;
                break;
            }
            let before = enc.offset();
            if emit_record(r, &mut enc).is_err() || enc.len() > budget {
                enc.set_offset(before);
                enc.trim();
                cut = true;
                break;
            }
            counts[i] += 1;
        }
    }
    let mut arcount = counts[2];
    if let Some(e) = m.edns.as_ref() {
        let mut e = e.clone();
        e.set_rcode_high(m.metadata.response_code.high());
        Record::from(&e).emit(&mut enc).ok()?;
        arcount += 1;
    }
    drop(enc);
    let mut header = hickory_proto::op::Header {
        metadata: m.metadata,
        counts: Default::default(),
    };
    header.metadata.truncation = m.metadata.truncation || cut;
    header.counts.queries = m.queries.len() as u16;
    header.counts.answers = counts[0];
    header.counts.authorities = counts[1];
    header.counts.additionals = arcount;
    let mut head = Vec::with_capacity(HEADER_LEN);
    header.emit(&mut BinEncoder::new(&mut head)).ok()?;
    out[..HEADER_LEN].copy_from_slice(&head[..HEADER_LEN]);
    Some(out)
}

fn emit_record(r: &Record, enc: &mut BinEncoder<'_>) -> Result<(), ()> {
    r.emit(enc).map_err(|_| ())
}

fn opt_wire_len(e: &Edns) -> usize {
    let mut buf = Vec::with_capacity(32);
    let mut enc = BinEncoder::new(&mut buf);
    match Record::from(e).emit(&mut enc) {
        Ok(()) => buf.len(),
        Err(_) => 11,
    }
}

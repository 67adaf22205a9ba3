//! The synchronous UDP hit path: a fresh entry is copied into the output buffer and patched
//! (ID, header bits, the client's question name, TTLs), the client's OPT record is echoed as
//! the server would, and the reply is sent if it fits the client's size. Anything else (a miss,
//! a stale entry, a prefetch due, a reply that needs truncation) takes the async path.

use ferrodns_plugin::edns::{ALWAYS_SUPPORTED, is_supported};
use ferrodns_plugin::{FastAnswer, FastHook, WireQuery};
use tokio::time::Instant;

use crate::Cache;
use crate::entry::{self, ClientBits};

/// Append the OPT record the server would echo for this query; false when its options cannot
/// be read.
fn echo_opt(q: &WireQuery<'_>, out: &mut Vec<u8>) -> bool {
    let Some(opt) = q.opt else {
        return true;
    };
    let at = q.question_end;
    let Some(fixed) = q.packet.get(at..at + 11) else {
        return false;
    };
    let start = out.len();
    // Root owner, type OPT, the client's size as sent, extended rcode 0, version 0, the DO bit
    // and the high Z bits of the client's flags, then the supported options.
    out.extend_from_slice(&[0, 0, 41, fixed[3], fixed[4], 0, 0, fixed[7], 0, 0, 0]);
    let Some(mut rest) = q.packet.get(at + 11..at + 11 + usize::from(opt.rdlen)) else {
        return false;
    };
    let mut rdlen = 0usize;
    while !rest.is_empty() {
        let Some(head) = rest.get(..4) else {
            return false;
        };
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let Some(option) = rest.get(..4 + len) else {
            return false;
        };
        if ALWAYS_SUPPORTED.contains(&code) || is_supported(code) {
            out.extend_from_slice(option);
            rdlen += option.len();
        }
        rest = &rest[4 + len..];
    }
    let Ok(rdlen) = u16::try_from(rdlen) else {
        return false;
    };
    out[start + 9..start + 11].copy_from_slice(&rdlen.to_be_bytes());
    let arcount = u16::from_be_bytes([out[10], out[11]]).wrapping_add(1);
    out[10..12].copy_from_slice(&arcount.to_be_bytes());
    true
}

impl FastHook for Cache {
    fn answer(&self, q: &WireQuery<'_>, out: &mut Vec<u8>) -> FastAnswer {
        if !entry::in_zones(q.qname, &self.zones) {
            return FastAnswer::Pass;
        }
        // Counted under the listener the query came in on, as the slow path counts it.
        let Some(metrics) = self.known_metrics(q.server) else {
            return FastAnswer::Pass;
        };
        let do_bit = q.opt.is_some_and(|o| o.dnssec_ok);
        let cd = q.header.flags & 0x0010 != 0;
        let key = entry::key(q.qname, q.qtype, q.qclass, do_bit, cd);
        let now = Instant::now();
        let Some((e, kind)) = self.lookup(key, q.qname, q.qtype, q.qclass, now) else {
            return FastAnswer::Pass;
        };
        let ttl = e.ttl(now);
        if ttl <= 0 {
            return FastAnswer::Pass;
        }
        if self.cfg.prefetch > 0 {
            let threshold =
                (self.cfg.percentage as f64 / 100.0 * f64::from(e.orig_ttl)).ceil() as i64;
            if ttl <= threshold {
                return FastAnswer::Pass;
            }
        }
        let bits = ClientBits {
            id: q.header.id,
            flags: q.header.flags,
            do_bit,
            qname: q.qname,
        };
        e.write_reply(out, &bits, self.hit_ttl(&e, ttl));
        let limit = q.opt.map_or(512, |o| usize::from(o.udp_size).max(512));
        if !echo_opt(q, out) || out.len() > limit {
            out.clear();
            return FastAnswer::Pass;
        }
        if self.cfg.prefetch > 0 {
            e.update_freq(self.cfg.duration, now);
        }
        Self::count_lookup(&metrics, Some(kind));
        FastAnswer::Answered
    }
}

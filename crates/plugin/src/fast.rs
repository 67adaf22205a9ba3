//! The synchronous wire-level fast hook.
//!
//! Before a UDP datagram is decoded for the async chain, the server reads its header, question
//! and OPT record in place into a [`WireQuery`]. If the chosen server block allows it (every
//! handler ahead of the hook is [`crate::Plugin::fast_transparent`]), the first handler's
//! [`FastHook`] may write a complete reply into the output buffer without allocating; the server
//! then sends it in the same batch. Anything the hook does not answer goes the async way.

use crate::wire::{HEADER_LEN, WireHeader, WireOpt, skip_name};

/// A query read in place.
#[derive(Debug, Clone, Copy)]
pub struct WireQuery<'a> {
    /// The whole datagram.
    pub packet: &'a [u8],
    /// The header.
    pub header: WireHeader,
    /// The question's name in wire form, case as sent (no compression pointers).
    pub qname: &'a [u8],
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// Offset just after the question section.
    pub question_end: usize,
    /// The OPT record, when the request carries one.
    pub opt: Option<WireOpt>,
    /// The label of the listener the query came in on (`dns://:53`), as the slow path's
    /// `Request` has it: plugins shared by several listeners keep per-server state by it.
    /// Empty until the server's dispatcher sets it.
    pub server: &'a str,
}

impl<'a> WireQuery<'a> {
    /// Read a plain query with one question, an uncompressed name and at most an OPT record in
    /// the additional section. Returns `None` for anything else (those take the slow path).
    pub fn parse(packet: &'a [u8]) -> Option<Self> {
        let header = WireHeader::read(packet)?;
        if header.qdcount != 1 || header.ancount != 0 || header.nscount != 0 || header.arcount > 1 {
            return None;
        }
        let name_end = skip_name(packet, HEADER_LEN)?;
        // A pointer in the question name has nothing to point back to: leave it to the decoder.
        if packet[name_end - 1] != 0 {
            return None;
        }
        let qname = &packet[HEADER_LEN..name_end];
        let fixed = packet.get(name_end..name_end + 4)?;
        let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
        let question_end = name_end + 4;
        let opt = if header.arcount == 1 {
            // Only a root-owned OPT record is understood here.
            let rr = packet.get(question_end..question_end + 11)?;
            if rr[0] != 0 || u16::from_be_bytes([rr[1], rr[2]]) != 41 {
                return None;
            }
            let rdlen = u16::from_be_bytes([rr[9], rr[10]]);
            if question_end + 11 + rdlen as usize != packet.len() {
                return None;
            }
            Some(WireOpt {
                udp_size: u16::from_be_bytes([rr[3], rr[4]]),
                version: rr[6],
                dnssec_ok: rr[7] & 0x80 != 0,
                rdlen,
            })
        } else {
            if question_end != packet.len() {
                return None;
            }
            None
        };
        Some(WireQuery {
            packet,
            header,
            qname,
            qtype,
            qclass,
            question_end,
            opt,
            server: "",
        })
    }
}

/// What a fast hook did with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastAnswer {
    /// The complete reply is in the output buffer; send it.
    Answered,
    /// Not answered here: decode the query and run the async chain.
    Pass,
}

/// A synchronous, allocation-free answer path for UDP queries (see the module docs).
pub trait FastHook: Send + Sync {
    /// Answer `q` into `out` (cleared by the caller; its capacity is at least 65535 bytes) or
    /// pass. The reply must already fit the client's UDP size.
    fn answer(&self, q: &WireQuery<'_>, out: &mut Vec<u8>) -> FastAnswer;
}

/// What the server tells a [`FastObserver`] about one fast answer.
#[derive(Debug, Clone, Copy)]
pub struct FastSeen<'a> {
    /// The question's name, lowercased, in text form (`www.example.org.`).
    pub name: &'a str,
    /// Whether the client is on IPv6 (an IPv4 client on a dual-stack socket is not).
    pub client_v6: bool,
    /// The name of the plugin right after the observer in the chain (what CoreDNS's metrics
    /// name as the writer of a reply that came from further down the chain).
    pub next: &'static str,
    /// Time from the query's dispatch to the reply being ready.
    pub elapsed: std::time::Duration,
}

/// Sees the fast answers given past it (see [`crate::Plugin::fast_observer`]). Called on the
/// receive loop: it must be quick and must not block.
pub trait FastObserver: Send + Sync {
    /// `reply` is the complete reply about to be sent for `q`.
    fn observe(&self, q: &WireQuery<'_>, reply: &[u8], seen: &FastSeen<'_>);
}

//! # whoami
//!
//! Answers every query it receives with the client's address, port and transport, as CoreDNS's
//! *whoami* plugin does: an empty answer section, the AA bit, and two additional records owned by
//! the query name (case kept) with TTL 0: an A or AAAA record of the client's address and an SRV
//! record `_<proto>.<qname>` whose port is the client's port and whose target is the root.
//!
//! The plugin is terminal: it never calls the next plugin.

mod setup;

use std::net::IpAddr;

use bytes::Bytes;

use ferrodns_plugin::proto::op::{Message, OpCode, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::{A, AAAA, SRV};
use ferrodns_plugin::proto::rr::{Name, RData, Record};
use ferrodns_plugin::{Descriptor, Next, Plugin, PluginError, Reply, Request, async_trait};

/// The directive name.
pub const NAME: &str = "whoami";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// The request handler.
#[derive(Debug, Clone, Copy, Default)]
pub struct Whoami;

/// Build the whoami reply for a request, or `None` when the SRV owner name would be longer than
/// a domain name may be (the reply is then built in wire form).
pub fn reply_for(req: &Request) -> Option<Message> {
    let mut msg = req.reply();
    msg.metadata.authoritative = true;

    let mut qname = req.qname();
    qname.set_fqdn(true);
    let qclass = req.qclass();

    let addr = match req.client_ip() {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    let mut addr_rr = Record::from_rdata(qname.clone(), 0, addr);
    addr_rr.dns_class = qclass;

    let label = format!("_{}", req.protocol.as_str());
    let srv_name = qname.prepend_label(label.as_bytes()).ok()?;
    let mut srv_rr = Record::from_rdata(
        srv_name,
        0,
        RData::SRV(SRV::new(0, 0, req.src.port(), Name::root())),
    );
    srv_rr.dns_class = qclass;

    msg.additionals = vec![addr_rr, srv_rr];
    Some(msg)
}

/// The reply for a name too long for the SRV owner, in wire form: header, question, the
/// address record owned by a pointer to the question's name, and the SRV record owned by
/// `_<proto>` plus that pointer, exactly as CoreDNS's library compresses it.
fn overlong_reply(req: &Request) -> Option<Bytes> {
    use ferrodns_plugin::proto::serialize::binary::{BinEncodable, BinEncoder};

    let md = &req.message().metadata;
    let q = req.message().queries.first()?;
    let mut flags: u16 = 0x8000 | (u16::from(u8::from(md.op_code)) << 11) | 0x0400;
    if md.op_code == OpCode::Query {
        flags |= u16::from(md.recursion_desired) << 8;
        flags |= u16::from(md.checking_disabled) << 4;
    }
    let mut out = Vec::with_capacity(320);
    out.extend_from_slice(&md.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 2]);
    {
        let mut enc = BinEncoder::new(&mut out);
        enc.set_offset(12);
        q.emit(&mut enc).ok()?;
    }
    let class = u16::from(req.qclass()).to_be_bytes();
    let pointer = [0xc0, 0x0c];
    let (rtype, ip): (u16, Vec<u8>) = match req.client_ip() {
        IpAddr::V4(v4) => (1, v4.octets().to_vec()),
        IpAddr::V6(v6) => (28, v6.octets().to_vec()),
    };
    out.extend_from_slice(&pointer);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&class);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(ip.len() as u16).to_be_bytes());
    out.extend_from_slice(&ip);
    let label = format!("_{}", req.protocol.as_str());
    out.push(label.len() as u8);
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(&pointer);
    out.extend_from_slice(&33u16.to_be_bytes());
    out.extend_from_slice(&class);
    out.extend_from_slice(&[0, 0, 0, 0, 0, 7, 0, 0, 0, 0]);
    out.extend_from_slice(&req.src.port().to_be_bytes());
    out.push(0);
    Some(Bytes::from(out))
}

#[async_trait]
impl Plugin for Whoami {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        match reply_for(req) {
            Some(msg) => Ok(Reply::message(msg)),
            // The SRV owner `_<proto>.<qname>` is longer than a name may be: CoreDNS still
            // sends it, as the label `_<proto>` followed by a pointer to the question's name.
            None => Ok(overlong_reply(req)
                .map(Reply::Wire)
                .unwrap_or(Reply::Rcode(ResponseCode::ServFail))),
        }
    }
}

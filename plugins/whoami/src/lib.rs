//! # whoami
//!
//! Answers every query it receives with the client's address, port and transport, as CoreDNS's
//! *whoami* plugin does: an empty answer section, the AA bit, and two additional records owned by
//! the query name (case kept) with TTL 0: an A or AAAA record of the client's address and an SRV
//! record `_<proto>.<qname>` whose port is the client's port and whose target is the root.
//!
//! The plugin is terminal: it never calls the next plugin.

use std::net::IpAddr;
use std::sync::Arc;

use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::{A, AAAA, SRV};
use ferrodns_plugin::proto::rr::{Name, RData, Record};
use ferrodns_plugin::{
    Descriptor, Next, Plugin, PluginError, Reply, Request, Setup, SetupError, async_trait,
};

/// The directive name.
pub const NAME: &str = "whoami";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor { name: NAME, setup };

/// The request handler.
#[derive(Debug, Clone, Copy, Default)]
pub struct Whoami;

fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    // Only the first occurrence in the block is looked at, as upstream does: a later `whoami`
    // line is accepted whatever it holds.
    c.next();
    if c.next_arg() {
        return Err(SetupError::plugin(NAME, c.arg_err()));
    }
    c.add_plugin(Arc::new(Whoami));
    Ok(())
}

/// Build the whoami reply for a request, or `None` when the SRV owner name would be longer than
/// a domain name may be (upstream then fails to write anything).
pub fn reply_for(req: &Request) -> Option<Message> {
    // miekg/dns's SetReply: ID, QR, opcode, RD and CD for a QUERY, the first question.
    let request = &req.message.metadata;
    let mut msg = Message::new(request.id, MessageType::Response, request.op_code);
    if request.op_code == OpCode::Query {
        msg.metadata.recursion_desired = request.recursion_desired;
        msg.metadata.checking_disabled = request.checking_disabled;
    }
    msg.metadata.authoritative = true;
    msg.metadata.response_code = ResponseCode::NoError;
    if let Some(q) = req.message.queries.first() {
        msg.queries.push(q.clone());
    }

    let mut qname = req.qname();
    qname.set_fqdn(true);
    let qclass = req.qclass();

    // An IPv4-mapped IPv6 client address is an IPv4 client, as Go's `To4` sees it.
    let ip = match req.src.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    let addr = match ip {
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

#[async_trait]
impl Plugin for Whoami {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, _next: Next<'_>) -> Result<Reply, PluginError> {
        match reply_for(req) {
            Some(msg) => Ok(Reply::message(msg)),
            None => {
                tracing::debug!(target: "plugin/whoami", "SRV owner name too long for {}", req.qname());
                // Upstream's write fails and nothing reaches the client; the handler still
                // reports success.
                Ok(Reply::Rcode(ResponseCode::NoError))
            }
        }
    }
}

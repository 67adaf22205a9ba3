//! # any
//!
//! RFC 8482 minimal answers to `ANY` queries, as CoreDNS's *any* plugin gives them: a query of
//! type ANY is answered NOERROR with one `HINFO "ANY obsoleted" "See RFC 8482"` record owned by
//! the query name (case kept), class IN, TTL 8482. Queries of any other type go to the next
//! plugin.
//!
//! ```text
//! any
//! ```

mod setup;

use ferrodns_plugin::proto::op::Message;
use ferrodns_plugin::proto::rr::rdata::HINFO;
use ferrodns_plugin::proto::rr::{DNSClass, RData, Record, RecordType};
use ferrodns_plugin::{Descriptor, Next, Plugin, PluginError, Reply, Request, async_trait};

/// The directive name.
pub const NAME: &str = "any";

/// The TTL of the HINFO answer (the RFC's number).
pub const TTL: u32 = 8482;

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// The handler.
#[derive(Debug, Clone, Copy, Default)]
pub struct Any;

/// The reply to an ANY query: the request's header as miekg/dns's `SetReply` copies it and the
/// HINFO record.
pub fn reply_for(req: &Request) -> Message {
    let mut msg = req.reply();
    let hinfo = HINFO::new("ANY obsoleted".to_string(), "See RFC 8482".to_string());
    let mut rr = Record::from_rdata(req.qname(), TTL, RData::HINFO(hinfo));
    rr.dns_class = DNSClass::IN;
    msg.answers.push(rr);
    msg
}

#[async_trait]
impl Plugin for Any {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        if req.qtype() != RecordType::ANY {
            return next.serve(req).await;
        }
        Ok(Reply::message(reply_for(req)))
    }
}

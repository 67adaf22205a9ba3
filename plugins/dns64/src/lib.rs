//! # dns64
//!
//! CoreDNS's *dns64* plugin (RFC 6147): for AAAA queries whose reply has no AAAA record (or for
//! every AAAA query with `translate_all`), it asks the server itself for the name's A records
//! and answers with AAAA records that embed each IPv4 address in the configured prefix.

mod prefix;
pub mod setup;

use std::net::IpAddr;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use ferrodns_pkg::response::{self, Type};
use ferrodns_plugin::proto::op::{Edns, Message};
use ferrodns_plugin::proto::rr::rdata::AAAA;
use ferrodns_plugin::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use ferrodns_plugin::wire::rcode_reply;
use ferrodns_plugin::{
    Descriptor, Metrics, Next, Plugin, PluginError, Reply, Request, async_trait,
};

pub use prefix::{Prefix, PrefixError, parse as parse_prefix};

/// The directive name.
pub const NAME: &str = "dns64";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor =
    Descriptor::new(NAME, setup::setup).with_metrics(register_metrics);

/// The TTL a synthesised record is capped at when the original reply has no SOA record.
pub const DEFAULT_SOA_TTL: u32 = 600;

/// Labels of a series: `server`.
type Labels = Vec<(&'static str, String)>;

/// The `coredns_dns64_requests_translated_total` family.
fn translated_family(m: &Metrics) -> Family<Labels, Counter> {
    m.register(
        "coredns_dns64_requests_translated",
        "Counter of DNS requests translated by dns64.",
        Family::<Labels, Counter>::default,
    )
}

/// CoreDNS registers the family when the process starts.
fn register_metrics(m: &Metrics) {
    translated_family(m);
}

/// What a block's `dns64` lines configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    /// The prefix IPv4 addresses are embedded in (default `64:ff9b::/96`).
    pub prefix: Prefix,
    /// Synthesise even when the reply has AAAA records (not RFC 6147 section 5.1.1).
    pub translate_all: bool,
    /// Also translate for IPv4 clients.
    pub allow_ipv4: bool,
}

/// The request handler.
pub struct Dns64 {
    cfg: Config,
    translated: Family<Labels, Counter>,
}

impl Dns64 {
    /// A handler for `cfg`, counting in `metrics`.
    pub fn new(cfg: Config, metrics: &Metrics) -> Self {
        Dns64 {
            cfg,
            translated: translated_family(metrics),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Whether the request is one to translate: an IN AAAA query, from an IPv6 client unless
    /// `allow_ipv4` (an IPv4-mapped address is an IPv4 client, as Go sees it).
    fn intercepts(&self, req: &Request) -> bool {
        let v4 = match req.src.ip() {
            IpAddr::V4(_) => true,
            IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
        };
        if v4 && !self.cfg.allow_ipv4 {
            return false;
        }
        req.qtype() == RecordType::AAAA && req.qclass() == DNSClass::IN
    }

    /// Whether a reply needs synthesis: not NXDOMAIN, and (unless `translate_all`) no AAAA
    /// record in its answer.
    fn should_translate(&self, reply: &Message) -> bool {
        if response::typify(Some(reply), response::unix_now()) == Type::NameError {
            return false;
        }
        self.cfg.translate_all
            || !reply
                .answers
                .iter()
                .any(|r| r.record_type() == RecordType::AAAA)
    }

    /// Build the translated reply from the original reply and the A lookup's reply: header
    /// and question of the request (NOERROR), the A reply's TC bit, authority and additional
    /// sections (with its OPT record), its answer with every A record turned into an AAAA record whose TTL is the
    /// smaller of the A record's and the original reply's SOA record's (600 without one).
    pub fn synthesize(&self, request: &Message, original: &Message, a: &Message) -> Message {
        let mut out = rcode_reply(request, Default::default());
        out.metadata.truncation = a.metadata.truncation;
        // The A reply's additional section, OPT record included (CoreDNS copies its Extra).
        out.additionals = a.additionals.clone();
        out.edns = a.edns.clone();
        out.authorities = a.authorities.clone();
        let soa_ttl = original
            .authorities
            .iter()
            .rev()
            .find(|r| r.record_type() == RecordType::SOA)
            .map_or(DEFAULT_SOA_TTL, |r| r.ttl);
        out.answers = a
            .answers
            .iter()
            .map(|rr| match &rr.data {
                RData::A(v4) => {
                    let mut aaaa = Record::from_rdata(
                        rr.name.clone(),
                        rr.ttl.min(soa_ttl),
                        RData::AAAA(AAAA(self.cfg.prefix.embed(v4.0))),
                    );
                    aaaa.dns_class = rr.dns_class;
                    aaaa
                }
                _ => rr.clone(),
            })
            .collect();
        out
    }
}

/// The message of a chain's outcome, as CoreDNS's non-writer captures it: a message written
/// (also along with an error), or wire bytes decoded (ferrodns passes upstream bytes through
/// where CoreDNS writes a message).
fn written(result: &Result<Reply, PluginError>) -> Option<Message> {
    match result {
        Ok(Reply::Message(m)) => Some((**m).clone()),
        Ok(Reply::Wire(b)) => Message::from_vec(b).ok(),
        Err(e) => e.reply.as_deref().cloned(),
        Ok(Reply::Rcode(_) | Reply::Drop) => None,
    }
}

#[async_trait]
impl Plugin for Dns64 {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        if !self.intercepts(req) {
            return next.serve(req).await;
        }
        let result = next.serve(req).await;
        let Some(original) = written(&result) else {
            return result;
        };
        if !self.should_translate(&original) {
            return result;
        }
        let mut name: Name = req.qname().to_lowercase();
        name.set_fqdn(true);
        // CoreDNS returns SERVFAIL with the lookup's own error.
        let mut a = req.lookup(name, RecordType::A).await?;
        if a.edns.is_none()
            && let Some(e) = &req.message().edns
        {
            // CoreDNS's lookup reply has passed the server's writer, which gives it the OPT
            // record of the lookup query (the client's size and DO bit): it is part of the
            // reply dns64 writes, and of the size `log` reports for it.
            let mut opt = Edns::new();
            opt.set_max_payload(e.max_payload());
            opt.set_dnssec_ok(e.flags().dnssec_ok);
            a.edns = Some(opt);
        }
        let out = self.synthesize(req.message(), &original, &a);
        self.translated
            .get_or_create(&vec![("server", req.server.to_string())])
            .inc();
        Ok(Reply::message(out))
    }
}

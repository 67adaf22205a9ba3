//! # prometheus
//!
//! Exports the process's metrics in the Prometheus text format on `/metrics`, and counts every
//! request that passes through the block's chain in CoreDNS's `coredns_dns_*` families (see
//! [`ferrodns_pkg::vars`]), as CoreDNS's *prometheus* (metrics) plugin does.
//!
//! Blocks naming the same address share one listener. The `plugin` label of
//! `coredns_dns_responses_total` is the name of the handler right after this one when a handler
//! wrote the reply, and empty when the server wrote it (an error rcode), as in CoreDNS.

mod setup;
pub use setup::parse;

use std::time::Instant;

use ferrodns_pkg::vars::{DnsMetrics, Report, rcode_label};
use ferrodns_plugin::wire::{client_write, reply_summary, uncompressed_len};
use ferrodns_plugin::{
    Descriptor, FastObserver, FastSeen, HttpHandler, HttpResponse, Metrics, Next, Plugin,
    PluginError, Protocol, Reply, Request, WireQuery, async_trait,
};

/// The directive name.
pub const NAME: &str = "prometheus";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// CoreDNS's default address.
pub const DEFAULT_ADDR: &str = "localhost:9153";

/// What a block's `prometheus` line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `host:port` to serve `/metrics` on.
    pub addr: String,
}

/// Serves `/metrics` in the classic text format whatever the `Accept` header asks: CoreDNS's
/// promhttp handler does not enable OpenMetrics, so v1.14.7 answers
/// `application/openmetrics-text` with the classic format too.
pub(crate) struct Exporter(pub(crate) Metrics);

impl HttpHandler for Exporter {
    fn handle(&self) -> HttpResponse {
        HttpResponse {
            status: 200,
            content_type: Metrics::CLASSIC_CONTENT_TYPE,
            body: self.0.encode_classic().into_bytes(),
        }
    }
}

/// The request handler: counts what passes through.
pub struct Prometheus {
    pub(crate) zones: Vec<String>,
    pub(crate) dns: DnsMetrics,
}

#[async_trait]
impl Plugin for Prometheus {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fast_observer(&self) -> Option<&dyn FastObserver> {
        Some(self)
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        let start = Instant::now();
        let request_size = req.raw.len();
        let qname = req.name_lower();
        let writer = next.peek().unwrap_or("");
        let result = next.serve(req).await;
        let (rcode, size, plugin) = match &result {
            Ok(Reply::Message(m)) => (
                u16::from(m.metadata.response_code),
                uncompressed_len(m).unwrap_or(0),
                writer,
            ),
            Ok(Reply::Wire(b)) => {
                let (rcode, size) = wire_facts(b);
                (rcode, size, writer)
            }
            Ok(Reply::Rcode(rc)) | Err(PluginError { rcode: rc, .. }) if !client_write(*rc) => {
                (u16::from(*rc), 0, "")
            }
            _ => (0, 0, ""),
        };
        self.dns.report(&Report {
            server: &req.server,
            zone: ferrodns_pkg::names::zone_match(&self.zones, &qname).unwrap_or("."),
            view: "",
            proto: req.protocol,
            ipv6: req.client_ip().is_ipv6(),
            qtype: u16::from(req.qtype()),
            dnssec_ok: req.do_bit(),
            rcode: rcode_label(rcode),
            plugin,
            response_size: size,
            request_size,
            duration: start.elapsed(),
        });
        result
    }
}

/// A reply the server gave from a fast hook further down the chain (a cache hit) counts exactly
/// as if it had come back through `serve`.
impl FastObserver for Prometheus {
    fn observe(&self, q: &WireQuery<'_>, reply: &[u8], seen: &FastSeen<'_>) {
        let (rcode, size) = wire_facts(reply);
        self.dns.report(&Report {
            server: q.server,
            zone: ferrodns_pkg::names::zone_match(&self.zones, seen.name).unwrap_or("."),
            view: "",
            proto: Protocol::Udp,
            ipv6: seen.client_v6,
            qtype: q.qtype,
            dnssec_ok: q.opt.is_some_and(|o| o.dnssec_ok),
            rcode: rcode_label(rcode),
            plugin: seen.next,
            response_size: size,
            request_size: q.packet.len(),
            duration: seen.elapsed,
        });
    }
}

/// The rcode and size (uncompressed, as CoreDNS's `Msg.Len()`) of a reply in wire form. Read in
/// place; a reply the walk cannot follow is decoded, and one that does not decode either counts
/// as NOERROR with its wire length.
fn wire_facts(b: &[u8]) -> (u16, usize) {
    if let Some(s) = reply_summary(b) {
        return (s.rcode, s.uncompressed_len);
    }
    match ferrodns_plugin::proto::op::Message::from_vec(b) {
        Ok(m) => (
            u16::from(m.metadata.response_code),
            uncompressed_len(&m).unwrap_or(b.len()),
        ),
        Err(_) => (0, b.len()),
    }
}

//! # hosts
//!
//! Serves A, AAAA and PTR answers from a hosts(5) file and from hosts lines written in the
//! Corefile, as CoreDNS's *hosts* plugin does.
//!
//! ```text
//! hosts [FILE [ZONES...]] {
//!     [INLINE]
//!     ttl SECONDS
//!     no_reverse
//!     reload DURATION
//!     fallthrough [ZONES...]
//!     fallthrough_unsupported
//! }
//! ```
//!
//! * Names under the zones get their addresses (AA set, owner the lowercased query name); a name
//!   `*.zone` matches one more label. A name with addresses of the other family or a query of
//!   another type gets an empty NOERROR answer (unless `fallthrough_unsupported`).
//! * PTR queries are answered from the generated reverse data whatever the zones; with no data
//!   they go to the next plugin.
//! * Anything else falls through when `fallthrough` covers the name, else it is SERVFAIL.

mod hostsfile;
mod setup;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::{A, AAAA, PTR};
use ferrodns_plugin::proto::rr::{Name, RData, Record, RecordType};
use ferrodns_plugin::{
    Descriptor, Lifecycle, Next, Plugin, PluginError, Reply, Request, SetupError, async_trait,
};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use ferrodns_pkg::names;
pub use ferrodns_pkg::names::Fall;
pub use hostsfile::{HostsMap, Hostsfile, ReadOutcome, parse as parse_hosts};
pub use setup::parse;

/// The directive name.
pub const NAME: &str = "hosts";

/// The tracing target of the lines this plugin logs.
pub const TARGET: &str = "plugin/hosts";

/// The default file.
pub const DEFAULT_PATH: &str = "/etc/hosts";

/// The default TTL of the answers.
pub const DEFAULT_TTL: u32 = 3600;

/// How often the file is checked by default.
pub const DEFAULT_RELOAD: Duration = Duration::from_secs(5);

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor =
    Descriptor::new(NAME, setup::setup).with_metrics(register_metrics);

/// CoreDNS registers this plugin's families when the process starts, so its unlabelled ones
/// show at 0 even when no block uses it.
fn register_metrics(m: &ferrodns_plugin::Metrics) {
    HostsMetrics::register(m);
}

/// What a `hosts` directive configures.
#[derive(Debug, Clone)]
pub struct Config {
    /// The hosts file.
    pub path: String,
    /// The zones served.
    pub origins: Vec<String>,
    /// The inline lines, as written (arguments joined by one space).
    pub inline: Vec<String>,
    /// `fallthrough` zones.
    pub fall: Fall,
    /// `fallthrough_unsupported`.
    pub fall_unsupported: bool,
    /// Generate PTR data (off with `no_reverse`).
    pub reverse: bool,
    /// The answers' TTL.
    pub ttl: u32,
    /// How often the file is checked (zero: never).
    pub reload: Duration,
}

/// The plugin's metric families.
#[derive(Clone)]
pub struct HostsMetrics {
    /// `coredns_hosts_entries{hostsfile}`.
    pub entries: Family<Vec<(String, String)>, Gauge>,
    /// `coredns_hosts_reload_timestamp_seconds`.
    pub reload: Gauge<f64, AtomicU64>,
}

impl HostsMetrics {
    /// Register (or find) the families on a registry.
    pub fn register(m: &ferrodns_plugin::Metrics) -> Self {
        HostsMetrics {
            entries: m.register(
                "coredns_hosts_entries",
                "The combined number of entries in hosts and Corefile.",
                Family::default,
            ),
            reload: m.register(
                "coredns_hosts_reload_timestamp_seconds",
                "The timestamp of the last reload of hosts file.",
                Gauge::default,
            ),
        }
    }

    /// Fresh families on no registry (for tests).
    pub fn unregistered() -> Self {
        HostsMetrics {
            entries: Family::default(),
            reload: Gauge::default(),
        }
    }
}

/// The handler.
pub struct Hosts {
    /// The hosts data.
    pub data: Arc<Hostsfile>,
    zones: Vec<String>,
    fall: Fall,
    fall_unsupported: bool,
    ttl: u32,
    pub(crate) reload: Duration,
    metrics: HostsMetrics,
}

impl Hosts {
    /// A handler for a parsed configuration (the file is not read yet; see [`Hosts::read`]).
    pub fn new(cfg: Config, metrics: HostsMetrics) -> Self {
        let data = Arc::new(Hostsfile::new(
            cfg.path.clone(),
            cfg.origins.clone(),
            cfg.reverse,
            &cfg.inline,
        ));
        Hosts {
            data,
            zones: cfg.origins,
            fall: cfg.fall,
            fall_unsupported: cfg.fall_unsupported,
            ttl: cfg.ttl,
            reload: cfg.reload,
            metrics,
        }
    }

    /// Re-read the file if it changed and update the metrics (blocking I/O).
    pub fn read(&self) -> ReadOutcome {
        read_and_record(&self.data, &self.metrics)
    }

    fn answer(&self, req: &Request, answers: Vec<Record>) -> Message {
        let md = &req.message().metadata;
        let mut msg = Message::new(md.id, MessageType::Response, md.op_code);
        if md.op_code == OpCode::Query {
            msg.metadata.recursion_desired = md.recursion_desired;
            msg.metadata.checking_disabled = md.checking_disabled;
        }
        msg.metadata.authoritative = true;
        msg.metadata.response_code = ResponseCode::NoError;
        if let Some(q) = req.message().queries.first() {
            msg.queries.push(q.clone());
        }
        msg.answers = answers;
        msg
    }

    fn addresses(&self, owner: &Name, ips: Vec<IpAddr>) -> Vec<Record> {
        ips.into_iter()
            .map(|ip| {
                let data = match ip {
                    IpAddr::V4(v4) => RData::A(A(v4)),
                    IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
                };
                Record::from_rdata(owner.clone(), self.ttl, data)
            })
            .collect()
    }

    fn other_records_exist(&self, qname: &str) -> bool {
        !self.data.lookup_host(qname, true).is_empty()
            || !self.data.lookup_host(qname, false).is_empty()
    }
}

fn read_and_record(data: &Hostsfile, metrics: &HostsMetrics) -> ReadOutcome {
    let (outcome, mtime) = data.read();
    if let ReadOutcome::Loaded(n) = outcome {
        tracing::debug!(target: TARGET, "Parsed hosts file into {n} entries");
        metrics
            .entries
            .get_or_create(&vec![("hostsfile".to_string(), data.path.clone())])
            .set((data.inline().len() + n) as i64);
        if let Some(t) = mtime {
            metrics.reload.set(hostsfile::unix_seconds(t));
        }
    }
    outcome
}

/// Reads the file at startup, then every `reload` until shutdown.
pub struct HostsLifecycle {
    pub(crate) data: Arc<Hostsfile>,
    pub(crate) metrics: HostsMetrics,
    pub(crate) reload: Duration,
    pub(crate) stop: watch::Sender<bool>,
}

#[async_trait]
impl Lifecycle for HostsLifecycle {
    async fn on_startup(&self) -> Result<(), SetupError> {
        let data = self.data.clone();
        let metrics = self.metrics.clone();
        let _ = tokio::task::spawn_blocking(move || read_and_record(&data, &metrics)).await;
        if self.reload.is_zero() {
            return Ok(());
        }
        let data = self.data.clone();
        let metrics = self.metrics.clone();
        ferrodns_plugin::every(self.reload, self.stop.subscribe(), move || {
            read_and_record(&data, &metrics);
        });
        Ok(())
    }

    async fn on_shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

#[async_trait]
impl Plugin for Hosts {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        let qname = req.name_lower();
        let qtype = req.qtype();
        let in_zone = names::zone_match(&self.zones, &qname).is_some();
        if !in_zone && qtype != RecordType::PTR {
            return next.serve(req).await;
        }
        let owner = req.qname().to_lowercase();
        let answers = match qtype {
            RecordType::PTR => {
                let names = names::address_from_reverse(&qname)
                    .map(|ip| self.data.lookup_addr(ip))
                    .unwrap_or_default();
                if names.is_empty() {
                    return next.serve(req).await;
                }
                names
                    .iter()
                    .filter_map(|n| Name::from_ascii(n).ok())
                    .map(|n| Record::from_rdata(owner.clone(), self.ttl, RData::PTR(PTR(n))))
                    .collect()
            }
            RecordType::A => self.addresses(&owner, self.data.lookup_host(&qname, true)),
            RecordType::AAAA => self.addresses(&owner, self.data.lookup_host(&qname, false)),
            _ => {
                if self.fall_unsupported && self.fall.through(&qname) {
                    return next.serve(req).await;
                }
                Vec::new()
            }
        };
        if answers.is_empty() && !self.other_records_exist(&qname) {
            if self.fall.through(&qname) {
                return next.serve(req).await;
            }
            return Ok(Reply::Rcode(ResponseCode::ServFail));
        }
        Ok(Reply::message(self.answer(req, answers)))
    }
}

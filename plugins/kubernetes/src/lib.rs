//! # kubernetes
//!
//! Cluster DNS from a Kubernetes API server, as CoreDNS v1.14.7's *kubernetes* plugin serves
//! it: the records of the Kubernetes DNS specification for Services, headless Services and
//! their endpoints, ExternalName CNAMEs, pods, PTR records for cluster IPs and endpoint
//! addresses, `dns-version`, and the zone's SOA and NS.
//!
//! ```text
//! kubernetes [ZONES...] {
//!     endpoint URL
//!     tls CERT KEY CACERT
//!     kubeconfig KUBECONFIG [CONTEXT]
//!     namespaces NAMESPACE...
//!     labels EXPRESSION
//!     namespace_labels EXPRESSION
//!     pods POD-MODE
//!     endpoint_pod_names
//!     ttl TTL
//!     noendpoints
//!     fallthrough [ZONES...]
//!     ignore empty_service
//!     multicluster [ZONES...]
//!     startup_timeout DURATION
//!     zonal
//!     apiserver_qps QPS
//!     apiserver_burst BURST
//!     apiserver_max_inflight N
//! }
//! ```
//!
//! Services, EndpointSlices, Namespaces and (with `pods verified`) Pods are watched with
//! kube-rs; queries are answered from an in-memory index ([`index`]). The answer rules are in
//! [`records`] and in this file's handler, which follows CoreDNS's generic backend functions
//! (`plugin.A`, `plugin.SRV`, ...) that the kubernetes plugin answers through.

pub mod client;
pub mod index;
pub mod records;
mod rest;
mod selector;
pub mod setup;
mod watch;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use ferrodns_pkg::names;
use ferrodns_plugin::prometheus_client::metrics::family::Family;
use ferrodns_plugin::prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use ferrodns_plugin::proto::op::{Message, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use ferrodns_plugin::proto::rr::{Name, RData, Record, RecordType};
use ferrodns_plugin::{
    AutoPather, Descriptor, Externaler, Lifecycle, Next, Plugin, PluginError, Readiness, Reply,
    Request, ServiceRecord, Setup, SetupError, async_trait, presentation,
};
use tokio::sync::watch as tokio_watch;

use ferrodns_plugin::tokio;

use crate::index::{Kind, Store};
use crate::records::{HostType, Lookup, LookupError, Rec};
use crate::setup::{Config, PodMode};

/// The directive name.
pub const NAME: &str = "kubernetes";
/// The log target (`plugin/kubernetes`).
pub const TARGET: &str = "plugin/kubernetes";
/// The schema version `dns-version.<zone>` answers.
pub const DNS_SCHEMA_VERSION: &str = "1.1.0";
/// CNAME chains longer than this are not followed.
const MAX_CNAME_CHAIN: usize = 10;

/// The plugin's descriptor.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup_fn);

/// The handler and everything it answers from.
pub struct Kubernetes {
    cfg: Config,
    store: Arc<Store>,
    local_ips: Arc<OnceLock<Vec<IpAddr>>>,
    auto_path_search: Vec<String>,
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Kubernetes {
    fn local_ips(&self) -> &[IpAddr] {
        self.local_ips.get().map(Vec::as_slice).unwrap_or(&[])
    }

    fn lookup<'a>(&'a self, index: &'a index::Index) -> Lookup<'a> {
        Lookup {
            cfg: &self.cfg,
            index,
            local_ips: self.local_ips(),
        }
    }

    /// CoreDNS's `Services`: the records for `name` (lowercase) and `qtype` under `zone`.
    fn services(&self, name: &str, zone: &str, qtype: RecordType) -> Result<Vec<Rec>, LookupError> {
        let index = self.store.read();
        let l = self.lookup(&index);
        let zone_l = zone.to_ascii_lowercase();
        match qtype {
            RecordType::TXT => {
                let segs = records::base_labels(name, &zone_l);
                if segs.is_some_and(|(l, n)| n == 1 && l[0] == "dns-version") {
                    return Ok(vec![Rec {
                        host: String::new(),
                        port: 0,
                        text: DNS_SCHEMA_VERSION.into(),
                        ttl: 28800,
                        target: String::new(),
                    }]);
                }
                let (recs, err) = match l.records(name, zone) {
                    Ok(r) => (r, None),
                    Err(e) => (Vec::new(), Some(e)),
                };
                if !recs.is_empty() {
                    return Ok(Vec::new());
                }
                if err.is_none()
                    && self.cfg.zonal
                    && records::parse_request(name, &zone_l, false, true)
                        .is_ok_and(|r| !r.topo_zone.is_empty())
                {
                    return Ok(Vec::new());
                }
                return Err(LookupError::NoItems);
            }
            RecordType::NS => {
                return Ok(l
                    .ns_addrs(false, false, zone)
                    .into_iter()
                    .map(|(n, ip)| Rec {
                        host: ip.to_string(),
                        port: 0,
                        text: String::new(),
                        ttl: self.cfg.ttl,
                        target: n,
                    })
                    .collect());
            }
            _ => {}
        }
        if zone_l != "." && name.strip_prefix("ns.dns.") == Some(zone_l.as_str()) {
            return Ok(l
                .ns_addrs(false, false, zone)
                .into_iter()
                .filter(|(_, ip)| {
                    (ip.is_ipv4() && qtype == RecordType::A)
                        || (ip.is_ipv6() && qtype == RecordType::AAAA)
                })
                .map(|(_, ip)| Rec {
                    host: ip.to_string(),
                    port: 0,
                    text: String::new(),
                    ttl: self.cfg.ttl,
                    target: String::new(),
                })
                .collect());
        }
        let recs = l.records(name, zone)?;
        if qtype != RecordType::SRV {
            return Ok(recs);
        }
        Ok(recs
            .into_iter()
            .filter(|r| r.host_type() != HostType::Cname)
            .collect())
    }

    /// CoreDNS's `checkForApex`.
    fn services_apex(
        &self,
        name: &str,
        zone: &str,
        qtype: RecordType,
    ) -> Result<Vec<Rec>, LookupError> {
        if !name.eq_ignore_ascii_case(zone) {
            return self.services(name, zone, qtype);
        }
        let apex = format!(
            "apex.dns.{}",
            records::zone_suffix(&zone.to_ascii_lowercase())
        );
        match self.services(&apex, zone, qtype) {
            Ok(r) => Ok(r),
            Err(_) => self.services(name, zone, qtype),
        }
    }

    /// CoreDNS's `plugin.A`, `plugin.AAAA` and `plugin.TXT` (`qtype` says which): records for
    /// `qname` (its case kept), following CNAMEs inside the zone and asking the server for
    /// those outside.
    fn address_records<'a>(
        &'a self,
        req: &'a Request,
        qname: String,
        zone: &'a str,
        qtype: RecordType,
        previous: Vec<Record>,
    ) -> BoxFut<'a, Result<(Vec<Record>, bool), LookupError>> {
        Box::pin(async move {
            let name = qname.to_ascii_lowercase();
            let services = if qtype == RecordType::TXT {
                self.services(&name, zone, qtype)?
            } else {
                self.services_apex(&name, zone, qtype)?
            };
            let mut records = Vec::new();
            let mut truncated = false;
            let mut dup: Vec<&str> = Vec::new();
            for serv in &services {
                match serv.host_type() {
                    HostType::Cname => {
                        let host = names::fqdn(&serv.host);
                        if names::is_subdomain(&name, &host) {
                            continue;
                        }
                        let Some(cname) = record(&qname, serv.ttl, cname_rdata(&host)) else {
                            continue;
                        };
                        if previous.len() > MAX_CNAME_CHAIN {
                            continue;
                        }
                        if previous.iter().any(|r| r.data == cname.data) {
                            continue;
                        }
                        if names::is_subdomain(zone, &host) {
                            let mut chain = previous.clone();
                            chain.push(cname.clone());
                            let next = self
                                .address_records(req, host.clone(), zone, qtype, chain)
                                .await;
                            if let Ok((next, tc)) = next {
                                if !next.is_empty() {
                                    records.push(cname);
                                    records.extend(next);
                                }
                                truncated |= tc;
                            }
                            continue;
                        }
                        let Ok(target) = Name::from_ascii(&host) else {
                            continue;
                        };
                        let Ok(m1) = req.lookup(target, qtype).await else {
                            continue;
                        };
                        if m1.metadata.truncation && qtype != RecordType::TXT {
                            truncated = true;
                        }
                        records.push(cname);
                        records.extend(m1.answers.iter().cloned());
                    }
                    HostType::A(ip)
                        if qtype == RecordType::A && !dup.contains(&serv.host.as_str()) =>
                    {
                        dup.push(&serv.host);
                        records.extend(record(&qname, serv.ttl, RData::A(A(ip))));
                    }
                    HostType::Aaaa(ip)
                        if qtype == RecordType::AAAA && !dup.contains(&serv.host.as_str()) =>
                    {
                        dup.push(&serv.host);
                        records.extend(record(&qname, serv.ttl, RData::AAAA(AAAA(ip))));
                    }
                    HostType::Txt
                        if qtype == RecordType::TXT && !dup.contains(&serv.text.as_str()) =>
                    {
                        dup.push(&serv.text);
                        records.extend(record(
                            &qname,
                            serv.ttl,
                            RData::TXT(TXT::new(split255(&serv.text))),
                        ));
                    }
                    _ => {}
                }
            }
            Ok((records, truncated))
        })
    }

    /// CoreDNS's `plugin.SRV`.
    fn srv(&self, qname: &str, zone: &str) -> Result<(Vec<Record>, Vec<Record>), LookupError> {
        let services = self.services(&qname.to_ascii_lowercase(), zone, RecordType::SRV)?;
        let mut total: std::collections::HashMap<i32, i64> = std::collections::HashMap::new();
        for _ in &services {
            // Every record has priority 0 and weight 0 (counted as 100).
            *total.entry(0).or_default() += 100;
        }
        let mut records = Vec::new();
        let mut extra = Vec::new();
        let mut dup: std::collections::HashSet<(String, u16, String)> = Default::default();
        for serv in &services {
            if serv.port == -1 {
                continue;
            }
            let w = (100.0 / total.get(&0).copied().unwrap_or(100) as f64) * 100.0;
            let weight = (w.floor() as u16).max(1);
            let addr = match serv.host_type() {
                HostType::A(ip) => RData::A(A(ip)),
                HostType::Aaaa(ip) => RData::AAAA(AAAA(ip)),
                _ => continue,
            };
            let target = serv.target.clone();
            let Ok(tname) = Name::from_ascii(&target) else {
                continue;
            };
            let port = serv.port as u16;
            if dup.insert((target.to_ascii_lowercase(), port, String::new())) {
                records.extend(record(
                    qname,
                    serv.ttl,
                    RData::SRV(SRV::new(0, weight, port, tname.clone())),
                ));
            }
            if dup.insert((target.to_ascii_lowercase(), 0, serv.host.clone())) {
                extra.extend(record(&target, serv.ttl, addr));
            }
        }
        Ok((records, extra))
    }

    /// CoreDNS's `plugin.PTR` with the kubernetes `Reverse`.
    fn ptr(&self, qname: &str, zone: &str) -> Result<Vec<Record>, LookupError> {
        let name = qname.to_ascii_lowercase();
        let services = match names::address_from_reverse(&name) {
            Some(ip) => {
                let index = self.store.read();
                let recs = self.lookup(&index).reverse(&ip.to_string());
                if recs.is_empty() {
                    return Err(LookupError::NoItems);
                }
                recs
            }
            None => {
                let index = self.store.read();
                self.lookup(&index).records(&name, zone)?;
                return Ok(Vec::new());
            }
        };
        let mut out = Vec::new();
        let mut dup: Vec<&str> = Vec::new();
        for s in &services {
            if s.host.parse::<IpAddr>().is_err() && !dup.contains(&s.host.as_str()) {
                dup.push(&s.host);
                if let Ok(t) = Name::from_ascii(names::fqdn(&s.host)) {
                    out.extend(record(qname, s.ttl, RData::PTR(PTR(t))));
                }
            }
        }
        Ok(out)
    }

    /// CoreDNS's `plugin.NS` at the apex.
    fn ns(&self, qname: &str, zone: &str) -> Result<(Vec<Record>, Vec<Record>), LookupError> {
        let services = self.services(
            &format!(
                "ns.dns.{}",
                records::zone_suffix(&zone.to_ascii_lowercase())
            ),
            zone,
            RecordType::NS,
        )?;
        let mut records = Vec::new();
        let mut extra = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for s in &services {
            let addr = match s.host_type() {
                HostType::A(ip) => RData::A(A(ip)),
                HostType::Aaaa(ip) => RData::AAAA(AAAA(ip)),
                _ => {
                    return Err(LookupError::Other(format!(
                        "NS record must be an IP address: {}",
                        s.host
                    )));
                }
            };
            let target = names::fqdn(&s.target);
            extra.extend(record(&target, s.ttl, addr));
            if seen.contains(&target) {
                continue;
            }
            if let Ok(t) = Name::from_ascii(&target) {
                records.extend(record(qname, s.ttl, RData::NS(NS(t))));
            }
            seen.push(target);
        }
        Ok((records, extra))
    }

    /// CoreDNS's `plugin.CNAME`.
    fn cname(&self, qname: &str, zone: &str) -> Result<Vec<Record>, LookupError> {
        let services = self.services(&qname.to_ascii_lowercase(), zone, RecordType::CNAME)?;
        Ok(services
            .first()
            .filter(|s| s.host.parse::<IpAddr>().is_err())
            .and_then(|s| record(qname, s.ttl, cname_rdata(&names::fqdn(&s.host))))
            .into_iter()
            .collect())
    }

    /// The zone's SOA (CoreDNS's `plugin.SOA`).
    fn soa(&self, zone: &str) -> Option<Record> {
        let ttl = self.cfg.ttl.min(300);
        let zs = records::zone_suffix(zone);
        let mname = Name::from_ascii(format!("ns.dns.{zs}")).ok()?;
        let rname = Name::from_ascii(format!("hostmaster.{zs}")).ok()?;
        record(
            zone,
            ttl,
            RData::SOA(SOA::new(
                mname,
                rname,
                self.serial(zone),
                7200,
                1800,
                86400,
                self.cfg.ttl,
            )),
        )
    }

    /// CoreDNS's `Serial`: when the zone's data last changed.
    fn serial(&self, zone: &str) -> u32 {
        let z = zone.to_ascii_lowercase();
        if names::zone_match(&self.cfg.multicluster, &z).is_some() {
            self.store.mc_modified() as u32
        } else {
            self.store.modified() as u32
        }
    }

    fn backend_error(&self, req: &Request, zone: &str, rcode: ResponseCode) -> Reply {
        let mut m = req.reply_rcode(rcode);
        m.metadata.authoritative = true;
        m.authorities.extend(self.soa(zone));
        Reply::message(m)
    }
}

/// The record `name ttl IN rdata`, when `name` is a valid name.
fn record(name: &str, ttl: u32, rdata: RData) -> Option<Record> {
    let n = Name::from_ascii(name).ok()?;
    Some(Record::from_rdata(n, ttl, rdata))
}

fn cname_rdata(target: &str) -> RData {
    match Name::from_ascii(target) {
        Ok(n) => RData::CNAME(CNAME(n)),
        Err(_) => RData::CNAME(CNAME(Name::root())),
    }
}

/// A text in strings of at most 255 bytes.
fn split255(s: &str) -> Vec<String> {
    if s.len() <= 255 {
        return vec![s.to_string()];
    }
    s.as_bytes()
        .chunks(255)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

#[async_trait]
impl Plugin for Kubernetes {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        let Some(q) = req.question() else {
            return next.serve(req).await;
        };
        let qname = presentation(q.name());
        let qtype = q.query_type();
        let lower = qname.to_ascii_lowercase();
        let Some(zone_l) = names::zone_match(&self.cfg.zones, &lower) else {
            return next.serve(req).await;
        };
        // The zone in the query's own case, as CoreDNS keeps it.
        let zone = qname[qname.len().saturating_sub(zone_l.len())..].to_string();
        let req_ref: &Request = req;
        let mut truncated = false;
        let mut extra = Vec::new();
        let result: Result<Vec<Record>, LookupError> = match qtype {
            RecordType::A | RecordType::AAAA | RecordType::TXT => self
                .address_records(req_ref, qname.clone(), &zone, qtype, Vec::new())
                .await
                .map(|(r, tc)| {
                    truncated = tc;
                    r
                }),
            RecordType::CNAME => self.cname(&qname, &zone),
            RecordType::PTR => self.ptr(&qname, &zone),
            RecordType::MX => self
                .services(&lower, &zone, RecordType::MX)
                .map(|_| Vec::new()),
            RecordType::SRV => self.srv(&qname, &zone).map(|(r, e)| {
                extra = e;
                r
            }),
            RecordType::SOA => {
                if qname == zone {
                    Ok(self.soa(&zone).into_iter().collect())
                } else {
                    Ok(Vec::new())
                }
            }
            RecordType::AXFR | RecordType::IXFR => return Ok(Reply::Rcode(ResponseCode::Refused)),
            RecordType::NS if lower == zone_l => self.ns(&qname, &zone).map(|(r, e)| {
                extra = e;
                r
            }),
            _ => self
                .address_records(req_ref, qname.clone(), &zone, RecordType::A, Vec::new())
                .await
                .map(|_| Vec::new()),
        };
        let records = match result {
            Ok(r) => r,
            Err(e) if e.is_name_error() => {
                if self.cfg.fall.through(&lower) {
                    return next.serve(req).await;
                }
                let rcode = if self.store.has_synced() {
                    ResponseCode::NXDomain
                } else {
                    ResponseCode::ServFail
                };
                return Ok(self.backend_error(req, &zone, rcode));
            }
            Err(LookupError::Other(m)) => {
                return Err(PluginError::servfail(format!("plugin/{NAME}: {m}")));
            }
            Err(_) => return Err(PluginError::servfail(format!("plugin/{NAME}: lookup"))),
        };
        if records.is_empty() {
            return Ok(self.backend_error(req, &zone, ResponseCode::NoError));
        }
        let mut m: Message = req.reply();
        m.metadata.truncation = truncated;
        m.metadata.authoritative = true;
        m.answers = records;
        m.additionals = extra;
        Ok(Reply::message(m))
    }
}

impl Readiness for Kubernetes {
    fn ready(&self) -> bool {
        self.store.has_synced()
    }
}

impl AutoPather for Kubernetes {
    fn auto_path(&self, req: &Request) -> Option<Vec<String>> {
        let name = req.name_lower();
        let zone = names::zone_match(&self.cfg.zones, &name)?.to_string();
        if self.cfg.pods != PodMode::Verified {
            return None;
        }
        let ip = req.client_ip().to_string();
        let ns = {
            let index = self.store.read();
            index.pod_index(&ip).first()?.namespace.clone()
        };
        let mut search = Vec::with_capacity(4 + self.auto_path_search.len());
        if zone == "." {
            search.push(format!("{ns}.svc."));
            search.push("svc.".to_string());
            search.push(".".to_string());
        } else {
            search.push(format!("{ns}.svc.{zone}"));
            search.push(format!("svc.{zone}"));
            search.push(zone);
        }
        search.extend(self.auto_path_search.iter().cloned());
        search.push(String::new());
        Some(search)
    }
}

impl Externaler for Kubernetes {
    fn external(
        &self,
        req: &Request,
        zone: &str,
        headless: bool,
    ) -> (Vec<ServiceRecord>, ResponseCode) {
        let name = req.name_lower();
        let index = self.store.read();
        let l = self.lookup(&index);
        external::records(
            &l,
            &name,
            zone,
            headless,
            self.cfg.ttl,
            req.qtype() == RecordType::PTR,
        )
    }

    fn external_address(&self, _req: &Request, zone: &str, headless: bool) -> Vec<Record> {
        let index = self.store.read();
        let l = self.lookup(&index);
        l.ns_addrs(true, headless, zone)
            .into_iter()
            .filter_map(|(n, ip)| {
                let rdata = match ip {
                    IpAddr::V4(v4) => RData::A(A(v4)),
                    IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
                };
                record(&n, self.cfg.ttl, rdata)
            })
            .collect()
    }

    fn external_serial(&self, _zone: &str) -> u32 {
        self.store.ext_modified() as u32
    }
}

mod external;

/// Starts the watchers at startup and waits for them (up to `startup_timeout`), as CoreDNS's
/// `OnStartup`; stops them at shutdown.
struct Watchers {
    k: Arc<Kubernetes>,
    prepared: client::Prepared,
    spec: watch::WatchSpec,
    rest: rest::RestLayer,
    stop: Mutex<Option<tokio_watch::Sender<bool>>>,
    listen_hosts: Vec<String>,
}

#[async_trait]
impl Lifecycle for Watchers {
    async fn on_startup(&self) -> Result<(), SetupError> {
        let _ = self.k.local_ips.set(bound_ips(&self.listen_hosts));
        let client = client::connect(&self.prepared, self.rest.clone())
            .await
            .map_err(|e| SetupError::plugin(NAME, e))?;
        let (tx, rx) = tokio_watch::channel(false);
        if let Ok(mut s) = self.stop.lock() {
            *s = Some(tx);
        }
        watch::start(client, self.k.store.clone(), self.spec.clone(), rx);
        let deadline = tokio::time::Instant::now() + self.k.cfg.startup_timeout;
        let mut log_at = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
        loop {
            if self.k.store.has_synced() {
                self.k.store.set_started();
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                tracing::warn!(target: TARGET, "starting server with unsynced Kubernetes API");
                self.k.store.set_started();
                return Ok(());
            }
            if now >= log_at {
                tracing::info!(target: TARGET, "waiting for Kubernetes API before starting server");
                log_at += std::time::Duration::from_millis(500);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100).min(deadline - now)).await;
        }
    }

    async fn on_shutdown(&self) {
        if let Ok(mut s) = self.stop.lock()
            && let Some(tx) = s.take()
        {
            let _ = tx.send(true);
        }
    }
}

/// CoreDNS's `boundIPs`: the non-loopback addresses the server listens on (`bind`), or every
/// interface's.
fn bound_ips(hosts: &[String]) -> Vec<IpAddr> {
    let mut candidates: Vec<IpAddr> = Vec::new();
    if (hosts.is_empty() || hosts[0].is_empty())
        && let Ok(ifs) = if_addrs::get_if_addrs()
    {
        candidates.extend(ifs.iter().map(|i| i.ip()));
    }
    // Hosts given to `bind` are plain addresses, which Go's ParseCIDR refuses: CoreDNS keeps
    // none of them, and so do we.
    candidates
        .into_iter()
        .map(ferrodns_pkg::names::canonical)
        .filter(|ip| !ip.is_loopback())
        .collect()
}

fn setup_fn(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg = setup::parse(c)?;
    let prepared = client::prepare(&cfg.source).map_err(|e| SetupError::plugin(NAME, e))?;
    let mut kinds = vec![Kind::Service, Kind::Namespace];
    if !cfg.no_endpoints {
        kinds.push(Kind::EndpointSlice);
    }
    if cfg.pods == PodMode::Verified {
        kinds.push(Kind::Pod);
    }
    if !cfg.multicluster.is_empty() {
        kinds.push(Kind::ServiceImport);
        kinds.push(Kind::McEndpointSlice);
    }
    let programming = c.metrics().register(
        "coredns_kubernetes_dns_programming_duration_seconds",
        "Histogram of the time (in seconds) it took to program a dns instance.",
        || {
            Family::<Vec<(String, String)>, Histogram>::new_with_constructor(
                (|| Histogram::new(exponential_buckets(0.001, 2.0, 20))) as fn() -> Histogram,
            )
        },
    );
    let spec = watch::WatchSpec {
        labels: cfg.labels.clone(),
        namespace_labels: cfg.namespace_labels.clone(),
        endpoints: !cfg.no_endpoints,
        pods: cfg.pods == PodMode::Verified,
        zones: cfg.zonal,
        multicluster: !cfg.multicluster.is_empty(),
        programming,
    };
    let k = Arc::new(Kubernetes {
        store: Arc::new(Store::new(&kinds)),
        local_ips: Arc::new(OnceLock::new()),
        auto_path_search: search_from_resolv_conf(),
        cfg,
    });
    c.add_lifecycle(Arc::new(Watchers {
        k: k.clone(),
        prepared,
        spec,
        rest: rest::RestLayer {
            metrics: rest::RestMetrics::register(c.metrics()),
            host: String::new(),
            qps: k.cfg.api_qps,
            burst: k.cfg.api_burst,
            max_inflight: k.cfg.api_max_inflight,
        },
        stop: Mutex::new(None),
        listen_hosts: c.listen_hosts().to_vec(),
    }));
    c.add_readiness(NAME, k.clone());
    c.publish_handle::<Arc<dyn AutoPather>>(NAME, k.clone());
    c.publish_handle::<Arc<dyn Externaler>>(NAME, k.clone());
    c.add_plugin(k);
    Ok(())
}

/// The search domains of the host's /etc/resolv.conf (for autopath's path after the cluster's).
fn search_from_resolv_conf() -> Vec<String> {
    let Ok(text) = std::fs::read_to_string("/etc/resolv.conf") else {
        return Vec::new();
    };
    let mut search = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("search") | Some("domain") => {
                search = f.map(|d| names::fqdn(&d.to_ascii_lowercase())).collect();
            }
            _ => {}
        }
    }
    search
}

//! From a query name to the records the cluster has for it: the Kubernetes DNS specification
//! as CoreDNS v1.14.7's kubernetes plugin reads it (its `parseRequest`, `Records`,
//! `findServices`, `findPods`, `Reverse` and `nsAddrs`).

use std::net::IpAddr;

use crate::index::{Address, Index};
use crate::setup::{Config, PodMode};

/// One answer source (CoreDNS's `msg.Service`): an address, a host name (a CNAME), or a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    /// An IP address or a host name.
    pub host: String,
    /// The port (-1: none).
    pub port: i32,
    /// TXT text.
    pub text: String,
    /// TTL.
    pub ttl: u32,
    /// The record's own name, as SRV targets and NS names use it (CoreDNS builds it from the
    /// record's key), fully qualified.
    pub target: String,
}

/// What a record's host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostType {
    /// A name: a CNAME target.
    Cname,
    /// A text record.
    Txt,
    /// An IPv4 address (IPv4-mapped IPv6 too, as Go's `To4`).
    A(std::net::Ipv4Addr),
    /// An IPv6 address.
    Aaaa(std::net::Ipv6Addr),
}

impl Rec {
    /// CoreDNS's `HostType`.
    pub fn host_type(&self) -> HostType {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => HostType::A(v4),
            Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => HostType::A(v4),
                None => HostType::Aaaa(v6),
            },
            Err(_) if self.text.is_empty() => HostType::Cname,
            Err(_) => HostType::Txt,
        }
    }
}

/// Why there is no record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// No such name (`errNoItems`).
    NoItems,
    /// The namespace is not served (`errNsNotExposed`).
    NsNotExposed,
    /// The name cannot be a cluster name (`errInvalidRequest`).
    Invalid,
    /// Anything else (SERVFAIL).
    Other(String),
}

impl LookupError {
    /// The errors that make NXDOMAIN (or fall through).
    pub fn is_name_error(&self) -> bool {
        !matches!(self, LookupError::Other(_))
    }
}

/// A query name taken apart (CoreDNS's `recordRequest`), borrowing from the name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordRequest<'a> {
    /// The port of an SRV name, without its underscore.
    pub port: &'a str,
    /// The protocol of an SRV name, without its underscore.
    pub protocol: &'a str,
    /// An endpoint's host name.
    pub endpoint: &'a str,
    /// The cluster id (multicluster).
    pub cluster: &'a str,
    /// The topology zone (zonal names; labels joined, so owned).
    pub topo_zone: String,
    /// `prefer` rather than `pin` (zonal names).
    pub zone_prefer: bool,
    /// The service (or pod) name.
    pub service: &'a str,
    /// The namespace.
    pub namespace: &'a str,
    /// `svc`, `pod` or "" (apex-like names).
    pub pod_or_svc: &'a str,
}

/// The most labels a name below a zone may have and still be taken apart (more is
/// `errInvalidRequest` whatever they are).
const MAX_LABELS: usize = 16;

/// The labels of `name` below `zone` (both lowercase, fully qualified; none when `name` is
/// not below it), without allocating; `None` when there are more than [`MAX_LABELS`].
pub fn base_labels<'a>(name: &'a str, zone: &str) -> Option<([&'a str; MAX_LABELS], usize)> {
    let base = ferrodns_pkg::names::trim_zone(name, zone).unwrap_or("");
    let mut out = [""; MAX_LABELS];
    let mut n = 0;
    for l in base.split('.').filter(|l| !l.is_empty()) {
        if n == MAX_LABELS {
            return None;
        }
        out[n] = l;
        n += 1;
    }
    Some((out, n))
}

/// CoreDNS's `parseRequest`.
pub fn parse_request<'a>(
    name: &'a str,
    zone: &str,
    multicluster: bool,
    zonal: bool,
) -> Result<RecordRequest<'a>, LookupError> {
    let mut r = RecordRequest::default();
    let Some((labels, n)) = base_labels(name, zone) else {
        return Err(LookupError::Invalid);
    };
    let segs = &labels[..n];
    if segs.is_empty() || (segs.len() == 1 && (segs[0] == "svc" || segs[0] == "pod")) {
        return Ok(r);
    }
    let mut last = segs.len() as isize - 1;
    r.pod_or_svc = segs[last as usize];
    if r.pod_or_svc != "pod" && r.pod_or_svc != "svc" {
        return Err(LookupError::Invalid);
    }
    last -= 1;
    if last < 0 {
        return Ok(r);
    }
    r.namespace = segs[last as usize];
    last -= 1;
    if last < 0 {
        return Ok(r);
    }
    r.service = segs[last as usize];
    last -= 1;
    if last < 0 {
        return Ok(r);
    }
    let l = last as usize;
    match last {
        0 => r.endpoint = segs[0],
        1 => {
            if !multicluster || segs[1].starts_with('_') || segs[0].starts_with('_') {
                r.protocol = strip_underscore(segs[1]);
                r.port = strip_underscore(segs[0]);
            } else {
                r.cluster = segs[1];
                r.endpoint = segs[0];
            }
        }
        _ => {
            if !zonal || multicluster || segs[l] != "_zone" || r.pod_or_svc != "svc" {
                return Err(LookupError::Invalid);
            }
            match segs[l - 1] {
                "pin" => {}
                "prefer" => r.zone_prefer = true,
                _ => return Err(LookupError::Invalid),
            }
            r.topo_zone = segs[..l - 1].join(".");
        }
    }
    Ok(r)
}

pub(crate) fn strip_underscore(s: &str) -> &str {
    s.strip_prefix('_').unwrap_or(s)
}

pub(crate) fn eq_fold(a: &str, b: &str) -> bool {
    a == b || a.eq_ignore_ascii_case(b)
}

pub(crate) fn match_port_and_protocol(
    a_port: &str,
    b_port: &str,
    a_proto: &str,
    b_proto: &str,
) -> bool {
    (a_port.is_empty() || eq_fold(a_port, b_port))
        && (a_proto.is_empty() || eq_fold(a_proto, b_proto))
}

/// CoreDNS's `endpointHostname`.
pub fn endpoint_hostname(a: &Address, endpoint_pod_names: bool) -> String {
    if !a.hostname.is_empty() {
        return a.hostname.clone();
    }
    if endpoint_pod_names && !a.target_ref_name.is_empty() {
        return a.target_ref_name.clone();
    }
    if a.ip.contains('.') {
        return a.ip.replace('.', "-");
    }
    if a.ip.contains(':') {
        let h = a.ip.replace(':', "-");
        return if h.ends_with('-') { h + "0" } else { h };
    }
    String::new()
}

/// Whether any of a service's endpoint slices has a ready address (`ignore empty_service`).
fn has_addresses(eps: &[std::sync::Arc<crate::index::Endpoints>]) -> bool {
    eps.iter().any(|e| !e.addresses.is_empty())
}

/// The records of a service with cluster IPs (or a ClusterSetIP import): one per matching port
/// and address, all named after the service. Whether a port matched.
fn cluster_ip_records(
    r: &RecordRequest<'_>,
    ports: &[crate::index::Port],
    ips: &[String],
    ttl: u32,
    target: &str,
    out: &mut Vec<Rec>,
) -> bool {
    let mut found = false;
    for p in ports {
        if !match_port_and_protocol(r.port, &p.name, r.protocol, &p.protocol) {
            continue;
        }
        found = true;
        for ip in ips {
            out.push(Rec {
                host: ip.clone(),
                port: p.port,
                text: String::new(),
                ttl,
                target: target.to_string(),
            });
        }
    }
    found
}

/// The lookups, over one read of the index.
pub struct Lookup<'a> {
    /// The directive.
    pub cfg: &'a Config,
    /// The index.
    pub index: &'a Index,
    /// The addresses the server answers on (for `ns.dns`).
    pub local_ips: &'a [IpAddr],
}

impl Lookup<'_> {
    fn configured_namespace(&self, ns: &str) -> bool {
        self.cfg.namespaces.is_empty() || self.cfg.namespaces.contains(ns)
    }

    /// CoreDNS's `namespaceExposed`.
    pub fn namespace_exposed(&self, ns: &str) -> bool {
        self.configured_namespace(ns) && self.index.namespace_exists(ns)
    }

    fn is_multicluster(&self, zone: &str) -> bool {
        ferrodns_pkg::names::zone_match(&self.cfg.multicluster, zone).is_some()
    }

    /// CoreDNS's `Records`: `name` lowercase, `zone` as matched (its case kept for targets).
    pub fn records(&self, name: &str, zone: &str) -> Result<Vec<Rec>, LookupError> {
        let zone_l = zone.to_ascii_lowercase();
        let mc = self.is_multicluster(&zone_l);
        let r = parse_request(name, &zone_l, mc, self.cfg.zonal)?;
        if r.pod_or_svc.is_empty() {
            return Ok(Vec::new());
        }
        if crate::setup::is_reverse(name) {
            return Err(LookupError::NoItems);
        }
        if !self.namespace_exposed(r.namespace) {
            return Err(LookupError::NsNotExposed);
        }
        if r.pod_or_svc == "pod" {
            return self.find_pods(&r, zone);
        }
        if mc {
            return self.find_multicluster_services(&r, zone);
        }
        self.find_services(&r, zone)
    }

    fn find_pods(&self, r: &RecordRequest<'_>, zone: &str) -> Result<Vec<Rec>, LookupError> {
        if self.cfg.pods == PodMode::Disabled {
            return Err(LookupError::NoItems);
        }
        if !self.namespace_exposed(r.namespace) {
            return Err(LookupError::NoItems);
        }
        let podname = r.service;
        if podname.is_empty() {
            return Ok(Vec::new());
        }
        let ip = if podname.matches('-').count() == 3 && !podname.contains("--") {
            podname.replace('-', ".")
        } else {
            podname.replace('-', ":")
        };
        let target = format!("{podname}.{}.pod.{}", r.namespace, zone_suffix(zone));
        if self.cfg.pods == PodMode::Insecure {
            if go_parse_ip(&ip).is_none() {
                return Err(LookupError::NoItems);
            }
            return Ok(vec![Rec {
                host: ip,
                port: 0,
                text: String::new(),
                ttl: self.cfg.ttl,
                target,
            }]);
        }
        let mut out = Vec::new();
        for p in self.index.pod_index(&ip) {
            if ip == p.ip && eq_fold(r.namespace, &p.namespace) {
                out.push(Rec {
                    host: ip.clone(),
                    port: 0,
                    text: String::new(),
                    ttl: self.cfg.ttl,
                    target: target.clone(),
                });
            }
        }
        if out.is_empty() {
            return Err(LookupError::NoItems);
        }
        Ok(out)
    }

    fn find_services(&self, r: &RecordRequest<'_>, zone: &str) -> Result<Vec<Rec>, LookupError> {
        if r.service.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = false;
        let mut out = Vec::new();
        let eps = self.index.ep_index(r.service, r.namespace);
        let zs = zone_suffix(zone);
        let ttl = self.cfg.ttl;
        for svc in self.index.svc_index(r.service, r.namespace) {
            if !eq_fold(r.namespace, &svc.namespace) || !eq_fold(r.service, &svc.name) {
                continue;
            }
            if self.cfg.ignore_empty_service
                && !svc.is_external_name()
                && !svc.headless()
                && !has_addresses(eps)
            {
                continue;
            }
            if !r.topo_zone.is_empty() && !svc.headless() {
                continue;
            }
            let svc_name = format!("{}.{}.svc.{zs}", svc.name, svc.namespace);
            if svc.is_external_name() {
                if !r.endpoint.is_empty() || !r.port.is_empty() || !r.protocol.is_empty() {
                    continue;
                }
                let rec = Rec {
                    host: svc.external_name.clone(),
                    port: 0,
                    text: String::new(),
                    ttl,
                    target: svc_name,
                };
                if rec.host_type() == HostType::Cname {
                    out.push(rec);
                    found = true;
                }
                continue;
            }
            if svc.headless() || !r.endpoint.is_empty() {
                if !r.topo_zone.is_empty() {
                    found = true;
                }
                let mut add_for_zone = |topo: &str| -> usize {
                    let mut added = 0;
                    for ep in eps {
                        if ep.service != svc.name || ep.namespace != svc.namespace {
                            continue;
                        }
                        for addr in &ep.addresses {
                            if !topo.is_empty() && addr.zone != topo {
                                continue;
                            }
                            let host = endpoint_hostname(addr, self.cfg.endpoint_pod_names);
                            if !r.endpoint.is_empty() && !eq_fold(r.endpoint, &host) {
                                continue;
                            }
                            for p in &ep.ports {
                                if !match_port_and_protocol(
                                    r.port,
                                    &p.name,
                                    r.protocol,
                                    &p.protocol,
                                ) {
                                    continue;
                                }
                                out.push(Rec {
                                    host: addr.ip.clone(),
                                    port: p.port,
                                    text: String::new(),
                                    ttl,
                                    target: format!("{host}.{svc_name}"),
                                });
                                found = true;
                                added += 1;
                            }
                        }
                    }
                    added
                };
                if add_for_zone(&r.topo_zone) == 0 && r.zone_prefer {
                    add_for_zone("");
                }
                continue;
            }
            found |= cluster_ip_records(r, &svc.ports, &svc.cluster_ips, ttl, &svc_name, &mut out);
        }
        if found {
            Ok(out)
        } else {
            Err(LookupError::NoItems)
        }
    }

    /// CoreDNS's `findMultiClusterServices`: names in a multicluster zone answer from
    /// ServiceImports and the slices of every cluster.
    fn find_multicluster_services(
        &self,
        r: &RecordRequest<'_>,
        zone: &str,
    ) -> Result<Vec<Rec>, LookupError> {
        if r.service.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = false;
        let mut out = Vec::new();
        let eps = self.index.mc_ep_index(r.service, r.namespace);
        let zs = zone_suffix(zone);
        let ttl = self.cfg.ttl;
        for svc in self.index.svc_import_index(r.service, r.namespace) {
            if !eq_fold(r.namespace, &svc.namespace) || !eq_fold(r.service, &svc.name) {
                continue;
            }
            if self.cfg.ignore_empty_service && !svc.headless() && !has_addresses(eps) {
                continue;
            }
            let svc_name = format!("{}.{}.svc.{zs}", svc.name, svc.namespace);
            if svc.headless() || !r.endpoint.is_empty() {
                for ep in eps {
                    if ep.service != svc.name || ep.namespace != svc.namespace {
                        continue;
                    }
                    for addr in &ep.addresses {
                        let host = endpoint_hostname(addr, self.cfg.endpoint_pod_names);
                        if !r.endpoint.is_empty()
                            && (!eq_fold(r.cluster, &ep.cluster_id) || !eq_fold(r.endpoint, &host))
                        {
                            continue;
                        }
                        for p in &ep.ports {
                            if !match_port_and_protocol(r.port, &p.name, r.protocol, &p.protocol) {
                                continue;
                            }
                            out.push(Rec {
                                host: addr.ip.clone(),
                                port: p.port,
                                text: String::new(),
                                ttl,
                                target: format!("{host}.{}.{svc_name}", ep.cluster_id),
                            });
                            found = true;
                        }
                    }
                }
                continue;
            }
            found |= cluster_ip_records(r, &svc.ports, &svc.cluster_ips, ttl, &svc_name, &mut out);
        }
        if found {
            Ok(out)
        } else {
            Err(LookupError::NoItems)
        }
    }

    /// CoreDNS's `serviceRecordForIP`: PTR targets for an address.
    pub fn reverse(&self, ip: &str) -> Vec<Rec> {
        let primary = &self.cfg.zones[self.cfg.primary_zone];
        let ttl = self.cfg.ttl;
        for svc in self.index.svc_index_reverse(ip) {
            if !self.cfg.namespaces.is_empty() && !self.namespace_exposed(&svc.namespace) {
                continue;
            }
            return vec![Rec {
                host: format!(
                    "{}.{}.svc.{}",
                    svc.name,
                    svc.namespace,
                    zone_suffix(primary)
                ),
                port: 0,
                text: String::new(),
                ttl,
                target: String::new(),
            }];
        }
        let mut out = Vec::new();
        for ep in self.index.ep_index_reverse(ip) {
            if !self.cfg.namespaces.is_empty() && !self.namespace_exposed(&ep.namespace) {
                continue;
            }
            for a in &ep.addresses {
                if a.ip == ip {
                    out.push(Rec {
                        host: format!(
                            "{}.{}.{}.svc.{}",
                            endpoint_hostname(a, self.cfg.endpoint_pod_names),
                            ep.service,
                            ep.namespace,
                            zone_suffix(primary)
                        ),
                        port: 0,
                        text: String::new(),
                        ttl,
                        target: String::new(),
                    });
                }
            }
        }
        out
    }

    /// CoreDNS's `nsAddrs`: the names and addresses of the DNS service itself.
    pub fn ns_addrs(&self, external: bool, headless: bool, zone: &str) -> Vec<(String, IpAddr)> {
        let mut out = Vec::new();
        let mut found_endpoint = false;
        let zs = zone_suffix(zone);
        for local in self.local_ips {
            let local = local.to_string();
            for ep in self.index.ep_index_reverse(&local) {
                found_endpoint = true;
                for svc in self.index.svc_index(&ep.service, &ep.namespace) {
                    // Under k8s_external the names have no `svc` label, headless services
                    // count only with `headless`, and the others give their external IPs.
                    let svc_name = if external {
                        format!("{}.{}.{zs}", svc.name, svc.namespace)
                    } else {
                        format!("{}.{}.svc.{zs}", svc.name, svc.namespace)
                    };
                    if svc.headless() && (headless || !external) {
                        for a in &ep.addresses {
                            if let Some(ip) = go_parse_ip(&a.ip) {
                                let host = endpoint_hostname(a, self.cfg.endpoint_pod_names);
                                out.push((format!("{host}.{svc_name}"), ip));
                            }
                        }
                        continue;
                    }
                    let ips = if external {
                        &svc.external_ips
                    } else {
                        &svc.cluster_ips
                    };
                    for ip in ips.iter().filter_map(|i| go_parse_ip(i)) {
                        out.push((svc_name.clone(), ip));
                    }
                }
            }
        }
        if !found_endpoint {
            for ip in self.local_ips {
                out.push((format!("ns.dns.{zs}"), *ip));
            }
        }
        out
    }
}

/// A zone as a name suffix: "cluster.local." stays, "." becomes "" (so that joining with a
/// dot does not double the root).
pub fn zone_suffix(zone: &str) -> &str {
    if zone == "." { "" } else { zone }
}

/// Go's `net.ParseIP` with `To4` applied: IPv4-mapped addresses are IPv4.
pub fn go_parse_ip(s: &str) -> Option<IpAddr> {
    match s.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => Some(
            v6.to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
        ),
        v4 => Some(v4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_taken_apart_as_coredns_does() {
        let z = "cluster.local.";
        let r = parse_request("_http._tcp.web.ns.svc.cluster.local.", z, false, false);
        assert_eq!(
            r.as_ref().map(|r| (r.port, r.protocol, r.service)),
            Ok(("http", "tcp", "web"))
        );
        let r = parse_request("ep1.web.ns.svc.cluster.local.", z, false, false);
        assert_eq!(r.map(|r| r.endpoint), Ok("ep1"));
        assert_eq!(
            parse_request("x.cluster.local.", z, false, false),
            Err(LookupError::Invalid)
        );
        assert_eq!(
            parse_request("a.b.c.d.ns.svc.cluster.local.", z, false, false),
            Err(LookupError::Invalid)
        );
        assert_eq!(
            parse_request("svc.cluster.local.", z, false, false),
            Ok(RecordRequest::default())
        );
        let r = parse_request("ep.c1.web.ns.svc.cluster.local.", z, true, false);
        assert_eq!(r.map(|r| (r.endpoint, r.cluster)), Ok(("ep", "c1")));
        let r = parse_request(
            "zone-a.prefer._zone.web.ns.svc.cluster.local.",
            z,
            false,
            true,
        );
        assert_eq!(
            r.map(|r| (r.topo_zone, r.zone_prefer)),
            Ok(("zone-a".to_string(), true))
        );
    }

    #[test]
    fn endpoint_names_from_addresses() {
        let a = |ip: &str| Address {
            ip: ip.into(),
            hostname: String::new(),
            target_ref_name: "pod-1".into(),
            node_name: String::new(),
            zone: String::new(),
        };
        assert_eq!(endpoint_hostname(&a("10.0.0.1"), false), "10-0-0-1");
        assert_eq!(endpoint_hostname(&a("10.0.0.1"), true), "pod-1");
        assert_eq!(endpoint_hostname(&a("fd00::"), false), "fd00--0");
    }
}

#[cfg(test)]
mod multicluster_tests {
    use super::*;
    use crate::index::{Index, Port, ServiceImport};

    #[test]
    fn clusterset_ip_imports_answer_their_ips() {
        let mut index = Index::default();
        index.put_namespace("ns1".into());
        index.put_import(ServiceImport {
            name: "web".into(),
            namespace: "ns1".into(),
            cluster_ips: vec!["10.200.0.1".into()],
            kind: "ClusterSetIP".into(),
            ports: vec![Port {
                name: "http".into(),
                protocol: "TCP".into(),
                port: 80,
            }],
        });
        let cfg = crate::setup::Config {
            multicluster: vec!["clusterset.local.".into()],
            ..test_config()
        };
        let l = Lookup {
            cfg: &cfg,
            index: &index,
            local_ips: &[],
        };
        let got = l.records("web.ns1.svc.clusterset.local.", "clusterset.local.");
        assert_eq!(got.map(|r| r.len()), Ok(1));
    }

    fn test_config() -> crate::setup::Config {
        crate::setup::Config {
            zones: vec!["cluster.local.".into(), "clusterset.local.".into()],
            primary_zone: 0,
            source: crate::setup::ApiSource::InCluster,
            namespaces: Default::default(),
            labels: None,
            namespace_labels: None,
            pods: crate::setup::PodMode::Disabled,
            endpoint_pod_names: false,
            ttl: 5,
            no_endpoints: false,
            fall: Default::default(),
            ignore_empty_service: false,
            multicluster: vec![],
            zonal: false,
            startup_timeout: std::time::Duration::from_secs(5),
            api_qps: 0.0,
            api_burst: 0,
            api_max_inflight: 0,
        }
    }
}

//! Reading the `kubernetes` directive, with CoreDNS v1.14.7's options and error texts.

use std::collections::BTreeSet;
use std::time::Duration;

use ferrodns_pkg::names::{self, Fall};
use ferrodns_plugin::{Setup, SetupError};

use crate::{NAME, TARGET};

/// How pod names (`a-b-c-d.ns.pod.zone`) are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodMode {
    /// Pod names are not served (NXDOMAIN).
    Disabled,
    /// Any name that reads as an address is answered, if its namespace exists.
    Insecure,
    /// Only the address of a running pod in that namespace is answered (pods are watched).
    Verified,
}

/// Where the API server is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiSource {
    /// The service account of the pod (`KUBERNETES_SERVICE_HOST`, the token and CA files).
    InCluster,
    /// `endpoint URL` with an optional `tls CERT KEY CACERT`.
    Endpoint {
        /// The first URL given (CoreDNS uses only the first).
        url: String,
        /// Client certificate, key and CA certificate files.
        tls: Option<(String, String, String)>,
    },
    /// `kubeconfig FILE [CONTEXT]`.
    Kubeconfig {
        /// The kubeconfig file.
        path: String,
        /// The context to use instead of the file's current one.
        context: Option<String>,
    },
}

/// The parsed directive.
#[derive(Debug, Clone)]
pub struct Config {
    /// The zones served, normalized, in order.
    pub zones: Vec<String>,
    /// The first zone that is not a reverse zone (names of PTR targets are built under it).
    pub primary_zone: usize,
    /// Where the API is.
    pub source: ApiSource,
    /// `namespaces`: serve only these (empty: all).
    pub namespaces: BTreeSet<String>,
    /// `labels`: the label selector for services, endpoint slices and pods.
    pub labels: Option<String>,
    /// `namespace_labels`: the label selector for namespaces.
    pub namespace_labels: Option<String>,
    /// `pods`.
    pub pods: PodMode,
    /// `endpoint_pod_names`.
    pub endpoint_pod_names: bool,
    /// `ttl`.
    pub ttl: u32,
    /// `noendpoints`: do not watch endpoint slices.
    pub no_endpoints: bool,
    /// `fallthrough`.
    pub fall: Fall,
    /// `ignore empty_service`.
    pub ignore_empty_service: bool,
    /// `multicluster` zones.
    pub multicluster: Vec<String>,
    /// `zonal`: topology-zone names for headless services.
    pub zonal: bool,
    /// `startup_timeout`.
    pub startup_timeout: Duration,
    /// `apiserver_qps` (0: the client's default).
    pub api_qps: f32,
    /// `apiserver_burst` (0: the client's default).
    pub api_burst: u32,
    /// `apiserver_max_inflight` (0: no limit).
    pub api_max_inflight: usize,
}

/// The default TTL of answers.
pub const DEFAULT_TTL: u32 = 5;

/// Read the block's `kubernetes` directive. Errors carry the `plugin/kubernetes: ` prefix.
pub fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    parse_inner(c).map_err(|e| {
        if e.0.starts_with("plugin/") {
            e
        } else {
            SetupError::plugin(NAME, e.0)
        }
    })
}

fn parse_inner(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    let block_zones = c.zone_names();
    let mut cfg: Option<Config> = None;
    while c.next_once(NAME)? {
        cfg = Some(parse_stanza(c, &block_zones)?);
    }
    cfg.ok_or_else(|| SetupError::new("kubernetes: no directive"))
}

fn parse_stanza(c: &mut Setup<'_>, block_zones: &[String]) -> Result<Config, SetupError> {
    let args = c.remaining_args();
    let zones = names::origins(&args, block_zones);
    let Some(primary_zone) = zones.iter().position(|z| !is_reverse(z)) else {
        return Err(SetupError::new("non-reverse zone name must be used"));
    };
    let mut endpoint: Option<String> = None;
    let mut tls: Option<(String, String, String)> = None;
    let mut kubeconfig: Option<(String, Option<String>)> = None;
    let mut cfg = Config {
        zones,
        primary_zone,
        source: ApiSource::InCluster,
        namespaces: BTreeSet::new(),
        labels: None,
        namespace_labels: None,
        pods: PodMode::Disabled,
        endpoint_pod_names: false,
        ttl: DEFAULT_TTL,
        no_endpoints: false,
        fall: Fall::default(),
        ignore_empty_service: false,
        multicluster: Vec::new(),
        zonal: false,
        startup_timeout: Duration::from_secs(5),
        api_qps: 0.0,
        api_burst: 0,
        api_max_inflight: 0,
    };
    while c.next_block() {
        let key = c.val().to_string();
        match key.as_str() {
            "endpoint_pod_names" => {
                if !c.remaining_args().is_empty() {
                    return Err(c.arg_err());
                }
                cfg.endpoint_pod_names = true;
            }
            "pods" => {
                let a = c.remaining_args();
                if a.len() != 1 {
                    return Err(c.arg_err());
                }
                cfg.pods = match a[0].as_str() {
                    "disabled" => PodMode::Disabled,
                    "insecure" => PodMode::Insecure,
                    "verified" => PodMode::Verified,
                    other => {
                        return Err(SetupError::new(format!(
                            "wrong value for pods: {other},  must be one of: disabled, verified, insecure"
                        )));
                    }
                };
            }
            "namespaces" => {
                let a = c.remaining_args();
                if a.is_empty() {
                    return Err(c.arg_err());
                }
                cfg.namespaces.extend(a);
            }
            "endpoint" => {
                let a = c.remaining_args();
                if a.is_empty() {
                    return Err(c.arg_err());
                }
                if a.len() > 1 {
                    tracing::warn!(target: TARGET, "Multiple endpoints have been deprecated, only the first specified endpoint '{}' is used", a[0]);
                }
                endpoint = Some(a[0].clone());
            }
            "tls" => {
                let a = c.remaining_args();
                if a.len() != 3 {
                    return Err(c.arg_err());
                }
                tls = Some((a[0].clone(), a[1].clone(), a[2].clone()));
            }
            "labels" | "namespace_labels" => {
                let a = c.remaining_args();
                if a.is_empty() {
                    return Err(c.arg_err());
                }
                let sel = a.join(" ");
                if let Err(e) = crate::selector::validate(&sel) {
                    let what = if key == "labels" {
                        "label"
                    } else {
                        "namespace_label"
                    };
                    return Err(SetupError::new(format!(
                        "unable to parse {what} selector value: '{sel}': {e}"
                    )));
                }
                if key == "labels" {
                    cfg.labels = Some(sel);
                } else {
                    cfg.namespace_labels = Some(sel);
                }
            }
            "fallthrough" => {
                let a = c.remaining_args();
                cfg.fall.set_from_args(&a);
            }
            "ttl" => {
                let a = c.remaining_args();
                let Some(first) = a.first() else {
                    return Err(c.arg_err());
                };
                let t = ferrodns_go::strconv::atoi(first)
                    .map_err(|e| SetupError::new(e.to_string()))?;
                if !(0..=3600).contains(&t) {
                    return Err(c.err(format!("ttl must be in range [0, 3600]: {t}")));
                }
                cfg.ttl = t as u32;
            }
            "noendpoints" => {
                if !c.remaining_args().is_empty() {
                    return Err(c.arg_err());
                }
                cfg.no_endpoints = true;
            }
            "zonal" => {
                if !c.remaining_args().is_empty() {
                    return Err(c.arg_err());
                }
                cfg.zonal = true;
            }
            "ignore" => {
                let a = c.remaining_args();
                if let Some(first) = a.first() {
                    if first != "empty_service" {
                        return Err(SetupError::new(format!(
                            "unable to parse ignore value: '{first}'"
                        )));
                    }
                    cfg.ignore_empty_service = true;
                }
            }
            "kubeconfig" => {
                let a = c.remaining_args();
                if a.len() != 1 && a.len() != 2 {
                    return Err(c.arg_err());
                }
                kubeconfig = Some((a[0].clone(), a.get(1).cloned()));
            }
            "multicluster" => {
                let a = c.remaining_args();
                cfg.multicluster = names::origins(&a, &[]);
            }
            "startup_timeout" => {
                let a = c.remaining_args();
                let Some(first) = a.first() else {
                    return Err(c.arg_err());
                };
                cfg.startup_timeout = ferrodns_go::time::parse_duration(first).map_err(|e| {
                    SetupError::new(format!("failed to parse startup_timeout: {first}, {e}"))
                })?;
            }
            "apiserver_qps" => {
                let a = c.remaining_args();
                if a.len() != 1 {
                    return Err(c.arg_err());
                }
                let q: f64 = a[0].parse().map_err(|_| {
                    c.err(format!(
                        "invalid apiserver_qps {}: strconv.ParseFloat: parsing {}: invalid syntax",
                        ferrodns_go::strconv::quote(&a[0]),
                        ferrodns_go::strconv::quote(&a[0])
                    ))
                })?;
                if q < 0.0 {
                    return Err(c.err("apiserver_qps must be >= 0"));
                }
                cfg.api_qps = q as f32;
            }
            "apiserver_burst" | "apiserver_max_inflight" => {
                let a = c.remaining_args();
                if a.len() != 1 {
                    return Err(c.arg_err());
                }
                let n = ferrodns_go::strconv::atoi(&a[0]).map_err(|e| {
                    c.err(format!(
                        "invalid {key} {}: {e}",
                        ferrodns_go::strconv::quote(&a[0])
                    ))
                })?;
                if n < 0 {
                    return Err(c.err(format!("{key} must be >= 0")));
                }
                if key == "apiserver_burst" {
                    cfg.api_burst = n.min(u32::MAX as i64) as u32;
                } else {
                    cfg.api_max_inflight = n as usize;
                }
            }
            other => return Err(c.err(format!("unknown property '{other}'"))),
        }
    }
    if !cfg.namespaces.is_empty() && cfg.namespace_labels.is_some() {
        return Err(c.err("namespaces and namespace_labels cannot both be set"));
    }
    for z in &cfg.multicluster {
        if !cfg.zones.contains(z) {
            return Err(c.err(format!(
                "is not authoritative for the multicluster zone {z} (authoritative zones: [{}])",
                cfg.zones.join(" ")
            )));
        }
    }
    if cfg.zonal && cfg.no_endpoints {
        return Err(c.err("zonal requires the endpoint cache; remove noendpoints"));
    }
    // CoreDNS's client config: a kubeconfig wins; else an endpoint (with tls); else in-cluster.
    cfg.source = match (kubeconfig, endpoint) {
        (Some((path, context)), _) => ApiSource::Kubeconfig { path, context },
        (None, Some(url)) => ApiSource::Endpoint { url, tls },
        (None, None) => ApiSource::InCluster,
    };
    Ok(cfg)
}

/// Whether a zone is under in-addr.arpa. or ip6.arpa. (CoreDNS's `dnsutil.IsReverse`).
pub fn is_reverse(zone: &str) -> bool {
    let z = zone.to_ascii_lowercase();
    z.ends_with("in-addr.arpa.") || z.ends_with("ip6.arpa.")
}

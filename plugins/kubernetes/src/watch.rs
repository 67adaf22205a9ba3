//! Watching the API server: one kube-rs watcher per kind (list, then watch with bookmarks,
//! relisting after a lost watch), each event turned into our reduced objects and applied to the
//! [`Store`].

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferrodns_plugin::prometheus_client::metrics::family::Family;
use ferrodns_plugin::prometheus_client::metrics::histogram::Histogram;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod as KPod, Service as KService};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch as tokio_watch;

use crate::TARGET;
use crate::index::{
    Address, Changed, Endpoints, Index, Kind, Pod, Port, Service, ServiceImport, Store,
};

/// What the watchers need besides the client.
#[derive(Clone)]
pub struct WatchSpec {
    /// `labels`.
    pub labels: Option<String>,
    /// `namespace_labels`.
    pub namespace_labels: Option<String>,
    /// Watch endpoint slices (not `noendpoints`).
    pub endpoints: bool,
    /// Watch pods (`pods verified`).
    pub pods: bool,
    /// Keep endpoint zones (`zonal`).
    pub zones: bool,
    /// Watch ServiceImports and multi-cluster slices (`multicluster`).
    pub multicluster: bool,
    /// `coredns_kubernetes_dns_programming_duration_seconds`.
    pub programming: Family<Vec<(String, String)>, Histogram>,
}

/// The label an EndpointSlice names its service with.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The annotation with the time the change that produced an endpoint object happened.
const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// CoreDNS stands for "no ports declared" with one port -1 (no SRV record is made for it).
fn or_no_port(ports: Vec<Port>) -> Vec<Port> {
    if ports.is_empty() {
        vec![Port {
            name: String::new(),
            protocol: String::new(),
            port: -1,
        }]
    } else {
        ports
    }
}

/// A Service reduced.
pub fn to_service(s: &KService) -> Service {
    let spec = s.spec.clone().unwrap_or_default();
    let cluster_ips = match spec.cluster_ips {
        Some(ips) if !ips.is_empty() => ips,
        _ => vec![spec.cluster_ip.unwrap_or_default()],
    };
    let ports: Vec<Port> = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| Port {
            name: p.name.unwrap_or_default(),
            protocol: p.protocol.unwrap_or_default(),
            port: p.port,
        })
        .collect();
    let mut external_ips = spec.external_ips.unwrap_or_default();
    for lb in s
        .status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
    {
        match &lb.ip {
            Some(ip) if !ip.is_empty() => external_ips.push(ip.clone()),
            _ => external_ips.push(lb.hostname.clone().unwrap_or_default()),
        }
    }
    Service {
        name: s.name_any(),
        namespace: s.namespace().unwrap_or_default(),
        kind: spec.type_.unwrap_or_default(),
        external_name: spec.external_name.unwrap_or_default(),
        cluster_ips,
        ports: or_no_port(ports),
        external_ips,
    }
}

/// An EndpointSlice reduced to its ready addresses.
pub fn to_endpoints(e: &EndpointSlice, zones: bool) -> Endpoints {
    let ns = e.namespace().unwrap_or_default();
    let svc = e
        .labels()
        .get(SERVICE_NAME_LABEL)
        .cloned()
        .unwrap_or_default();
    let ports: Vec<Port> = e
        .ports
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|p| Port {
            name: p.name.unwrap_or_default(),
            protocol: p.protocol.unwrap_or_default(),
            port: p.port.unwrap_or(-1),
        })
        .collect();
    let mut addresses = Vec::new();
    for end in &e.endpoints {
        let ready = end
            .conditions
            .as_ref()
            .and_then(|c| c.ready)
            .unwrap_or(true);
        if !ready {
            continue;
        }
        for a in &end.addresses {
            addresses.push(Address {
                ip: a.clone(),
                hostname: end.hostname.clone().unwrap_or_default(),
                target_ref_name: end
                    .target_ref
                    .as_ref()
                    .and_then(|t| t.name.clone())
                    .filter(|n| n.len() < 64)
                    .unwrap_or_default(),
                node_name: end.node_name.clone().unwrap_or_default(),
                zone: if zones {
                    end.zone.clone().unwrap_or_default().to_lowercase()
                } else {
                    String::new()
                },
            });
        }
    }
    Endpoints {
        name: e.name_any(),
        service: svc,
        namespace: ns,
        cluster_id: String::new(),
        addresses,
        ports: or_no_port(ports),
    }
}

/// The label naming a multi-cluster slice's service.
const MC_SERVICE_NAME_LABEL: &str = "multicluster.kubernetes.io/service-name";
/// The label naming the cluster a multi-cluster slice comes from.
const MC_SOURCE_CLUSTER_LABEL: &str = "multicluster.kubernetes.io/source-cluster";

/// A multi-cluster EndpointSlice reduced (keyed by its multi-cluster service).
pub fn to_mc_endpoints(e: &EndpointSlice) -> Endpoints {
    let mut out = to_endpoints(e, false);
    let labels = e.labels();
    out.service = labels
        .get(MC_SERVICE_NAME_LABEL)
        .cloned()
        .unwrap_or_default();
    out.cluster_id = labels
        .get(MC_SOURCE_CLUSTER_LABEL)
        .cloned()
        .unwrap_or_default();
    out
}

/// The Multi-Cluster Services API's ServiceImport, the fields answers need.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct McsServiceImport {
    /// Standard metadata.
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: McsSpec,
}

/// `ServiceImport.spec`.
#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
pub struct McsSpec {
    /// `ips`.
    #[serde(default)]
    pub ips: Vec<String>,
    /// `type`.
    #[serde(default, rename = "type")]
    pub type_: String,
    /// `ports`.
    #[serde(default)]
    pub ports: Vec<McsPort>,
}

/// `ServiceImport.spec.ports[]`.
#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
pub struct McsPort {
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `protocol`.
    #[serde(default)]
    pub protocol: String,
    /// `port`.
    #[serde(default)]
    pub port: i32,
}

impl Resource for McsServiceImport {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;
    fn kind(_: &()) -> Cow<'_, str> {
        "ServiceImport".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "multicluster.x-k8s.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1alpha1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "serviceimports".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A ServiceImport reduced.
pub fn to_import(s: &McsServiceImport) -> ServiceImport {
    ServiceImport {
        name: s.name_any(),
        namespace: s.namespace().unwrap_or_default(),
        cluster_ips: s.spec.ips.clone(),
        kind: s.spec.type_.clone(),
        ports: s
            .spec
            .ports
            .iter()
            .map(|p| Port {
                name: p.name.clone(),
                protocol: p.protocol.clone(),
                port: p.port,
            })
            .collect(),
    }
}

fn id_of<K: Resource>(o: &K) -> (String, String) {
    (
        o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.clone().unwrap_or_default(),
    )
}

fn delete(index: &mut Index, kind: Kind, ns: &str, name: &str) -> Changed {
    match kind {
        Kind::Service => index.delete_service(ns, name),
        Kind::EndpointSlice => index.delete_endpoints(ns, name),
        Kind::Pod => index.delete_pod(ns, name),
        Kind::Namespace => index.delete_namespace(name),
        Kind::ServiceImport => index.delete_import(ns, name),
        Kind::McEndpointSlice => index.delete_mc_endpoints(ns, name),
    }
}

/// Apply an added or changed object of one kind.
type Put<K> = fn(&K, &mut Index, &WatchSpec) -> Changed;

fn put_pod(p: &KPod, index: &mut Index, _: &WatchSpec) -> Changed {
    let (ns, name) = id_of(p);
    // CoreDNS skips the update of a pod that is terminating: the version it had before
    // stays in its store (and answers) until the pod is deleted.
    if p.meta().deletion_timestamp.is_some() {
        return Changed::No;
    }
    let ip = p
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default();
    index.put_pod(Pod {
        name,
        namespace: ns,
        ip,
    })
}

/// Start the watchers; they stop when `stop` turns true.
pub fn start(
    client: Client,
    store: Arc<Store>,
    spec: WatchSpec,
    stop: tokio_watch::Receiver<bool>,
) {
    let labels = spec.labels.clone();
    let w = Spawner {
        store,
        spec: spec.clone(),
        stop,
    };
    w.spawn::<KService>(
        Api::all(client.clone()),
        config(labels.as_deref(), None),
        Kind::Service,
        |o, i, _| i.put_service(to_service(o)),
    );
    if spec.endpoints {
        w.spawn::<EndpointSlice>(
            Api::all(client.clone()),
            config(labels.as_deref(), None),
            Kind::EndpointSlice,
            |o, i, s| i.put_endpoints(to_endpoints(o, s.zones)),
        );
    }
    if spec.pods {
        w.spawn::<KPod>(
            Api::all(client.clone()),
            config(
                labels.as_deref(),
                Some("status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown"),
            ),
            Kind::Pod,
            put_pod,
        );
    }
    if spec.multicluster {
        // CoreDNS selects multi-cluster slices by `labels` plus the service-name label, and
        // ServiceImports by `namespace_labels`.
        let mc = match labels.as_deref() {
            Some(l) => format!("{l},{MC_SERVICE_NAME_LABEL}"),
            None => MC_SERVICE_NAME_LABEL.to_string(),
        };
        w.spawn::<EndpointSlice>(
            Api::all(client.clone()),
            config(Some(&mc), None),
            Kind::McEndpointSlice,
            |o, i, _| i.put_mc_endpoints(to_mc_endpoints(o)),
        );
        w.spawn::<McsServiceImport>(
            Api::all(client.clone()),
            config(spec.namespace_labels.as_deref(), None),
            Kind::ServiceImport,
            |o, i, _| i.put_import(to_import(o)),
        );
    }
    w.spawn::<Namespace>(
        Api::all(client),
        config(spec.namespace_labels.as_deref(), None),
        Kind::Namespace,
        |o, i, _| i.put_namespace(o.name_any()),
    );
}

/// What every watcher shares.
struct Spawner {
    store: Arc<Store>,
    spec: WatchSpec,
    stop: tokio_watch::Receiver<bool>,
}

fn config(labels: Option<&str>, fields: Option<&str>) -> watcher::Config {
    let mut c = watcher::Config::default();
    if let Some(l) = labels {
        c = c.labels(l);
    }
    if let Some(f) = fields {
        c = c.fields(f);
    }
    c
}

impl Spawner {
    fn spawn<K>(&self, api: Api<K>, cfg: watcher::Config, kind: Kind, put: Put<K>)
    where
        K: Resource<DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let store = self.store.clone();
        let spec = self.spec.clone();
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
            // Objects seen during a (re)list; what the index has and the list does not is gone.
            let mut listed: Option<Vec<(String, String)>> = None;
            let mut last_error: Option<String> = None;
            loop {
                let ev = tokio::select! {
                    _ = stop.changed() => return,
                    ev = stream.next() => ev,
                };
                let Some(ev) = ev else { return };
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => {
                        // Logged once per distinct error, and only after the startup wait:
                        // during it the server says "waiting for Kubernetes API" (then that it
                        // starts unsynced), as CoreDNS does.
                        let text = e.to_string();
                        if store.started() && last_error.as_deref() != Some(text.as_str()) {
                            tracing::error!(target: TARGET, "Failed to watch {}: {text}", K::kind(&()));
                            last_error = Some(text);
                        }
                        continue;
                    }
                };
                last_error = None;
                match ev {
                    Event::Init => listed = Some(Vec::new()),
                    Event::InitApply(o) => {
                        let id = if kind == Kind::Namespace {
                            (String::new(), id_of(&o).1)
                        } else {
                            id_of(&o)
                        };
                        let latency = programming_kind(&o, kind, &store);
                        let c = put(&o, &mut store.write(), &spec);
                        store.changed(c);
                        record_programming(&o, latency, &spec);
                        if let Some(l) = listed.as_mut() {
                            l.push(id);
                        }
                    }
                    Event::InitDone => {
                        if let Some(seen) = listed.take() {
                            let seen: std::collections::HashSet<_> = seen.into_iter().collect();
                            let mut index = store.write();
                            let mut changed = Changed::No;
                            for (ns, name) in index.ids(kind) {
                                if !seen.contains(&(ns.clone(), name.clone())) {
                                    let c = delete(&mut index, kind, &ns, &name);
                                    if c != Changed::No {
                                        changed = c;
                                    }
                                }
                            }
                            drop(index);
                            store.changed(changed);
                        }
                        store.set_synced(kind);
                    }
                    Event::Apply(o) => {
                        let latency = programming_kind(&o, kind, &store);
                        let c = put(&o, &mut store.write(), &spec);
                        store.changed(c);
                        record_programming(&o, latency, &spec);
                    }
                    Event::Delete(o) => {
                        let (ns, name) = id_of(&o);
                        let c = delete(&mut store.write(), kind, &ns, &name);
                        store.changed(c);
                    }
                }
            }
        });
    }
}

/// For `coredns_kubernetes_dns_programming_duration_seconds`: the kind of the one service an
/// EndpointSlice belongs to, looked up before the slice is applied (as CoreDNS's recorder
/// does); `None` for other objects and for slices of no or several services.
fn programming_kind<K: Resource>(o: &K, kind: Kind, store: &Store) -> Option<&'static str> {
    if kind != Kind::EndpointSlice && kind != Kind::McEndpointSlice {
        return None;
    }
    let svc = o
        .meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .cloned()
        .unwrap_or_default();
    let ns = o.meta().namespace.clone().unwrap_or_default();
    let index = store.read();
    match index.svc_index(&svc, &ns) {
        [one] if one.headless() => Some("headless_with_selector"),
        [_] => Some("cluster_ip"),
        _ => None,
    }
}

/// Observe the time from the change the endpoint controller stamped on the slice
/// (`endpoints.kubernetes.io/last-change-trigger-time`) to now, the slice being applied.
fn record_programming<K: Resource>(o: &K, kind: Option<&'static str>, spec: &WatchSpec) {
    let Some(kind) = kind else { return };
    let Some(tt) = o
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(TRIGGER_TIME))
    else {
        return;
    };
    let Some(at) = parse_rfc3339(tt) else {
        tracing::warn!(target: TARGET, "DnsProgrammingLatency cannot be calculated for Endpoints '{}/{}'; invalid \"{TRIGGER_TIME}\" annotation RFC3339 value of \"{tt}\"",
            o.meta().namespace.clone().unwrap_or_default(), o.meta().name.clone().unwrap_or_default());
        return;
    };
    let secs = SystemTime::now()
        .duration_since(at)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64();
    spec.programming
        .get_or_create(&vec![("service_kind".to_string(), kind.to_string())])
        .observe(secs);
}

/// RFC 3339 time (with optional fraction and `Z` or an offset) to a system time.
fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let ts: k8s_openapi::jiff::Timestamp = s.parse().ok()?;
    let d = ts.duration_since(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    let secs = d.as_secs_f64();
    if secs < 0.0 {
        return None;
    }
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_imports_read_from_the_api_json() {
        let j = r#"{"apiVersion":"multicluster.x-k8s.io/v1alpha1","kind":"ServiceImport",
            "metadata":{"name":"web","namespace":"ns1"},
            "spec":{"type":"ClusterSetIP","ips":["10.200.0.1"],
                    "ports":[{"name":"http","port":80,"protocol":"TCP"}]}}"#;
        let s: McsServiceImport = match serde_json::from_str(j) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let i = to_import(&s);
        assert_eq!(i.cluster_ips, ["10.200.0.1"]);
        assert!(!i.headless());
        assert_eq!(i.ports[0].port, 80);
    }
}

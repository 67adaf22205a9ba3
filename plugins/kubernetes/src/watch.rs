//! Watching the API server: one kube-rs watcher per kind (list, then watch with bookmarks,
//! relisting after a lost watch), each event turned into our reduced objects and applied to the
//! [`Store`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferrodns_plugin::prometheus_client::metrics::family::Family;
use ferrodns_plugin::prometheus_client::metrics::histogram::Histogram;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod as KPod, Service as KService};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch as tokio_watch;

use crate::TARGET;
use crate::index::{Address, Changed, Endpoints, Index, Kind, Pod, Port, Service, Store};

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
    /// `coredns_kubernetes_dns_programming_duration_seconds`.
    pub programming: Family<Vec<(String, String)>, Histogram>,
}

/// The label an EndpointSlice names its service with.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The annotation with the time the change that produced an endpoint object happened.
const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

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
        ports: if ports.is_empty() {
            vec![Port {
                name: String::new(),
                protocol: String::new(),
                port: -1,
            }]
        } else {
            ports
        },
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
        index: format!("{svc}.{ns}"),
        namespace: ns,
        addresses,
        ports: if ports.is_empty() {
            vec![Port {
                name: String::new(),
                protocol: String::new(),
                port: -1,
            }]
        } else {
            ports
        },
    }
}

/// How one kind is applied to the index.
trait Watched:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
    const KIND: Kind;
    /// Apply an added or changed object.
    fn put(&self, index: &mut Index, spec: &WatchSpec) -> Changed;
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
    }
}

impl Watched for KService {
    const KIND: Kind = Kind::Service;
    fn put(&self, index: &mut Index, _: &WatchSpec) -> Changed {
        index.put_service(to_service(self))
    }
}

impl Watched for EndpointSlice {
    const KIND: Kind = Kind::EndpointSlice;
    fn put(&self, index: &mut Index, spec: &WatchSpec) -> Changed {
        index.put_endpoints(to_endpoints(self, spec.zones))
    }
}

impl Watched for KPod {
    const KIND: Kind = Kind::Pod;
    fn put(&self, index: &mut Index, _: &WatchSpec) -> Changed {
        let (ns, name) = id_of(self);
        // A pod being deleted no longer answers (CoreDNS drops terminating pods).
        if self.meta().deletion_timestamp.is_some() {
            return index.delete_pod(&ns, &name);
        }
        let ip = self
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
}

impl Watched for Namespace {
    const KIND: Kind = Kind::Namespace;
    fn put(&self, index: &mut Index, _: &WatchSpec) -> Changed {
        index.put_namespace(self.name_any())
    }
}

/// Start the watchers; they stop when `stop` turns true.
pub fn start(
    client: Client,
    store: Arc<Store>,
    spec: WatchSpec,
    stop: tokio_watch::Receiver<bool>,
) {
    let labels = spec.labels.clone();
    spawn::<KService>(
        Api::all(client.clone()),
        config(labels.as_deref(), None),
        store.clone(),
        spec.clone(),
        stop.clone(),
    );
    if spec.endpoints {
        spawn::<EndpointSlice>(
            Api::all(client.clone()),
            config(labels.as_deref(), None),
            store.clone(),
            spec.clone(),
            stop.clone(),
        );
    }
    if spec.pods {
        spawn::<KPod>(
            Api::all(client.clone()),
            config(
                labels.as_deref(),
                Some("status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown"),
            ),
            store.clone(),
            spec.clone(),
            stop.clone(),
        );
    }
    spawn::<Namespace>(
        Api::all(client),
        config(spec.namespace_labels.as_deref(), None),
        store,
        spec,
        stop,
    );
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

fn spawn<K: Watched>(
    api: Api<K>,
    cfg: watcher::Config,
    store: Arc<Store>,
    spec: WatchSpec,
    mut stop: tokio_watch::Receiver<bool>,
) {
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
                    let text = e.to_string();
                    if last_error.as_deref() != Some(text.as_str()) {
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
                    let id = if K::KIND == Kind::Namespace {
                        (String::new(), id_of(&o).1)
                    } else {
                        id_of(&o)
                    };
                    let c = o.put(&mut store.write(), &spec);
                    store.changed(c);
                    if let Some(l) = listed.as_mut() {
                        l.push(id);
                    }
                }
                Event::InitDone => {
                    if let Some(seen) = listed.take() {
                        let seen: std::collections::HashSet<_> = seen.into_iter().collect();
                        let mut index = store.write();
                        let mut changed = Changed::No;
                        for (ns, name) in index.ids(K::KIND) {
                            if !seen.contains(&(ns.clone(), name.clone())) {
                                let c = delete(&mut index, K::KIND, &ns, &name);
                                if c != Changed::No {
                                    changed = c;
                                }
                            }
                        }
                        drop(index);
                        store.changed(changed);
                    }
                    store.set_synced(K::KIND);
                }
                Event::Apply(o) => {
                    let c = o.put(&mut store.write(), &spec);
                    store.changed(c);
                    if K::KIND == Kind::EndpointSlice && c != Changed::No {
                        record_programming(&o, &store, &spec);
                    }
                }
                Event::Delete(o) => {
                    let (ns, name) = id_of(&o);
                    let c = delete(&mut store.write(), K::KIND, &ns, &name);
                    store.changed(c);
                }
            }
        }
    });
}

/// `coredns_kubernetes_dns_programming_duration_seconds`: from the change the endpoint
/// controller stamped on the slice to the index having it, for a slice of exactly one service.
fn record_programming<K: Resource>(o: &K, store: &Store, spec: &WatchSpec) {
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
    let svc = o
        .meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .cloned()
        .unwrap_or_default();
    let key = format!("{svc}.{}", o.meta().namespace.clone().unwrap_or_default());
    let kind = {
        let index = store.read();
        let svcs = index.svc_index(&key);
        if svcs.len() != 1 {
            return;
        }
        if svcs[0].headless() {
            "headless_with_selector"
        } else {
            "cluster_ip"
        }
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

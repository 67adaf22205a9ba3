//! The plugin's view of the cluster: the objects it watches, reduced to what answers need, and
//! the indexes a query is answered from (CoreDNS's informer stores and their indexers).
//!
//! A query takes the read lock and borrows from the index; it allocates only for the records
//! it returns. Watch events take the write lock briefly to swap one object and its index
//! entries.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A service or endpoint port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Its name ("" when unnamed).
    pub name: String,
    /// `TCP`, `UDP` or `SCTP` ("" when not given).
    pub protocol: String,
    /// The port; -1 stands for "no ports declared" (no SRV record is made for it).
    pub port: i32,
}

/// A Service, as answers need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// `spec.type` (`ClusterIP`, `NodePort`, `LoadBalancer`, `ExternalName`).
    pub kind: String,
    /// `spec.externalName`.
    pub external_name: String,
    /// `spec.clusterIPs` (or `[spec.clusterIP]`); `["None"]` for a headless service.
    pub cluster_ips: Vec<String>,
    /// `spec.ports` (`[{port: -1}]` when there are none).
    pub ports: Vec<Port>,
    /// `spec.externalIPs` then the load balancer's ingress IPs (or host names).
    pub external_ips: Vec<String>,
}

impl Service {
    /// A service without a cluster IP: its name resolves to its endpoints.
    pub fn headless(&self) -> bool {
        self.cluster_ips.first().is_some_and(|ip| ip == "None")
    }

    /// An ExternalName service (a CNAME).
    pub fn is_external_name(&self) -> bool {
        self.kind == "ExternalName"
    }

    /// `name.namespace`, the key services and their endpoints share.
    pub fn key(&self) -> String {
        key_of(&self.name, &self.namespace)
    }
}

/// One ready address of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The IP address.
    pub ip: String,
    /// `hostname`, when set.
    pub hostname: String,
    /// The name of the pod it points to (when shorter than 64 bytes).
    pub target_ref_name: String,
    /// The node it runs on.
    pub node_name: String,
    /// Its topology zone, lowercased (`zonal`).
    pub zone: String,
}

/// An EndpointSlice, as answers need it (CoreDNS turns each slice into one Endpoints subset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The slice's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The service it belongs to: its `kubernetes.io/service-name` label (for a multi-cluster
    /// slice, `multicluster.kubernetes.io/service-name`).
    pub service: String,
    /// The ready addresses.
    pub addresses: Vec<Address>,
    /// The ports (`[{port: -1}]` when there are none).
    pub ports: Vec<Port>,
    /// The cluster a multi-cluster slice comes from (its
    /// `multicluster.kubernetes.io/source-cluster` label); "" for the cluster's own slices.
    pub cluster_id: String,
}

/// A multi-cluster ServiceImport (`multicluster.x-k8s.io/v1alpha1`), as answers need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceImport {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// `spec.ips`.
    pub cluster_ips: Vec<String>,
    /// `spec.type`: `ClusterSetIP` or `Headless`.
    pub kind: String,
    /// `spec.ports`.
    pub ports: Vec<Port>,
}

impl ServiceImport {
    /// A headless import: its name resolves to the endpoints of every cluster.
    pub fn headless(&self) -> bool {
        self.kind == "Headless"
    }
}

/// A pod, for `pods verified` and autopath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// `status.podIP`.
    pub ip: String,
}

/// The indexes.
#[derive(Default)]
pub struct Index {
    services: HashMap<(String, String), Arc<Service>>,
    svc_by_key: HashMap<String, Vec<Arc<Service>>>,
    svc_by_ip: HashMap<String, Vec<Arc<Service>>>,
    svc_by_ext_ip: HashMap<String, Vec<Arc<Service>>>,
    slices: HashMap<(String, String), Arc<Endpoints>>,
    eps_by_key: HashMap<String, Vec<Arc<Endpoints>>>,
    eps_by_ip: HashMap<String, Vec<Arc<Endpoints>>>,
    pods: HashMap<(String, String), Arc<Pod>>,
    pods_by_ip: HashMap<String, Vec<Arc<Pod>>>,
    namespaces: HashSet<String>,
    imports: HashMap<(String, String), Arc<ServiceImport>>,
    imports_by_key: HashMap<String, Vec<Arc<ServiceImport>>>,
    mc_slices: HashMap<(String, String), Arc<Endpoints>>,
    mc_eps_by_key: HashMap<String, Vec<Arc<Endpoints>>>,
}

thread_local! {
    /// The `name.namespace` key of a lookup, built here so that a query allocates nothing to
    /// find its objects.
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The objects under the key `name.namespace`.
fn by_key<'a, T>(map: &'a HashMap<String, Vec<Arc<T>>>, name: &str, ns: &str) -> &'a [Arc<T>] {
    KEY.with(|k| {
        let mut k = k.borrow_mut();
        k.clear();
        k.push_str(name);
        k.push('.');
        k.push_str(ns);
        map.get(k.as_str()).map(Vec::as_slice).unwrap_or(&[])
    })
}

fn key_of(name: &str, ns: &str) -> String {
    format!("{name}.{ns}")
}

fn add<T>(map: &mut HashMap<String, Vec<Arc<T>>>, key: &str, v: &Arc<T>) {
    map.entry(key.to_string()).or_default().push(v.clone());
}

fn remove<T>(map: &mut HashMap<String, Vec<Arc<T>>>, key: &str, v: &Arc<T>) {
    if let Some(list) = map.get_mut(key) {
        list.retain(|x| !Arc::ptr_eq(x, v));
        if list.is_empty() {
            map.remove(key);
        }
    }
}

/// What kind of change an event made, for the SOA serials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// Nothing an answer depends on.
    No,
    /// Cluster-internal data.
    Internal,
    /// External addresses only (k8s_external's serial).
    External,
    /// Cluster-internal data and external addresses (k8s_external's serial).
    InternalAndExternal,
    /// Multi-cluster data (the multicluster zones' serial).
    MultiCluster,
}

impl Index {
    /// Services named `name` in `namespace`.
    pub fn svc_index(&self, name: &str, namespace: &str) -> &[Arc<Service>] {
        by_key(&self.svc_by_key, name, namespace)
    }

    /// Services with this cluster IP.
    pub fn svc_index_reverse(&self, ip: &str) -> &[Arc<Service>] {
        self.svc_by_ip.get(ip).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Services with this external IP.
    pub fn svc_ext_index_reverse(&self, ip: &str) -> &[Arc<Service>] {
        self.svc_by_ext_ip.get(ip).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every service.
    pub fn services(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.services.values()
    }

    /// Endpoint slices of the service `name` in `namespace`.
    pub fn ep_index(&self, name: &str, namespace: &str) -> &[Arc<Endpoints>] {
        by_key(&self.eps_by_key, name, namespace)
    }

    /// Endpoint slices with this address.
    pub fn ep_index_reverse(&self, ip: &str) -> &[Arc<Endpoints>] {
        self.eps_by_ip.get(ip).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Pods with this IP.
    pub fn pod_index(&self, ip: &str) -> &[Arc<Pod>] {
        self.pods_by_ip.get(ip).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether the namespace exists (and matches `namespace_labels`).
    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.namespaces.contains(ns)
    }

    /// Add or replace a service.
    pub fn put_service(&mut self, s: Service) -> Changed {
        let id = (s.namespace.clone(), s.name.clone());
        let old = self.services.get(&id).cloned();
        // As CoreDNS's handlers: an added service moves the internal serial; an update moves
        // the internal one when its external name or ports changed, the external one when its
        // external addresses or ports did (a new cluster IP alone moves neither).
        let changed = match &old {
            None => Changed::Internal,
            Some(o) if **o == s => return Changed::No,
            Some(o) => {
                let ports = o.ports != s.ports;
                let int = ports || o.external_name != s.external_name;
                let ext = ports || o.external_ips != s.external_ips;
                match (int, ext) {
                    (true, true) => Changed::InternalAndExternal,
                    (true, false) => Changed::Internal,
                    (false, true) => Changed::External,
                    (false, false) => Changed::No,
                }
            }
        };
        if let Some(o) = &old {
            self.unindex_service(o);
        }
        let s = Arc::new(s);
        self.index_service(&s);
        self.services.insert(id, s);
        changed
    }

    /// Remove a service.
    pub fn delete_service(&mut self, namespace: &str, name: &str) -> Changed {
        match self
            .services
            .remove(&(namespace.to_string(), name.to_string()))
        {
            Some(o) => {
                self.unindex_service(&o);
                Changed::Internal
            }
            None => Changed::No,
        }
    }

    fn index_service(&mut self, s: &Arc<Service>) {
        add(&mut self.svc_by_key, &s.key(), s);
        for ip in &s.cluster_ips {
            add(&mut self.svc_by_ip, ip, s);
        }
        for ip in &s.external_ips {
            add(&mut self.svc_by_ext_ip, ip, s);
        }
    }

    fn unindex_service(&mut self, s: &Arc<Service>) {
        remove(&mut self.svc_by_key, &s.key(), s);
        for ip in &s.cluster_ips {
            remove(&mut self.svc_by_ip, ip, s);
        }
        for ip in &s.external_ips {
            remove(&mut self.svc_by_ext_ip, ip, s);
        }
    }

    /// Add or replace an endpoint slice.
    pub fn put_endpoints(&mut self, e: Endpoints) -> Changed {
        let id = (e.namespace.clone(), e.name.clone());
        if let Some(o) = self.slices.get(&id).cloned() {
            if *o == e {
                return Changed::No;
            }
            self.unindex_endpoints(&o);
        }
        let e = Arc::new(e);
        self.index_endpoints(&e);
        self.slices.insert(id, e);
        Changed::Internal
    }

    /// Remove an endpoint slice.
    pub fn delete_endpoints(&mut self, namespace: &str, name: &str) -> Changed {
        match self
            .slices
            .remove(&(namespace.to_string(), name.to_string()))
        {
            Some(o) => {
                self.unindex_endpoints(&o);
                Changed::Internal
            }
            None => Changed::No,
        }
    }

    fn index_endpoints(&mut self, e: &Arc<Endpoints>) {
        add(&mut self.eps_by_key, &key_of(&e.service, &e.namespace), e);
        let mut seen = HashSet::new();
        for a in &e.addresses {
            if seen.insert(a.ip.as_str()) {
                add(&mut self.eps_by_ip, &a.ip, e);
            }
        }
    }

    fn unindex_endpoints(&mut self, e: &Arc<Endpoints>) {
        remove(&mut self.eps_by_key, &key_of(&e.service, &e.namespace), e);
        for a in &e.addresses {
            remove(&mut self.eps_by_ip, &a.ip, e);
        }
    }

    /// Add or replace a pod.
    pub fn put_pod(&mut self, p: Pod) -> Changed {
        let id = (p.namespace.clone(), p.name.clone());
        let mut changed = Changed::Internal;
        if let Some(o) = self.pods.get(&id).cloned() {
            if *o == p {
                return Changed::No;
            }
            if o.ip == p.ip {
                changed = Changed::No;
            }
            remove(&mut self.pods_by_ip, &o.ip, &o);
        }
        let p = Arc::new(p);
        add(&mut self.pods_by_ip, &p.ip, &p);
        self.pods.insert(id, p);
        changed
    }

    /// Remove a pod.
    pub fn delete_pod(&mut self, namespace: &str, name: &str) -> Changed {
        match self.pods.remove(&(namespace.to_string(), name.to_string())) {
            Some(o) => {
                remove(&mut self.pods_by_ip, &o.ip, &o);
                Changed::Internal
            }
            None => Changed::No,
        }
    }

    /// ServiceImports named `name` in `namespace`.
    pub fn svc_import_index(&self, name: &str, namespace: &str) -> &[Arc<ServiceImport>] {
        by_key(&self.imports_by_key, name, namespace)
    }

    /// Multi-cluster endpoint slices of the import `name` in `namespace`.
    pub fn mc_ep_index(&self, name: &str, namespace: &str) -> &[Arc<Endpoints>] {
        by_key(&self.mc_eps_by_key, name, namespace)
    }

    /// Add or replace a ServiceImport.
    pub fn put_import(&mut self, s: ServiceImport) -> Changed {
        let id = (s.namespace.clone(), s.name.clone());
        let key = key_of(&s.name, &s.namespace);
        // As CoreDNS: an added import moves the internal serial, an updated one the
        // multicluster zones' serial.
        let mut changed = Changed::Internal;
        if let Some(o) = self.imports.get(&id).cloned() {
            if *o == s {
                return Changed::No;
            }
            changed = Changed::MultiCluster;
            remove(&mut self.imports_by_key, &key, &o);
        }
        let s = Arc::new(s);
        add(&mut self.imports_by_key, &key, &s);
        self.imports.insert(id, s);
        changed
    }

    /// Remove a ServiceImport.
    pub fn delete_import(&mut self, namespace: &str, name: &str) -> Changed {
        match self
            .imports
            .remove(&(namespace.to_string(), name.to_string()))
        {
            Some(o) => {
                remove(
                    &mut self.imports_by_key,
                    &format!("{}.{}", o.name, o.namespace),
                    &o,
                );
                Changed::MultiCluster
            }
            None => Changed::No,
        }
    }

    /// Add or replace a multi-cluster endpoint slice.
    pub fn put_mc_endpoints(&mut self, e: Endpoints) -> Changed {
        let id = (e.namespace.clone(), e.name.clone());
        let mut changed = Changed::Internal;
        if let Some(o) = self.mc_slices.get(&id).cloned() {
            if *o == e {
                return Changed::No;
            }
            changed = Changed::MultiCluster;
            remove(
                &mut self.mc_eps_by_key,
                &key_of(&o.service, &o.namespace),
                &o,
            );
        }
        let e = Arc::new(e);
        add(
            &mut self.mc_eps_by_key,
            &key_of(&e.service, &e.namespace),
            &e,
        );
        self.mc_slices.insert(id, e);
        changed
    }

    /// Remove a multi-cluster endpoint slice.
    pub fn delete_mc_endpoints(&mut self, namespace: &str, name: &str) -> Changed {
        match self
            .mc_slices
            .remove(&(namespace.to_string(), name.to_string()))
        {
            Some(o) => {
                remove(
                    &mut self.mc_eps_by_key,
                    &key_of(&o.service, &o.namespace),
                    &o,
                );
                Changed::Internal
            }
            None => Changed::No,
        }
    }

    /// Add a namespace.
    /// (Namespaces never move a serial: CoreDNS's namespace informer has no handlers.)
    pub fn put_namespace(&mut self, name: String) -> Changed {
        self.namespaces.insert(name);
        Changed::No
    }

    /// Remove a namespace.
    pub fn delete_namespace(&mut self, name: &str) -> Changed {
        self.namespaces.remove(name);
        Changed::No
    }

    /// The ids of every object of a kind, for a relist to drop what is gone.
    pub fn ids(&self, kind: Kind) -> Vec<(String, String)> {
        match kind {
            Kind::Service => self.services.keys().cloned().collect(),
            Kind::EndpointSlice => self.slices.keys().cloned().collect(),
            Kind::Pod => self.pods.keys().cloned().collect(),
            Kind::ServiceImport => self.imports.keys().cloned().collect(),
            Kind::McEndpointSlice => self.mc_slices.keys().cloned().collect(),
            Kind::Namespace => self
                .namespaces
                .iter()
                .map(|n| (String::new(), n.clone()))
                .collect(),
        }
    }
}

/// The kinds of objects watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// core/v1 Service.
    Service,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// core/v1 Pod (`pods verified` only).
    Pod,
    /// core/v1 Namespace.
    Namespace,
    /// multicluster.x-k8s.io/v1alpha1 ServiceImport (`multicluster`).
    ServiceImport,
    /// EndpointSlices of multi-cluster services (`multicluster`).
    McEndpointSlice,
}

impl Kind {
    fn bit(self) -> usize {
        match self {
            Kind::Service => 0,
            Kind::EndpointSlice => 1,
            Kind::Pod => 2,
            Kind::Namespace => 3,
            Kind::ServiceImport => 4,
            Kind::McEndpointSlice => 5,
        }
    }
}

/// The index with its sync state and change times, shared by the watchers and the handler.
#[derive(Default)]
pub struct Store {
    index: RwLock<Index>,
    watched: [AtomicBool; 6],
    synced: [AtomicBool; 6],
    modified: AtomicI64,
    ext_modified: AtomicI64,
    mc_modified: AtomicI64,
    started: AtomicBool,
}

impl Store {
    /// A store that waits for these kinds before it counts as synced.
    pub fn new(kinds: &[Kind]) -> Store {
        let s = Store::default();
        for k in kinds {
            s.watched[k.bit()].store(true, Ordering::Relaxed);
        }
        s
    }

    /// Read access.
    pub fn read(&self) -> RwLockReadGuard<'_, Index> {
        match self.index.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Write access.
    pub fn write(&self) -> RwLockWriteGuard<'_, Index> {
        match self.index.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Record a change at the current time.
    pub fn changed(&self, c: Changed) {
        if c == Changed::No {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        match c {
            Changed::No => {}
            Changed::Internal => self.modified.store(now, Ordering::Relaxed),
            Changed::InternalAndExternal => {
                self.modified.store(now, Ordering::Relaxed);
                self.ext_modified.store(now, Ordering::Relaxed);
            }
            Changed::External => self.ext_modified.store(now, Ordering::Relaxed),
            Changed::MultiCluster => self.mc_modified.store(now, Ordering::Relaxed),
        }
    }

    /// When cluster data last changed (Unix seconds): the SOA serial.
    pub fn modified(&self) -> i64 {
        self.modified.load(Ordering::Relaxed)
    }

    /// When external addresses last changed (k8s_external's serial).
    pub fn ext_modified(&self) -> i64 {
        self.ext_modified.load(Ordering::Relaxed)
    }

    /// When multi-cluster data last changed (the multicluster zones' serial).
    pub fn mc_modified(&self) -> i64 {
        self.mc_modified.load(Ordering::Relaxed)
    }

    /// The server finished its startup wait: from now on watch errors are logged.
    pub fn set_started(&self) {
        self.started.store(true, Ordering::Relaxed);
    }

    /// Whether the startup wait is over.
    pub fn started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// Mark a kind's first list as done.
    pub fn set_synced(&self, kind: Kind) {
        self.synced[kind.bit()].store(true, Ordering::Release);
    }

    /// Whether every watched kind finished its first list (CoreDNS's `HasSynced`).
    pub fn has_synced(&self) -> bool {
        (0..6).all(|i| {
            !self.watched[i].load(Ordering::Relaxed) || self.synced[i].load(Ordering::Acquire)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, ip: &str) -> Service {
        Service {
            name: name.into(),
            namespace: "ns".into(),
            kind: "ClusterIP".into(),
            external_name: String::new(),
            cluster_ips: vec![ip.into()],
            ports: vec![],
            external_ips: vec![],
        }
    }

    #[test]
    fn replacing_a_service_moves_its_index_entries() {
        let mut i = Index::default();
        assert_eq!(i.put_service(svc("web", "10.0.0.1")), Changed::Internal);
        assert_eq!(i.put_service(svc("web", "10.0.0.1")), Changed::No);
        // A new cluster IP alone moves no serial (CoreDNS's serviceModified ignores it).
        assert_eq!(i.put_service(svc("web", "10.0.0.2")), Changed::No);
        let mut lb = svc("web", "10.0.0.2");
        lb.external_ips = vec!["192.0.2.1".into()];
        assert_eq!(i.put_service(lb), Changed::External);
        assert!(i.svc_index_reverse("10.0.0.1").is_empty());
        assert_eq!(i.svc_index_reverse("10.0.0.2").len(), 1);
        assert_eq!(i.svc_index("web", "ns").len(), 1);
        assert_eq!(i.delete_service("ns", "web"), Changed::Internal);
        assert!(i.svc_index("web", "ns").is_empty());
        assert!(i.svc_by_ip.is_empty() && i.svc_by_key.is_empty());
    }

    #[test]
    fn synced_only_when_every_watched_kind_listed() {
        let s = Store::new(&[Kind::Service, Kind::Namespace]);
        assert!(!s.has_synced());
        s.set_synced(Kind::Service);
        assert!(!s.has_synced());
        s.set_synced(Kind::Namespace);
        assert!(s.has_synced());
    }
}

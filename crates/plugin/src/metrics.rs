//! The process-wide metrics registry, shared by every instance so that counters survive reloads
//! and a family registered by several blocks is exported once.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::registry::{Metric, Registry};

#[derive(Default)]
struct Inner {
    registry: Registry,
    families: HashMap<String, Box<dyn Any + Send + Sync>>,
    process: bool,
}

/// A cheaply cloned handle on the registry.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A new, empty registry.
    pub fn new() -> Self {
        Metrics::default()
    }

    /// The metric registered under `name`, registering `make()` first if there is none.
    /// prometheus-client adds the `_total` suffix to counters, so pass `coredns_dns_requests`
    /// for `coredns_dns_requests_total`. If a metric of another type holds the name, a fresh
    /// unregistered one is returned (a programming error that must not take the server down).
    pub fn register<M>(&self, name: &str, help: &str, make: impl FnOnce() -> M) -> M
    where
        M: Metric + Clone,
    {
        let mut inner = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(existing) = inner.families.get(name) {
            return match existing.downcast_ref::<M>() {
                Some(m) => m.clone(),
                None => make(),
            };
        }
        let metric = make();
        // The registry ends every help text with a period; CoreDNS's texts already have one.
        let help = help.strip_suffix('.').unwrap_or(help);
        inner.registry.register(name, help, metric.clone());
        inner
            .families
            .insert(name.to_string(), Box::new(metric.clone()));
        metric
    }

    /// Export the `process_*` families of Go's process collector (CPU, memory, file
    /// descriptors, start time, network bytes), read from `/proc/self` at each scrape, as the
    /// registry CoreDNS serves does. Registering more than once is a no-op.
    pub fn register_process_collector(&self) {
        let mut inner = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if !inner.process {
            inner.process = true;
            inner
                .registry
                .register_collector(Box::new(crate::procfs::ProcessCollector));
        }
    }

    /// The registry in the classic Prometheus text format (`text/plain; version=0.0.4`), as
    /// CoreDNS's `/metrics` serves it; its content type is [`Metrics::CLASSIC_CONTENT_TYPE`].
    pub fn encode_classic(&self) -> String {
        crate::expo::classic_from_openmetrics(&self.encode())
    }

    /// The `Content-Type` of [`Metrics::encode_classic`], as CoreDNS v1.14.7 sends it.
    pub const CLASSIC_CONTENT_TYPE: &'static str = crate::expo::CONTENT_TYPE;

    /// The registry in the OpenMetrics 1.0 text format (with `# EOF`).
    pub fn encode(&self) -> String {
        let inner = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut out = String::new();
        // Encoding into a String only fails on a formatting error, which cannot happen here.
        let _ = prometheus_client::encoding::text::encode(&mut out, &inner.registry);
        out
    }
}

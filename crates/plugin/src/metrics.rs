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

    /// The registry in the Prometheus text exposition format.
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

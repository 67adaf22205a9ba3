//! The `coredns_cache_*` families, with CoreDNS's names, help texts and labels. Each series is
//! resolved in its family once, on first use, so counting on the hot path is one atomic add.

use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use ferrodns_plugin::Metrics;

/// A label set: names in the order Prometheus's Go client prints them (sorted).
pub type Labels = Vec<(&'static str, String)>;

/// One series, created in its family the first time it is touched (CoreDNS's labelled series
/// appear only once used), then updated without any lookup.
pub struct Lazy<M> {
    family: Family<Labels, M>,
    labels: Labels,
    cell: OnceLock<M>,
}

impl<M: Clone + Default + prometheus_client::metrics::TypedMetric> Lazy<M>
where
    M: prometheus_client::encoding::EncodeMetric,
{
    fn new(family: &Family<Labels, M>, labels: Labels) -> Self {
        Lazy {
            family: family.clone(),
            labels,
            cell: OnceLock::new(),
        }
    }

    /// The series.
    pub fn get(&self) -> &M {
        self.cell.get_or_init(|| {
            let m = self.family.get_or_create(&self.labels);
            m.clone()
        })
    }
}

impl Lazy<Counter> {
    /// Add one.
    pub fn inc(&self) {
        self.get().inc();
    }
}

impl Lazy<Gauge> {
    /// Set the value.
    pub fn set(&self, v: i64) {
        self.get().set(v);
    }
}

/// Counters and gauges of one cache, for one server label.
pub struct CacheMetrics {
    /// `coredns_cache_entries{type="success"}`.
    pub entries_success: Lazy<Gauge>,
    /// `coredns_cache_entries{type="denial"}`.
    pub entries_denial: Lazy<Gauge>,
    /// `coredns_cache_requests_total`.
    pub requests: Lazy<Counter>,
    /// `coredns_cache_hits_total{type="success"}`.
    pub hits_success: Lazy<Counter>,
    /// `coredns_cache_hits_total{type="denial"}`.
    pub hits_denial: Lazy<Counter>,
    /// `coredns_cache_misses_total`.
    pub misses: Lazy<Counter>,
    /// `coredns_cache_prefetch_total`.
    pub prefetch: Lazy<Counter>,
    /// `coredns_cache_drops_total`.
    pub drops: Lazy<Counter>,
    /// `coredns_cache_served_stale_total`.
    pub served_stale: Lazy<Counter>,
    /// `coredns_cache_evictions_total{type="success"}`.
    pub evictions_success: Lazy<Counter>,
    /// `coredns_cache_evictions_total{type="denial"}`.
    pub evictions_denial: Lazy<Counter>,
}

/// The registered families.
#[derive(Clone)]
pub struct Families {
    entries: Family<Labels, Gauge>,
    requests: Family<Labels, Counter>,
    hits: Family<Labels, Counter>,
    misses: Family<Labels, Counter>,
    prefetch: Family<Labels, Counter>,
    drops: Family<Labels, Counter>,
    served_stale: Family<Labels, Counter>,
    evictions: Family<Labels, Counter>,
}

impl Families {
    /// Register (or find) the families on the process registry.
    pub fn register(m: &Metrics) -> Self {
        Families {
            entries: m.register(
                "coredns_cache_entries",
                "The number of elements in the cache.",
                Family::default,
            ),
            requests: m.register(
                "coredns_cache_requests",
                "The count of cache requests.",
                Family::default,
            ),
            hits: m.register(
                "coredns_cache_hits",
                "The count of cache hits.",
                Family::default,
            ),
            misses: m.register(
                "coredns_cache_misses",
                "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
                Family::default,
            ),
            prefetch: m.register(
                "coredns_cache_prefetch",
                "The number of times the cache has prefetched a cached item.",
                Family::default,
            ),
            drops: m.register(
                "coredns_cache_drops",
                "The number responses that are not cached, because the reply is malformed.",
                Family::default,
            ),
            served_stale: m.register(
                "coredns_cache_served_stale",
                "The number of requests served from stale cache entries.",
                Family::default,
            ),
            evictions: m.register(
                "coredns_cache_evictions",
                "The count of cache evictions.",
                Family::default,
            ),
        }
    }

    /// The series of one cache for `server` (created on first use, as CoreDNS's appear once
    /// touched).
    pub fn for_server(&self, server: &str, zones: &str, view: &str) -> CacheMetrics {
        let plain = || -> Labels {
            vec![
                ("server", server.to_string()),
                ("view", view.to_string()),
                ("zones", zones.to_string()),
            ]
        };
        let typed = |t: &str| -> Labels {
            vec![
                ("server", server.to_string()),
                ("type", t.to_string()),
                ("view", view.to_string()),
                ("zones", zones.to_string()),
            ]
        };
        let (s, d, p) = (typed("success"), typed("denial"), plain());
        CacheMetrics {
            entries_success: Lazy::new(&self.entries, s.clone()),
            entries_denial: Lazy::new(&self.entries, d.clone()),
            requests: Lazy::new(&self.requests, p.clone()),
            hits_success: Lazy::new(&self.hits, s.clone()),
            hits_denial: Lazy::new(&self.hits, d.clone()),
            misses: Lazy::new(&self.misses, p.clone()),
            prefetch: Lazy::new(&self.prefetch, p.clone()),
            drops: Lazy::new(&self.drops, p.clone()),
            served_stale: Lazy::new(&self.served_stale, p),
            evictions_success: Lazy::new(&self.evictions, s),
            evictions_denial: Lazy::new(&self.evictions, d),
        }
    }
}

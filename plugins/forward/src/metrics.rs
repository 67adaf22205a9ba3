//! The metrics CoreDNS's forward and proxy packages export, with their names, help texts and
//! labels.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use ferrodns_plugin::Metrics;

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn time_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

/// The proxy name label (CoreDNS's `proxy_name`).
pub const PROXY_NAME: &str = "forward";

/// Handles on every forward metric.
#[derive(Clone)]
pub struct ForwardMetrics {
    request_duration: HistogramFamily,
    healthcheck_failures: Family<Labels, Counter>,
    conn_cache_hits: Family<Labels, Counter>,
    conn_cache_misses: Family<Labels, Counter>,
    healthcheck_broken: Counter,
    max_concurrent_rejects: Counter,
}

impl ForwardMetrics {
    /// Register (or find) the families on the shared registry.
    pub fn register(m: &Metrics) -> Self {
        ForwardMetrics {
            request_duration: m.register(
                "coredns_proxy_request_duration_seconds",
                "Histogram of the time each request took.",
                || HistogramFamily::new_with_constructor(time_buckets),
            ),
            healthcheck_failures: m.register(
                "coredns_proxy_healthcheck_failures",
                "Counter of the number of failed healthchecks.",
                Family::default,
            ),
            conn_cache_hits: m.register(
                "coredns_proxy_conn_cache_hits",
                "Counter of connection cache hits per upstream and protocol.",
                Family::default,
            ),
            conn_cache_misses: m.register(
                "coredns_proxy_conn_cache_misses",
                "Counter of connection cache misses per upstream and protocol.",
                Family::default,
            ),
            healthcheck_broken: m.register(
                "coredns_forward_healthcheck_broken",
                "Counter of the number of complete failures of the healthchecks.",
                Counter::default,
            ),
            max_concurrent_rejects: m.register(
                "coredns_forward_max_concurrent_rejects",
                "Counter of the number of queries rejected because the concurrent queries were at maximum.",
                Counter::default,
            ),
        }
    }

    /// A finished exchange.
    pub fn observe(&self, to: &str, rcode: &str, secs: f64) {
        self.request_duration
            .get_or_create(&vec![
                ("proxy_name", PROXY_NAME.to_string()),
                ("to", to.to_string()),
                ("rcode", rcode.to_string()),
            ])
            .observe(secs);
    }

    /// A failed health probe.
    pub fn healthcheck_failed(&self, to: &str) {
        self.healthcheck_failures
            .get_or_create(&vec![
                ("proxy_name", PROXY_NAME.to_string()),
                ("to", to.to_string()),
            ])
            .inc();
    }

    /// A pooled connection was reused.
    pub fn conn_hit(&self, to: &str, proto: &str) {
        self.conn_cache_hits
            .get_or_create(&vec![
                ("proxy_name", PROXY_NAME.to_string()),
                ("to", to.to_string()),
                ("proto", proto.to_string()),
            ])
            .inc();
    }

    /// A new connection was needed.
    pub fn conn_miss(&self, to: &str, proto: &str) {
        self.conn_cache_misses
            .get_or_create(&vec![
                ("proxy_name", PROXY_NAME.to_string()),
                ("to", to.to_string()),
                ("proto", proto.to_string()),
            ])
            .inc();
    }

    /// Every upstream was down.
    pub fn broken(&self) {
        self.healthcheck_broken.inc();
    }

    /// A query refused by `max_concurrent`.
    pub fn rejected(&self) {
        self.max_concurrent_rejects.inc();
    }
}

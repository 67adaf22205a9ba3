//! The metrics CoreDNS's forward and proxy packages export, with their names, help texts and
//! labels.

use std::sync::{Arc, OnceLock};

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
    fn observe(&self, to: &str, rcode: &str, secs: f64) {
        self.request_duration
            .get_or_create(&labels(&[("to", to), ("rcode", rcode)]))
            .observe(secs);
    }

    /// A failed health probe.
    pub fn healthcheck_failed(&self, to: &str) {
        self.healthcheck_failures
            .get_or_create(&labels(&[("to", to)]))
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

/// Rcodes whose series an upstream keeps (every rcode with a name is below this).
const KEPT_RCODES: usize = 24;

/// The protocol label of the connection-cache series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnProto {
    /// `udp`
    Udp,
    /// `tcp`
    Tcp,
    /// `tcp-tls`: a TLS upstream.
    TcpTls,
}

impl ConnProto {
    const COUNT: usize = 3;

    fn label(self) -> &'static str {
        match self {
            ConnProto::Udp => "udp",
            ConnProto::Tcp => "tcp",
            ConnProto::TcpTls => "tcp-tls",
        }
    }
}

/// One upstream's series. Each is looked up in its family the first time it is used, as
/// CoreDNS creates a series on first use, and then kept: a query adds to a kept series without
/// building a label set or hashing one.
pub struct UpstreamMetrics {
    families: Arc<ForwardMetrics>,
    to: String,
    durations: [OnceLock<Histogram>; KEPT_RCODES],
    hits: [OnceLock<Counter>; ConnProto::COUNT],
    misses: [OnceLock<Counter>; ConnProto::COUNT],
}

impl UpstreamMetrics {
    /// The series of the upstream labelled `to` (`ip:port`).
    pub fn new(families: Arc<ForwardMetrics>, to: &str) -> Self {
        UpstreamMetrics {
            families,
            to: to.to_string(),
            durations: std::array::from_fn(|_| OnceLock::new()),
            hits: std::array::from_fn(|_| OnceLock::new()),
            misses: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The families, for what is not per upstream.
    pub fn families(&self) -> &ForwardMetrics {
        &self.families
    }

    /// A finished exchange whose reply had `rcode`.
    pub fn observe(&self, rcode: u16, secs: f64) {
        let name = ferrodns_pkg::text::rcode_name(rcode);
        match (name, self.durations.get(usize::from(rcode))) {
            (Some(name), Some(slot)) => slot
                .get_or_init(|| {
                    self.families
                        .request_duration
                        .get_or_create(&labels(&[("to", &self.to), ("rcode", name)]))
                        .clone()
                })
                .observe(secs),
            _ => self.families.observe(
                &self.to,
                &name.map_or_else(|| rcode.to_string(), str::to_string),
                secs,
            ),
        }
    }

    /// A pooled connection was reused (`hit`) or a new one was needed, over `proto`.
    pub fn conn(&self, hit: bool, proto: ConnProto) {
        let (slots, family) = if hit {
            (&self.hits, &self.families.conn_cache_hits)
        } else {
            (&self.misses, &self.families.conn_cache_misses)
        };
        slots[proto as usize]
            .get_or_init(|| {
                family
                    .get_or_create(&labels(&[("to", &self.to), ("proto", proto.label())]))
                    .clone()
            })
            .inc();
    }
}

/// `proxy_name` and then `pairs`, as the families label their series.
fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    std::iter::once(("proxy_name", PROXY_NAME.to_string()))
        .chain(pairs.iter().map(|(k, v)| (*k, (*v).to_string())))
        .collect()
}

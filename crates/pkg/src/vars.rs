//! The server-wide DNS metrics CoreDNS keeps in its `metrics/vars` package, with its names,
//! types, label names, help texts and buckets: request and response counts, sizes and durations
//! per server and zone, panics, enabled plugins, build info. The server reports the replies it
//! writes itself (zone `dropped`); the `prometheus` plugin reports every request that passes
//! through it; both through [`DnsMetrics::report`].

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use ferrodns_plugin::{Metrics, Protocol};

/// Label sets: name and value pairs, in CoreDNS's label order.
pub type Labels = Vec<(&'static str, String)>;

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// CoreDNS's duration buckets: 0.25 ms doubling up to 8.192 s.
pub fn time_buckets() -> impl Iterator<Item = f64> {
    (0..16).map(|k| 0.00025 * f64::from(1u32 << k))
}

const SIZE_BUCKETS: [f64; 14] = [
    0.0, 100.0, 200.0, 300.0, 400.0, 511.0, 1023.0, 2047.0, 4095.0, 8291.0, 16e3, 32e3, 48e3, 64e3,
];

fn time_histogram() -> Histogram {
    Histogram::new(time_buckets())
}

fn size_histogram() -> Histogram {
    Histogram::new(SIZE_BUCKETS)
}

/// The zone label of replies the server writes without a block (CoreDNS's `vars.Dropped`).
pub const DROPPED: &str = "dropped";

/// Handles on the families (cheap to clone; all clones update the same metrics).
#[derive(Clone, Debug)]
pub struct DnsMetrics {
    requests: Family<Labels, Counter>,
    duration: HistogramFamily,
    request_size: HistogramFamily,
    response_size: HistogramFamily,
    do_requests: Family<Labels, Counter>,
    responses: Family<Labels, Counter>,
    /// `coredns_panics_total`.
    pub panics: Counter,
    /// `coredns_plugin_enabled{server,zone,view,name}`.
    pub plugin_enabled: Family<Labels, Gauge>,
    /// `coredns_build_info{version,revision,goversion}`.
    pub build_info: Family<Labels, Gauge>,
    /// The series [`report`](Self::report) found before, by server, zone and view.
    series: Arc<RwLock<SeriesByName>>,
}

type ByName<V> = HashMap<Box<str>, V, foldhash::fast::RandomState>;

/// By server, zone, then view.
type SeriesByName = ByName<ByName<ByName<Arc<Series>>>>;

/// Handles on the series of one server, zone and view, each made (and so exported) the first
/// time a reply needs it, as CoreDNS's `WithLabelValues`. A family hashes and compares a whole
/// label set of owned strings on every lookup: for the six updates of a reply that cost more
/// than the rest of a cache hit. Each handle shares its counts with the family's series.
#[derive(Debug, Default)]
struct Series {
    duration: OnceLock<Histogram>,
    do_requests: OnceLock<Counter>,
    /// By proto, then family (IPv4, IPv6), then type label.
    requests: [[[OnceLock<Counter>; QTYPE_LABELS.len() + 1]; 2]; 2],
    /// By proto.
    request_size: [OnceLock<Histogram>; 2],
    /// By proto.
    response_size: [OnceLock<Histogram>; 2],
    /// By rcode, then plugin.
    responses: RwLock<ByName<ByName<Counter>>>,
}

/// What one reply is reported with.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// The server label (`dns://:53`).
    pub server: &'a str,
    /// The zone of the block, or [`DROPPED`].
    pub zone: &'a str,
    /// The view (empty without views).
    pub view: &'a str,
    /// Transport.
    pub proto: Protocol,
    /// Whether the client is on IPv6 (family 2).
    pub ipv6: bool,
    /// The question type.
    pub qtype: u16,
    /// Whether the client set DO.
    pub dnssec_ok: bool,
    /// The rcode's name (`NOERROR`, `RCODE23`).
    pub rcode: String,
    /// The plugin that wrote the reply ("" when the server did).
    pub plugin: &'a str,
    /// The reply's size as CoreDNS counts it (uncompressed).
    pub response_size: usize,
    /// The request's size before any rewrite.
    pub request_size: usize,
    /// Time spent.
    pub duration: Duration,
}

impl DnsMetrics {
    /// The families, registered on `m` the first time (every later call shares them).
    pub fn new(m: &Metrics) -> Self {
        DnsMetrics {
            requests: m.register(
                "coredns_dns_requests",
                "Counter of DNS requests made per zone, protocol and family.",
                Family::default,
            ),
            duration: m.register(
                "coredns_dns_request_duration_seconds",
                "Histogram of the time (in seconds) each request took per zone.",
                || Family::new_with_constructor(time_histogram as fn() -> Histogram),
            ),
            request_size: m.register(
                "coredns_dns_request_size_bytes",
                "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
                || Family::new_with_constructor(size_histogram as fn() -> Histogram),
            ),
            response_size: m.register(
                "coredns_dns_response_size_bytes",
                "Size of the returned response in bytes.",
                || Family::new_with_constructor(size_histogram as fn() -> Histogram),
            ),
            do_requests: m.register(
                "coredns_dns_do_requests",
                "Counter of DNS requests with DO bit set per zone.",
                Family::default,
            ),
            responses: m.register(
                "coredns_dns_responses",
                "Counter of response status codes.",
                Family::default,
            ),
            series: Arc::default(),
            panics: m.register(
                "coredns_panics",
                "A metrics that counts the number of panics.",
                Counter::default,
            ),
            plugin_enabled: m.register(
                "coredns_plugin_enabled",
                "A metric that indicates whether a plugin is enabled on per server and zone basis.",
                Family::default,
            ),
            build_info: m.register(
                "coredns_build_info",
                "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.",
                Family::default,
            ),
        }
    }

    /// Count one reply, as CoreDNS's `vars.Report`.
    pub fn report(&self, r: &Report<'_>) {
        let series = self.series(r.server, r.zone, r.view);
        let labels = |extra: &[(&'static str, &str)]| -> Labels {
            [("server", r.server), ("zone", r.zone), ("view", r.view)]
                .iter()
                .chain(extra)
                .map(|&(k, v)| (k, v.to_string()))
                .collect()
        };
        let proto = r.proto.as_str();
        let p = match r.proto {
            Protocol::Udp => 0,
            Protocol::Tcp => 1,
        };
        if r.dnssec_ok {
            series
                .do_requests
                .get_or_init(|| self.do_requests.get_or_create(&labels(&[])).clone())
                .inc();
        }
        let t = qtype_index(r.qtype);
        series.requests[p][usize::from(r.ipv6)][t]
            .get_or_init(|| {
                let family = if r.ipv6 { "2" } else { "1" };
                let qtype = qtype_label(r.qtype);
                let l = labels(&[("proto", proto), ("family", family), ("type", qtype)]);
                self.requests.get_or_create(&l).clone()
            })
            .inc();
        series
            .duration
            .get_or_init(|| self.duration.get_or_create(&labels(&[])).clone())
            .observe(r.duration.as_secs_f64());
        series.response_size[p]
            .get_or_init(|| {
                let l = labels(&[("proto", proto)]);
                self.response_size.get_or_create(&l).clone()
            })
            .observe(r.response_size as f64);
        series.request_size[p]
            .get_or_init(|| {
                let l = labels(&[("proto", proto)]);
                self.request_size.get_or_create(&l).clone()
            })
            .observe(r.request_size as f64);
        let known = read(&series.responses)
            .get(r.rcode.as_str())
            .and_then(|by_plugin| by_plugin.get(r.plugin))
            .map(|c| c.inc())
            .is_some();
        if !known {
            let l = labels(&[("rcode", &r.rcode), ("plugin", r.plugin)]);
            let c = self.responses.get_or_create(&l).clone();
            c.inc();
            write(&series.responses)
                .entry(r.rcode.as_str().into())
                .or_default()
                .insert(r.plugin.into(), c);
        }
    }

    /// The handles of one server, zone and view, made on first use.
    fn series(&self, server: &str, zone: &str, view: &str) -> Arc<Series> {
        let found = read(&self.series)
            .get(server)
            .and_then(|z| z.get(zone))
            .and_then(|v| v.get(view))
            .cloned();
        found.unwrap_or_else(|| {
            write(&self.series)
                .entry(server.into())
                .or_default()
                .entry(zone.into())
                .or_default()
                .entry(view.into())
                .or_default()
                .clone()
        })
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// The types CoreDNS monitors by name; any other is `other`.
const QTYPE_LABELS: [(u16, &str); 19] = [
    (1, "A"),
    (2, "NS"),
    (5, "CNAME"),
    (6, "SOA"),
    (12, "PTR"),
    (15, "MX"),
    (16, "TXT"),
    (28, "AAAA"),
    (33, "SRV"),
    (43, "DS"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (48, "DNSKEY"),
    (50, "NSEC3"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (251, "IXFR"),
    (252, "AXFR"),
    (255, "ANY"),
];

/// The position of `qtype` in [`QTYPE_LABELS`]; its length for `other`.
fn qtype_index(qtype: u16) -> usize {
    QTYPE_LABELS
        .iter()
        .position(|&(t, _)| t == qtype)
        .unwrap_or(QTYPE_LABELS.len())
}

/// The `type` label: the types CoreDNS monitors by name, `other` for the rest.
pub fn qtype_label(qtype: u16) -> &'static str {
    QTYPE_LABELS
        .get(qtype_index(qtype))
        .map_or("other", |&(_, l)| l)
}

/// An rcode's metric label: its name, or `RCODE<n>` (CoreDNS's `rcode.ToString`).
pub fn rcode_label(rcode: u16) -> String {
    match crate::text::rcode_name(rcode) {
        Some(n) => n.to_string(),
        None => format!("RCODE{rcode}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_encode_with_coredns_names_and_labels() {
        let m = Metrics::new();
        let d = DnsMetrics::new(&m);
        d.report(&Report {
            server: "dns://:53",
            zone: "example.org.",
            view: "",
            proto: Protocol::Udp,
            ipv6: false,
            qtype: 1,
            dnssec_ok: true,
            rcode: rcode_label(0),
            plugin: "whoami",
            response_size: 91,
            request_size: 40,
            duration: Duration::from_micros(300),
        });
        let text = m.encode();
        for want in [
            "# TYPE coredns_dns_requests counter",
            "# HELP coredns_dns_requests Counter of DNS requests made per zone, protocol and family.\n",
            "coredns_dns_requests_total{server=\"dns://:53\",zone=\"example.org.\",view=\"\",proto=\"udp\",family=\"1\",type=\"A\"} 1",
            "coredns_dns_do_requests_total{server=\"dns://:53\",zone=\"example.org.\",view=\"\"} 1",
            "coredns_dns_responses_total{server=\"dns://:53\",zone=\"example.org.\",view=\"\",rcode=\"NOERROR\",plugin=\"whoami\"} 1",
            "# TYPE coredns_dns_request_duration_seconds histogram",
            "coredns_dns_request_duration_seconds_bucket{le=\"0.0005\",server=\"dns://:53\",zone=\"example.org.\",view=\"\"} 1",
            "coredns_dns_response_size_bytes_bucket{le=\"100.0\",server=\"dns://:53\",zone=\"example.org.\",view=\"\",proto=\"udp\"} 1",
            "coredns_panics_total 0",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert_eq!(rcode_label(23), "BADCOOKIE");
        assert_eq!(rcode_label(4000), "RCODE4000");
        assert_eq!(qtype_label(99), "other");
    }

    /// Replies reported through the kept handles count in the right series, a second
    /// `DnsMetrics` on the same registry counts into the same ones, and a series appears only
    /// once a reply needs it.
    #[test]
    fn kept_handles_count_into_the_family_series() {
        let m = Metrics::new();
        let (a, b) = (DnsMetrics::new(&m), DnsMetrics::new(&m));
        let report = |d: &DnsMetrics, proto, ipv6, qtype, rcode: u16, plugin| {
            d.report(&Report {
                server: "dns://:53",
                zone: ".",
                view: "",
                proto,
                ipv6,
                qtype,
                dnssec_ok: false,
                rcode: rcode_label(rcode),
                plugin,
                response_size: 600,
                request_size: 40,
                duration: Duration::from_millis(2),
            })
        };
        for _ in 0..3 {
            report(&a, Protocol::Udp, false, 1, 0, "cache");
        }
        report(&b, Protocol::Udp, false, 1, 0, "cache");
        report(&a, Protocol::Tcp, true, 99, 3, "forward");
        report(&b, Protocol::Udp, false, 1, 3, "cache");
        let text = m.encode();
        let l = "server=\"dns://:53\",zone=\".\",view=\"\"";
        for want in [
            format!("coredns_dns_requests_total{{{l},proto=\"udp\",family=\"1\",type=\"A\"}} 5"),
            format!(
                "coredns_dns_requests_total{{{l},proto=\"tcp\",family=\"2\",type=\"other\"}} 1"
            ),
            format!("coredns_dns_responses_total{{{l},rcode=\"NOERROR\",plugin=\"cache\"}} 4"),
            format!("coredns_dns_responses_total{{{l},rcode=\"NXDOMAIN\",plugin=\"cache\"}} 1"),
            format!("coredns_dns_responses_total{{{l},rcode=\"NXDOMAIN\",plugin=\"forward\"}} 1"),
            format!("coredns_dns_request_duration_seconds_count{{{l}}} 6"),
            format!("coredns_dns_response_size_bytes_count{{{l},proto=\"udp\"}} 5"),
            format!("coredns_dns_request_size_bytes_count{{{l},proto=\"tcp\"}} 1"),
        ] {
            assert!(text.contains(&want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("coredns_dns_do_requests_total{"), "{text}");
        assert!(!text.contains("family=\"2\",type=\"A\""), "{text}");
    }
}

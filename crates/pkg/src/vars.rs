//! The server-wide DNS metrics CoreDNS keeps in its `metrics/vars` package, with its names,
//! types, label names, help texts and buckets: request and response counts, sizes and durations
//! per server and zone, panics, enabled plugins, build info. The server reports the replies it
//! writes itself (zone `dropped`); the `prometheus` plugin reports every request that passes
//! through it; both through [`DnsMetrics::report`].

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
        let sz = |extra: Vec<(&'static str, String)>| {
            let mut l: Labels = vec![
                ("server", r.server.to_string()),
                ("zone", r.zone.to_string()),
                ("view", r.view.to_string()),
            ];
            l.extend(extra);
            l
        };
        let proto = r.proto.as_str().to_string();
        if r.dnssec_ok {
            self.do_requests.get_or_create(&sz(vec![])).inc();
        }
        self.requests
            .get_or_create(&sz(vec![
                ("proto", proto.clone()),
                ("family", if r.ipv6 { "2" } else { "1" }.to_string()),
                ("type", qtype_label(r.qtype).to_string()),
            ]))
            .inc();
        self.duration
            .get_or_create(&sz(vec![]))
            .observe(r.duration.as_secs_f64());
        self.response_size
            .get_or_create(&sz(vec![("proto", proto.clone())]))
            .observe(r.response_size as f64);
        self.request_size
            .get_or_create(&sz(vec![("proto", proto)]))
            .observe(r.request_size as f64);
        self.responses
            .get_or_create(&sz(vec![
                ("rcode", r.rcode.clone()),
                ("plugin", r.plugin.to_string()),
            ]))
            .inc();
    }
}

/// The `type` label: the types CoreDNS monitors by name, `other` for the rest.
pub fn qtype_label(qtype: u16) -> &'static str {
    match qtype {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        43 => "DS",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        50 => "NSEC3",
        64 => "SVCB",
        65 => "HTTPS",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        _ => "other",
    }
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
}

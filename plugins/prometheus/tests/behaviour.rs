//! The prometheus plugin at run time, on a real server: queries over UDP and TCP to a loopback
//! listener, then a real HTTP GET of `/metrics`, whose body must hold CoreDNS's `coredns_*`
//! families with the labels and counts of what was asked. Every count is read after the reply
//! came back, and the plugin reports before the reply is written, so no waiting is needed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use ferrodns_plugin::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{Descriptor, Metrics, Registry, Setup, SetupError, Shared};
use ferrodns_plugin_test as testkit;
use ferrodns_plugin_test::{FastNxdomain, tcp_exchange, udp_exchange};
use ferrodns_server::{Server, Source, load};

/// How long a socket read may block before the test fails (a bound, not a wait).
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn fast_setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {}
    c.add_plugin(Arc::new(FastNxdomain));
    Ok(())
}

/// The directives these tests use, in chain order.
fn registry() -> Registry {
    let mut r = Registry::new();
    r.add(ferrodns_plugin_bind::DESCRIPTOR);
    r.add(ferrodns_plugin_prometheus::DESCRIPTOR);
    r.add(Descriptor::new("fast", fast_setup));
    r.add(ferrodns_plugin_whoami::DESCRIPTOR);
    r
}

/// A started server, the address its DNS listener bound, its label, and the address of its
/// one HTTP listener.
async fn start(corefile: &str) -> (Server, SocketAddr, String, SocketAddr) {
    let source = Source {
        filename: "Corefile".into(),
        text: corefile.as_bytes().to_vec(),
        default_port: "53".into(),
    };
    let instance = load(source, &registry(), &Metrics::new(), None).unwrap();
    let server = Server::start(instance).await.unwrap();
    assert_eq!(server.listeners().len(), 1, "one DNS listener");
    let dns = server.listeners()[0].addr;
    let label = server.listeners()[0].label.clone();
    let http = server.http_listeners();
    assert_eq!(
        http.len(),
        1,
        "blocks naming one address share one listener: {http:?}"
    );
    assert_eq!(http[0].0, "127.0.0.1:0");
    let http = http[0].1;
    (server, dns, label, http)
}

fn query(name: &str, qtype: RecordType, id: u16) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m
}

fn with_do(mut m: Message) -> Message {
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(true);
    m.set_edns(edns);
    m
}

/// A real HTTP/1.1 GET; the status line, the headers (lowercased names) and the body.
fn get(addr: SocketAddr, path: &str) -> (String, Vec<(String, String)>, String) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let (head, body) = out
        .split_once("\r\n\r\n")
        .expect("a complete response head");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// The value of the sample whose name and labels are exactly `series` (label pairs in any
/// order: the classic format writes them sorted by name).
fn sample<'a>(body: &'a str, series: &str) -> &'a str {
    let series = match series.split_once('{') {
        Some((name, labels)) => {
            let mut pairs: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
            pairs.sort();
            format!("{name}{{{}}}", pairs.join(","))
        }
        None => series.to_string(),
    };
    let series = series.as_str();
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {series} in\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_serves_coredns_families_for_what_was_asked() {
    let (server, dns, label, http) = start(
        "example.org:0 {\n    bind 127.0.0.1\n    prometheus 127.0.0.1:0\n    whoami\n}\n\
         .:0 {\n    bind 127.0.0.1\n    prometheus 127.0.0.1:0\n}\n",
    )
    .await;
    let (status, headers, body) = tokio::task::spawn_blocking(move || {
        let rcodes = [
            udp_exchange(dns, &query("www.example.org.", RecordType::A, 1)),
            udp_exchange(dns, &with_do(query("www.Example.org.", RecordType::MX, 2))),
            tcp_exchange(dns, &query("www.example.org.", RecordType::AAAA, 3)),
            // The root block's chain ends after prometheus: the server writes SERVFAIL.
            udp_exchange(dns, &query("other.test.", RecordType::A, 4)),
        ]
        .map(|m| m.metadata.response_code);
        assert_eq!(
            rcodes,
            [
                ResponseCode::NoError,
                ResponseCode::NoError,
                ResponseCode::NoError,
                ResponseCode::ServFail,
            ]
        );
        get(http, "/metrics")
    })
    .await
    .unwrap();

    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains(&(
            "content-type".to_string(),
            "text/plain; version=0.0.4; charset=utf-8; escaping=underscores".to_string()
        )),
        "{headers:?}"
    );
    // The classic format: no `# EOF`, counters declared by their `_total` name.
    assert!(!body.contains("# EOF"), "{body}");
    assert!(
        body.contains("# TYPE coredns_dns_requests_total counter\n"),
        "{body}"
    );
    assert!(!body.contains("_created"), "{body}");

    let s = |series: String| sample(&body, &series).to_string();
    let ex = format!("server=\"{label}\",zone=\"example.org.\",view=\"\"");
    let root = format!("server=\"{label}\",zone=\".\",view=\"\"");
    for (series, want) in [
        (
            format!("coredns_dns_requests_total{{{ex},proto=\"udp\",family=\"1\",type=\"A\"}}"),
            "1",
        ),
        (
            format!("coredns_dns_requests_total{{{ex},proto=\"udp\",family=\"1\",type=\"MX\"}}"),
            "1",
        ),
        (
            format!("coredns_dns_requests_total{{{ex},proto=\"tcp\",family=\"1\",type=\"AAAA\"}}"),
            "1",
        ),
        (
            format!("coredns_dns_requests_total{{{root},proto=\"udp\",family=\"1\",type=\"A\"}}"),
            "1",
        ),
        (format!("coredns_dns_do_requests_total{{{ex}}}"), "1"),
        (
            format!("coredns_dns_responses_total{{{ex},rcode=\"NOERROR\",plugin=\"whoami\"}}"),
            "3",
        ),
        (
            format!("coredns_dns_responses_total{{{root},rcode=\"SERVFAIL\",plugin=\"\"}}"),
            "1",
        ),
        (
            format!("coredns_dns_request_duration_seconds_count{{{ex}}}"),
            "3",
        ),
        (
            format!("coredns_dns_request_duration_seconds_count{{{root}}}"),
            "1",
        ),
        (
            format!("coredns_dns_request_size_bytes_count{{{ex},proto=\"udp\"}}"),
            "2",
        ),
        (
            format!("coredns_dns_request_size_bytes_count{{{ex},proto=\"tcp\"}}"),
            "1",
        ),
        (
            format!("coredns_dns_response_size_bytes_count{{{ex},proto=\"udp\"}}"),
            "2",
        ),
        (
            format!("coredns_dns_response_size_bytes_count{{{ex},proto=\"tcp\"}}"),
            "1",
        ),
        (
            format!("coredns_plugin_enabled{{{ex},name=\"whoami\"}}"),
            "1",
        ),
        (
            format!("coredns_plugin_enabled{{{ex},name=\"prometheus\"}}"),
            "1",
        ),
        (
            format!("coredns_plugin_enabled{{{root},name=\"prometheus\"}}"),
            "1",
        ),
        (
            format!(
                "coredns_build_info{{version=\"{}\",revision=\"\",goversion=\"rust\"}}",
                env!("CARGO_PKG_VERSION")
            ),
            "1",
        ),
        ("coredns_panics_total".to_string(), "0"),
    ] {
        assert_eq!(s(series.clone()), want, "{series}\n{body}");
    }
    // Nothing was asked of the root block by TCP, and no DO bit reached it.
    assert!(
        !body.contains(&format!("coredns_dns_requests_total{{{root},proto=\"tcp\"")),
        "{body}"
    );
    assert!(
        !body.contains(&format!("coredns_dns_do_requests_total{{{root}}}")),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_hook_replies_are_counted_like_chain_replies() {
    let (server, dns, label, http) =
        start(".:0 {\n    bind 127.0.0.1\n    prometheus 127.0.0.1:0\n    fast\n}\n").await;
    let body = tokio::task::spawn_blocking(move || {
        // UDP is answered by the hook (NXDOMAIN), TCP by serve (NOERROR).
        for id in 1..=3 {
            let r = udp_exchange(dns, &query("Fast.Example.", RecordType::A, id));
            assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        }
        let r = tcp_exchange(dns, &query("fast.example.", RecordType::A, 9));
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        get(http, "/metrics").2
    })
    .await
    .unwrap();
    let root = format!("server=\"{label}\",zone=\".\",view=\"\"");
    for (series, want) in [
        (
            format!("coredns_dns_requests_total{{{root},proto=\"udp\",family=\"1\",type=\"A\"}}"),
            "3",
        ),
        (
            format!("coredns_dns_requests_total{{{root},proto=\"tcp\",family=\"1\",type=\"A\"}}"),
            "1",
        ),
        (
            format!("coredns_dns_responses_total{{{root},rcode=\"NXDOMAIN\",plugin=\"fast\"}}"),
            "3",
        ),
        (
            format!("coredns_dns_responses_total{{{root},rcode=\"NOERROR\",plugin=\"fast\"}}"),
            "1",
        ),
        (
            format!("coredns_dns_request_duration_seconds_count{{{root}}}"),
            "4",
        ),
        (
            format!("coredns_dns_response_size_bytes_count{{{root},proto=\"udp\"}}"),
            "3",
        ),
    ] {
        assert_eq!(sample(&body, &series), want, "{series}\n{body}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_metrics_is_served_on_the_address() {
    let (server, _dns, _label, http) =
        start(".:0 {\n    bind 127.0.0.1\n    prometheus 127.0.0.1:0\n    whoami\n}\n").await;
    let (status, _, _) = tokio::task::spawn_blocking(move || get(http, "/health"))
        .await
        .unwrap();
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
    server.stop().await;
}

/// Two scrapes on one kept-alive connection, the first asking for OpenMetrics as Prometheus
/// does: both get the classic format (CoreDNS's handler does not enable OpenMetrics); a HEAD
/// gets the headers only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_accept_gets_the_classic_format_on_one_connection() {
    let (server, _dns, _label, http) =
        start(".:0 {\n    bind 127.0.0.1\n    prometheus 127.0.0.1:0\n    whoami\n}\n").await;
    tokio::task::spawn_blocking(move || {
        let c = TcpStream::connect(http).unwrap();
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut w = c.try_clone().unwrap();
        let mut r = std::io::BufReader::new(c);
        let mut answer = |head_only: bool| -> (String, String, String) {
            use std::io::BufRead;
            let mut head = String::new();
            loop {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                if l == "\r\n" {
                    break;
                }
                head.push_str(&l);
            }
            let field = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    })
                    .unwrap_or_default()
            };
            let len: usize = field("content-length").parse().unwrap();
            let mut body = vec![0; if head_only { 0 } else { len }];
            r.read_exact(&mut body).unwrap();
            (
                head.lines().next().unwrap_or_default().to_string(),
                field("content-type"),
                String::from_utf8(body).unwrap(),
            )
        };
        for (accept, method) in [
            (
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
                "GET",
            ),
            ("text/plain", "GET"),
            ("*/*", "HEAD"),
        ] {
            write!(
                w,
                "{method} /metrics HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n\r\n"
            )
            .unwrap();
            let (status, ct, body) = answer(method == "HEAD");
            assert_eq!(status, "HTTP/1.1 200 OK", "{accept}");
            assert_eq!(
                ct, "text/plain; version=0.0.4; charset=utf-8; escaping=underscores",
                "{accept}"
            );
            if method == "GET" {
                assert!(!body.contains("# EOF"), "{body}");
                assert!(
                    body.contains("# TYPE process_cpu_seconds_total counter\n"),
                    "{body}"
                );
            }
        }
    })
    .await
    .unwrap();
    server.stop().await;
}

#[test]
fn the_exporter_encodes_the_process_registry() {
    let shared = Shared::default();
    testkit::setup_with(
        &ferrodns_plugin_prometheus::DESCRIPTOR,
        "prometheus 127.0.0.1:9253",
        &shared,
    )
    .unwrap();
    let routes = shared.http.routes();
    let page = routes["127.0.0.1:9253"]["/metrics"].handle();
    assert_eq!(page.status, 200);
    assert_eq!(
        page.content_type,
        "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
    );
    let body = String::from_utf8(page.body).unwrap();
    assert!(body.contains("# TYPE coredns_build_info gauge"), "{body}");
    // Go's process collector, as CoreDNS's registry has it.
    for (family, kind) in [
        ("process_cpu_seconds_total", "counter"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_virtual_memory_max_bytes", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        assert!(
            body.contains(&format!("# TYPE {family} {kind}\n")),
            "{family}: {body}"
        );
        let v: f64 = sample(&body, family).parse().unwrap();
        assert!(v >= 0.0, "{family} {v}");
    }
    assert!(
        body.contains(
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
        ),
        "{body}"
    );
    let fds: f64 = sample(&body, "process_open_fds").parse().unwrap();
    assert!(fds >= 3.0, "{fds}");
}

/// An IPv4 client on the dual-stack socket of an unbound block (`::ffff:127.0.0.1`) counts as
/// family 1, as in CoreDNS (Go gives such a client as IPv4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_clients_of_a_dual_stack_socket_are_family_1() {
    let (server, dns, _label, http) =
        start(".:0 {\n    prometheus 127.0.0.1:0\n    whoami\n}\n").await;
    let v4 = SocketAddr::from(([127, 0, 0, 1], dns.port()));
    let body = tokio::task::spawn_blocking(move || {
        udp_exchange(v4, &query("a.example.", RecordType::A, 1));
        tcp_exchange(v4, &query("a.example.", RecordType::A, 2));
        get(http, "/metrics").2
    })
    .await
    .unwrap();
    let requests: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("coredns_dns_requests_total{"))
        .collect();
    assert_eq!(requests.len(), 2, "{body}");
    for l in requests {
        assert!(l.contains("family=\"1\""), "{l}");
    }
    server.stop().await;
}

//! The self-check against real sockets, and the lameduck wait on final shutdown.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use ferrodns_plugin::{Metrics, Shared};
use ferrodns_plugin_health::{DESCRIPTOR, HealthMetrics, Probe, check_once};
use ferrodns_plugin_test::{self as testkit, capture};

/// A one-shot HTTP server on loopback: answers one request with `200 OK` and returns the
/// request head it read.
fn serve_once() -> (u16, std::thread::JoinHandle<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 512];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut b).unwrap();
            assert!(n > 0, "client closed before sending its request");
            head.extend_from_slice(&b[..n]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK")
            .unwrap();
        String::from_utf8(head).unwrap()
    });
    (port, t)
}

fn sample(text: &str, name: &str) -> String {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no sample {name} in {text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_successful_check_is_observed_and_not_counted_as_failure() {
    let (port, server) = serve_once();
    let metrics = Metrics::new();
    let hm = HealthMetrics::new(&metrics);
    let probe = Probe::new(&format!("127.0.0.1:{port}"));
    assert_eq!(probe.url, format!("http://127.0.0.1:{port}/health"));
    let (captured, _g) = capture::capture();
    check_once(&probe, &hm).await;
    let head = server.join().unwrap();
    assert!(head.starts_with("GET /health HTTP/1.1\r\n"), "{head}");
    let text = metrics.encode();
    assert_eq!(
        sample(&text, "coredns_health_request_duration_seconds_count"),
        "1"
    );
    assert_eq!(sample(&text, "coredns_health_request_failures_total"), "0");
    assert!(captured.lines().is_empty(), "{:?}", captured.lines());
}

#[tokio::test]
async fn a_failed_check_is_counted_and_logged_as_coredns_does() {
    // A port with nothing listening: bind, note the port, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = Metrics::new();
    let hm = HealthMetrics::new(&metrics);
    let addr = format!("127.0.0.1:{port}");
    let probe = Probe::new(&addr);
    let (captured, _g) = capture::capture();
    check_once(&probe, &hm).await;
    let text = metrics.encode();
    assert_eq!(sample(&text, "coredns_health_request_failures_total"), "1");
    assert_eq!(
        sample(&text, "coredns_health_request_duration_seconds_count"),
        "1"
    );
    assert_eq!(
        captured.lines(),
        vec![format!(
            "[WARN] plugin/health: Local health request to \"http://{addr}/health\" failed: \
             Get \"http://{addr}/health\": dial tcp {addr}: connect: connection refused"
        )]
    );
}

#[tokio::test]
async fn an_address_without_host_is_checked_on_the_local_system() {
    let (port, server) = serve_once();
    let probe = Probe::new(&format!(":{port}"));
    assert_eq!(probe.url, format!("http://:{port}/health"));
    probe.fetch().await.unwrap();
    let head = server.join().unwrap();
    assert!(
        head.contains(&format!("Host: localhost:{port}\r\n")),
        "{head}"
    );
}

#[tokio::test(start_paused = true)]
async fn final_shutdown_waits_the_lameduck_and_says_so() {
    let shared = Shared::default();
    testkit::setup_with(
        &DESCRIPTOR,
        "health 127.0.0.1:1 {\n lameduck 2s\n}",
        &shared,
    )
    .unwrap();
    let hooks = shared.lifecycles();
    assert_eq!(hooks.len(), 1);
    let (captured, _g) = capture::capture();
    let start = tokio::time::Instant::now();
    hooks[0].on_final_shutdown().await;
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        captured.lines(),
        vec!["[INFO] plugin/health: Going into lameduck mode for 2s".to_string()]
    );
}

#[tokio::test(start_paused = true)]
async fn without_lameduck_final_shutdown_returns_at_once_and_quietly() {
    let shared = Shared::default();
    testkit::setup_with(&DESCRIPTOR, "health 127.0.0.1:1", &shared).unwrap();
    let (captured, _g) = capture::capture();
    let start = tokio::time::Instant::now();
    shared.lifecycles()[0].on_final_shutdown().await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(captured.lines().is_empty(), "{:?}", captured.lines());
}

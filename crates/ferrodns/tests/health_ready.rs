//! `health` and `ready` in the real binary: their pages on real sockets, the self-check's
//! metrics, and a SIGTERM with `lameduck`: `/health` and DNS keep answering for the lameduck
//! period, `/ready` says it is shutting down, and the process exits 0 afterwards.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// One HTTP request; (status, body).
fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn get(port: u16, path: &str) -> (u16, String) {
    http(port, "GET", path)
}

fn rcode(port: u16) -> ResponseCode {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    udp(addr, &query("whoami.example.", RecordType::A))
        .metadata
        .response_code
}

#[test]
fn health_and_ready_pages() {
    let (dns, h, r) = (free_port(), free_port(), free_port());
    let srv = Running::start(
        &format!(
            ".:{dns} {{\n    health 127.0.0.1:{h}\n    ready 127.0.0.1:{r}\n    whoami\n}}\n\
             example.org:{dns} {{\n    ready 127.0.0.1:{r}\n    whoami\n}}\n"
        ),
        &[],
    );
    assert_eq!(get(h, "/health"), (200, "OK".into()));
    for m in ["POST", "PUT", "DELETE"] {
        assert_eq!(http(h, m, "/health"), (200, "OK".into()), "{m}");
    }
    assert_eq!(get(h, "/health?x=1"), (200, "OK".into()));
    assert_eq!(get(h, "/heal%74h"), (200, "OK".into()));
    assert_eq!(get(h, "/health/"), (404, "404 page not found\n".into()));
    assert_eq!(get(h, "/"), (404, "404 page not found\n".into()));
    assert_eq!(get(h, "/ready"), (404, "404 page not found\n".into()));
    assert_eq!(
        get(h, "//health"),
        (
            307,
            "<a href=\"/health\">Temporary Redirect</a>.\n\n".into()
        )
    );
    // No plugin of these blocks reports readiness: ready at once. Two blocks, one listener.
    assert_eq!(get(r, "/ready"), (200, "OK".into()));
    assert_eq!(get(r, "/health"), (404, "404 page not found\n".into()));
    assert_eq!(rcode(dns), ResponseCode::NoError);
    drop(srv);
}

#[test]
fn self_check_feeds_the_health_families() {
    let (dns, h, m) = (free_port(), free_port(), free_port());
    let _srv = Running::start(
        &format!(
            ".:{dns} {{\n    health 127.0.0.1:{h}\n    prometheus 127.0.0.1:{m}\n    whoami\n}}\n"
        ),
        &[],
    );
    let families = get(m, "/metrics").1;
    assert!(
        families.contains("# TYPE coredns_health_request_duration_seconds histogram"),
        "{families}"
    );
    assert!(
        families.contains("coredns_health_request_failures_total 0"),
        "{families}"
    );
    // The check runs every second: wait (bounded) until one was observed.
    let deadline = Instant::now() + WAIT;
    loop {
        let text = get(m, "/metrics").1;
        let count = text
            .lines()
            .find_map(|l| l.strip_prefix("coredns_health_request_duration_seconds_count "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if count >= 1 {
            assert!(
                text.contains("coredns_health_request_failures_total 0"),
                "{text}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no self-check observed: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn lameduck_keeps_health_and_dns_answering_then_exits_0() {
    let (dns, h, r) = (free_port(), free_port(), free_port());
    let mut srv = Running::start(
        &format!(
            ".:{dns} {{\n    health 127.0.0.1:{h} {{\n        lameduck 2s\n    }}\n    \
             ready 127.0.0.1:{r}\n    whoami\n}}\n"
        ),
        &[],
    );
    assert_eq!(get(h, "/health"), (200, "OK".into()));
    assert_eq!(get(r, "/ready"), (200, "OK".into()));
    assert_eq!(rcode(dns), ResponseCode::NoError);

    let sent = Instant::now();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &srv.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    srv.expect_line("[INFO] SIGTERM: Shutting down servers then terminating");
    srv.expect_line("[INFO] plugin/health: Going into lameduck mode for 2s");

    // In lameduck: still healthy and still serving DNS; no longer ready.
    assert_eq!(get(h, "/health"), (200, "OK".into()));
    assert_eq!(rcode(dns), ResponseCode::NoError);
    assert_eq!(get(r, "/ready"), (503, "Shutting down".into()));
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "the checks above must run inside the lameduck period"
    );
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "exited during lameduck"
    );

    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = srv.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "still running after lameduck");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        sent.elapsed() >= Duration::from_secs(2),
        "exited before the lameduck ended: {:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_reload_moves_the_health_page_to_the_new_address() {
    let (dns, h1, h2) = (free_port(), free_port(), free_port());
    let corefile = |h: u16| format!(".:{dns} {{\n    health 127.0.0.1:{h}\n    whoami\n}}\n");
    let srv = Running::start(&corefile(h1), &[]);
    assert_eq!(get(h1, "/health"), (200, "OK".into()));
    std::fs::write(srv.dir.0.join("Corefile"), corefile(h2)).unwrap();
    let ok = std::process::Command::new("kill")
        .args(["-USR1", &srv.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    srv.expect_line("[INFO] Reloading complete");
    assert_eq!(get(h2, "/health"), (200, "OK".into()));
    assert!(
        TcpStream::connect(("127.0.0.1", h1)).is_err(),
        "the old address is closed"
    );
    assert_eq!(rcode(dns), ResponseCode::NoError);
}

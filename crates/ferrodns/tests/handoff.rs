//! Hand-off between two `ferrodns` processes: a new one started beside a running one takes its
//! sockets, its cache and its pidfile over and the old one exits; a predecessor that speaks
//! another protocol version, or serves other addresses, is left alone.

mod common;

use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// A rendezvous of this test's own, so that no other test's server is found there.
fn rendezvous(tag: &str) -> String {
    format!("@fdns-test-{tag}-{}", std::process::id())
}

fn corefile(port: u16, metrics: u16) -> String {
    format!(
        ".:{port} {{\n    bind 127.0.0.1\n    cache 300\n    template IN A example.org {{\n        answer \"{{{{ .Name }}}} 300 IN A 10.0.0.1\"\n    }}\n    prometheus 127.0.0.1:{metrics}\n}}\n"
    )
}

/// The sum of the samples whose line starts with `prefix`.
fn metric(metrics: u16, prefix: &str) -> f64 {
    let body = http_get(metrics, "/metrics");
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn answer_of(addr: std::net::SocketAddr, name: &str, over_tcp: bool) -> (ResponseCode, u32) {
    let q = query(name, RecordType::A);
    let r = if over_tcp {
        tcp(addr, &q)
    } else {
        udp(addr, &q)
    };
    let ttl = r.answers.first().map(|a| a.ttl).unwrap_or(0);
    (r.metadata.response_code, ttl)
}

#[test]
fn a_successor_takes_the_sockets_the_cache_and_the_pidfile() {
    let dir = TempDir::new("handoff");
    let (port, metrics) = (free_port(), free_port());
    let conf = dir.write("Corefile", &corefile(port, metrics));
    let pidfile = dir.0.join("pid");
    let at = rendezvous("takeover");
    let args = [
        "-conf",
        conf.to_str().unwrap(),
        "-pidfile",
        pidfile.to_str().unwrap(),
        "-handoff",
        &at,
    ];
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    let mut old = Proc::start(&args);
    old.expect(READY);
    assert_eq!(
        answer_of(addr, "a.example.org.", false).0,
        ResponseCode::NoError
    );
    assert_eq!(
        answer_of(addr, "b.example.org.", true).0,
        ResponseCode::NoError
    );

    let mut new = Proc::start(&args);
    let line = new.expect("handoff: taking over the sockets of process");
    assert!(
        line.contains(&format!("process {}", old.child.id())) && line.contains("(1 plugin states)"),
        "{line}"
    );
    new.expect("handoff: took over from process");
    assert_eq!(old.wait_exit(), 0);
    old.expect("took over; stopping");
    assert!(
        !old.seen.iter().any(|l| l.contains("SIGTERM")),
        "{:#?}",
        old.seen
    );
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        new.child.id().to_string(),
        "the pidfile is the successor's and stays"
    );

    // The cache came along: both names are hits in the new process, with their TTLs running.
    let (rcode, ttl) = answer_of(addr, "a.example.org.", false);
    assert_eq!(rcode, ResponseCode::NoError);
    assert!(ttl <= 300, "{ttl}");
    assert_eq!(
        answer_of(addr, "b.example.org.", true).0,
        ResponseCode::NoError
    );
    assert_eq!(metric(metrics, "coredns_cache_hits_total{"), 2.0);
    assert_eq!(metric(metrics, "coredns_cache_misses_total{"), 0.0);

    // And the successor hands over in its turn.
    let mut third = Proc::start(&args);
    third.expect("handoff: took over from process");
    assert_eq!(new.wait_exit(), 0);
    assert_eq!(
        answer_of(addr, "c.example.org.", false).0,
        ResponseCode::NoError
    );
}

#[test]
fn sigterm_waits_for_a_successor_then_hands_over() {
    let dir = TempDir::new("handoff-term");
    let (port, metrics) = (free_port(), free_port());
    let conf = dir.write("Corefile", &corefile(port, metrics));
    let at = rendezvous("term");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let base = ["-conf", conf.to_str().unwrap(), "-handoff", &at];

    let mut old = Proc::start(&[&base[..], &["-handoffwait", "30s"]].concat());
    old.expect(READY);
    old.signal(nix::sys::signal::Signal::SIGTERM);
    old.expect("SIGTERM: waiting up to 30s for a successor to hand off to");
    // Still serving while it waits.
    assert_eq!(
        answer_of(addr, "a.example.org.", false).0,
        ResponseCode::NoError
    );
    let started = Instant::now();
    let mut new = Proc::start(&base);
    new.expect("handoff: took over from process");
    assert_eq!(old.wait_exit(), 0);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        !old.seen
            .iter()
            .any(|l| l.contains("Shutting down servers then terminating")),
        "{:#?}",
        old.seen
    );
    assert_eq!(
        answer_of(addr, "a.example.org.", true).0,
        ResponseCode::NoError
    );
}

#[test]
fn sigterm_without_a_successor_stops_after_the_wait() {
    let dir = TempDir::new("handoff-nobody");
    let (port, metrics) = (free_port(), free_port());
    let conf = dir.write("Corefile", &corefile(port, metrics));
    let at = rendezvous("nobody");
    let mut old = Proc::start(&[
        "-conf",
        conf.to_str().unwrap(),
        "-handoff",
        &at,
        "-handoffwait",
        "1s",
    ]);
    old.expect(READY);
    let started = Instant::now();
    old.signal(nix::sys::signal::Signal::SIGTERM);
    old.expect("SIGTERM: waiting up to 1s for a successor");
    old.expect("SIGTERM: Shutting down servers then terminating");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(old.wait_exit(), 0);
}

#[test]
fn a_server_of_other_addresses_is_left_alone() {
    let dir = TempDir::new("handoff-unrelated");
    let at = rendezvous("unrelated");
    let (p1, m1, p2, m2) = (free_port(), free_port(), free_port(), free_port());
    let c1 = dir.write("one", &corefile(p1, m1));
    let c2 = dir.write("two", &corefile(p2, m2));
    let mut one = Proc::start(&["-conf", c1.to_str().unwrap(), "-handoff", &at]);
    one.expect(READY);
    let mut two = Proc::start(&["-conf", c2.to_str().unwrap(), "-handoff", &at]);
    two.expect(READY);
    assert!(one.child.try_wait().unwrap().is_none(), "{:#?}", one.seen);
    for p in [p1, p2] {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], p));
        assert_eq!(
            answer_of(addr, "a.example.org.", false).0,
            ResponseCode::NoError
        );
    }
    assert!(
        !two.seen.iter().any(|l| l.contains("handoff")),
        "{:#?}",
        two.seen
    );
}

/// A stand-in predecessor that speaks hand-off version 99: the new process says so and binds
/// beside it.
#[test]
fn another_protocol_version_falls_back_to_binding_beside() {
    let dir = TempDir::new("handoff-mismatch");
    let (port, metrics) = (free_port(), free_port());
    let conf = dir.write("Corefile", &corefile(port, metrics));
    let at = rendezvous("mismatch");
    let addr = UnixAddr::from_abstract_name(at.trim_start_matches('@').as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    let stand_in = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        // Its hello: a kind byte, a length, then the body.
        let mut head = [0u8; 5];
        conn.read_exact(&mut head).unwrap();
        assert_eq!(head[0], b'H');
        let mut body = vec![0u8; u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize];
        conn.read_exact(&mut body).unwrap();
        assert_eq!(&body[..4], b"FDHO");
        // Our answer: version 99, pid 4242.
        let mut reply = b"FDHO".to_vec();
        reply.extend_from_slice(&99u16.to_be_bytes());
        reply.extend_from_slice(&4242u32.to_be_bytes());
        let mut frame = vec![b'V'];
        frame.extend_from_slice(&(reply.len() as u32).to_be_bytes());
        frame.extend_from_slice(&reply);
        conn.write_all(&frame).unwrap();
    });
    let mut new = Proc::start(&["-conf", conf.to_str().unwrap(), "-handoff", &at]);
    let line = new.expect("speaks hand-off version 99");
    assert!(
        line.contains("process 4242") && line.contains("SO_REUSEPORT"),
        "{line}"
    );
    new.expect(READY);
    stand_in.join().unwrap();
    let sock = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(
        answer_of(sock, "a.example.org.", false).0,
        ResponseCode::NoError
    );
}

/// The successor may serve a changed Corefile: the listener both have is taken over, the new
/// one is bound, and the new configuration answers.
#[test]
fn a_successor_with_a_changed_corefile_takes_the_common_listener() {
    let dir = TempDir::new("handoff-changed");
    let (port, extra, m1, m2) = (free_port(), free_port(), free_port(), free_port());
    let old_conf = dir.write("old", &corefile(port, m1));
    let new_conf = dir.write(
        "new",
        &format!(
            ".:{port} .:{extra} {{\n    bind 127.0.0.1\n    template IN A example.org {{\n        answer \"{{{{ .Name }}}} 300 IN A 10.0.0.2\"\n    }}\n    prometheus 127.0.0.1:{m2}\n}}\n"
        ),
    );
    let at = rendezvous("changed");
    let mut old = Proc::start(&["-conf", old_conf.to_str().unwrap(), "-handoff", &at]);
    old.expect(READY);
    let mut new = Proc::start(&["-conf", new_conf.to_str().unwrap(), "-handoff", &at]);
    new.expect("handoff: took over from process");
    assert_eq!(old.wait_exit(), 0);
    for p in [port, extra] {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], p));
        let r = udp(addr, &query("fresh.example.org.", RecordType::A));
        let a = r.answers.first().map(|a| a.data.to_string());
        assert_eq!(a.as_deref(), Some("10.0.0.2"), "port {p}");
    }
}

//! Measures what one query in flight costs (the figure behind the budget's `QUERY_COST`): the
//! ferrodns binary forwards 1000 distinct names to an upstream that never answers, and its
//! resident set is read while they are all held (the task, its buffers, forward's exchange and
//! its socket), against a baseline taken after a warm-up. Run it with
//! `cargo test -p ferrodns --release --test query_cost -- --nocapture`.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{Running, free_port, query};
use ferrodns_plugin::budget::QUERY_COST;
use hickory_proto::rr::RecordType;

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn metric(addr: &str, name: &str) -> f64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn one_query_in_flight_costs_less_than_query_cost() {
    // The upstream: a bound socket nobody reads.
    let hole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let mport = free_port();
    let metrics = format!("127.0.0.1:{mport}");
    let corefile = format!(".:0 {{\n    prometheus {metrics}\n    forward . {hole_addr}\n}}\n");
    let server = Running::start(&corefile, &["-memory", "none"]);
    let pid = server.child.id();
    let to = server.addr();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_nonblocking(true).unwrap();
    let send = |from: u32, n: u32| {
        for i in from..from + n {
            let q = query(&format!("n{i}.example.org."), RecordType::A);
            let _ = client.send_to(&q.to_vec().unwrap(), to);
        }
    };
    // Warm up: threads, pools, the first sockets; wait until they are all given up.
    send(0, 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    std::thread::sleep(Duration::from_secs(1));
    while metric(&metrics, "ferrodns_budget_inflight") > 0.0 {
        assert!(Instant::now() < deadline, "warm-up queries still in flight");
        std::thread::sleep(Duration::from_millis(200));
    }
    let base = rss_kib(pid);
    // One client socket reaches one of the server's sockets (SO_REUSEPORT hashes by source),
    // which holds at most MAX_IN_FLIGHT (1024) queries.
    const N: u32 = 1000;
    send(1000, N);
    std::thread::sleep(Duration::from_millis(800));
    let held = metric(&metrics, "ferrodns_budget_inflight");
    let peak = rss_kib(pid);
    let per_query = (peak.saturating_sub(base) * 1024) as f64 / held;
    eprintln!(
        "{held} queries in flight: RSS {base} KiB -> {peak} KiB, {per_query:.0} B per query \
         (counted: {QUERY_COST})"
    );
    assert!(held > f64::from(N) * 0.9, "only {held} of {N} held");
    assert!(
        per_query < QUERY_COST as f64,
        "{per_query:.0} B per query is above QUERY_COST {QUERY_COST}"
    );
    drop(hole);
}

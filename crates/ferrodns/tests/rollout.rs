//! Ten restarts and a binary upgrade of `ferrodns` under a steady load lose no query.
//!
//! A load of 20,000 UDP queries per second and 200 pipelined TCP connections (5 q/s each) runs
//! against a cache in front of `template`, on loopback. The first process is started from a
//! copy of the binary in another file (the old version, as a package upgrade leaves it); the
//! upgrade and ten restarts follow, each a new process started beside the running one with the
//! same arguments. Every query must be answered, none later than 1 s, and the cache hit rate in
//! the second after each hand-off must be within 5 points of the second before it.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{Proc, READY, TempDir, WAIT, bin, free_port};
use ferrodns_loadgen::{LoadSpec, Report, background};

const RESTARTS: usize = 10;
const NAMES: usize = 8000;

/// Cache hits and misses so far (all types).
fn hits_and_misses(metrics: u16) -> (f64, f64) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", metrics)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    let sum = |prefix: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    (
        sum("coredns_cache_hits_total{"),
        sum("coredns_cache_misses_total{"),
    )
}

/// The hit rate (percent) over the next second.
fn hit_rate_over_a_second(metrics: u16) -> f64 {
    let (h0, m0) = hits_and_misses(metrics);
    std::thread::sleep(Duration::from_secs(1));
    let (h1, m1) = hits_and_misses(metrics);
    let (h, m) = (h1 - h0, m1 - m0);
    assert!(
        h + m > 1000.0,
        "too few queries in a second: {h} hits, {m} misses"
    );
    100.0 * h / (h + m)
}

#[test]
fn restarts_and_an_upgrade_under_load_lose_no_query() {
    let dir = TempDir::new("rollout");
    let (port, metrics) = (free_port(), free_port());
    let conf = dir.write(
        "Corefile",
        &format!(
            ".:{port} {{\n    bind 127.0.0.1\n    cache 3600 {{\n        success 20000\n    }}\n    template IN A load.test {{\n        answer \"{{{{ .Name }}}} 3600 IN A 10.1.2.3\"\n    }}\n    prometheus 127.0.0.1:{metrics}\n}}\n"
        ),
    );
    // The old version: the same build in another file, as an upgrade leaves the running one.
    let old_exe = dir.0.join("ferrodns-old");
    std::fs::copy(bin(), &old_exe).unwrap();
    let at = format!("@fdns-rollout-{}", std::process::id());
    let args = ["-conf", conf.to_str().unwrap(), "-handoff", &at];

    let mut current = Proc::start_exe(&old_exe, &args);
    current.expect(READY);

    let mut spec = LoadSpec::new(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    spec.udp_rate = 20_000.0;
    spec.tcp_connections = 200;
    spec.tcp_rate = 5.0;
    spec.names = LoadSpec::pattern(NAMES, "load.test.");
    let load = background::start(spec, 1, || Ok(()));
    // Warm: every name cached.
    let deadline = Instant::now() + Duration::from_secs(30);
    while hit_rate_over_a_second(metrics) < 99.0 {
        assert!(Instant::now() < deadline, "the cache never warmed up");
    }

    let mut rates = Vec::new();
    for round in 0..=RESTARTS {
        let before = hit_rate_over_a_second(metrics);
        let old_pid = current.child.id();
        let mut next = Proc::start(&args);
        next.expect(&format!(
            "handoff: taking over the sockets of process {old_pid}"
        ));
        next.expect("handoff: took over from process");
        assert_eq!(current.wait_exit(), 0, "round {round}");
        current = next;
        let after = hit_rate_over_a_second(metrics);
        eprintln!(
            "hand-off {round} ({}): hit rate {before:.1}% before, {after:.1}% after",
            if round == 0 { "upgrade" } else { "restart" }
        );
        rates.push((before, after));
    }

    let report = load.stop().expect("the load ran");
    eprintln!("load: {report}");
    check(&report);
    for (i, (before, after)) in rates.iter().enumerate() {
        assert!(
            (before - after).abs() <= 5.0,
            "hand-off {i}: {before:.1}% -> {after:.1}%"
        );
    }
}

/// Every query answered, NOERROR, none slower than 1 s, over both transports.
fn check(r: &Report) {
    assert!(r.total.sent > 200_000, "{r}");
    assert_eq!(r.total.lost, 0, "{r}");
    assert_eq!(r.total.slow, 0, "{r}");
    assert_eq!(r.total.answered, r.total.sent, "{r}");
    assert_eq!(r.total.rcodes.noerror, r.total.sent, "{r}");
    assert!(r.tcp.answered > 10_000, "{r}");
}

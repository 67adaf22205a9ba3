//! `cargo xtask reliability`: the fault tests, then a soak, and `docs/reliability.md`.
//!
//! The soak runs the release `ferrodns` (cache in front of forward) against an upstream of our
//! own on loopback that flaps: each cycle it is healthy, then sick (silent, or answering
//! SERVFAIL to everything, in turn), then healthy again. While it is healthy, `ferrodns-load`
//! offers cache hits and misses over UDP and misses over TCP, a sender adds malformed
//! datagrams, and the Corefile is changed and reloaded (SIGUSR1) mid-way; while it is sick,
//! the hits go on (they must all be answered from the cache) and misses fail as they may.
//! RSS is sampled every second. The run fails on a lost or failed answer while the upstream
//! is healthy, a lost hit while it is sick, a crash, a failed reload, or RSS that grows.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::procs::{Measure, Proc, free_port, json_num, stdout_of, wait_dns};

const USAGE: &str = "\
usage: cargo xtask reliability [--duration DUR] [--rate Q] [--out FILE] [--no-tests]

  --duration DUR  soak length, whole cycles of at least 30 s (30m; 90s, 2m, 1h)
  --rate Q        queries per second offered while the upstream is healthy, all workloads
                  together (40000: about half the rate ferrodns served flat out in
                  BENCHMARKS.md, where the load generator saturated first)
  --out FILE      the report (docs/reliability.md; `-` for none)
  --no-tests      skip the fault test suites (the soak alone, as CI runs it)
";

/// The upstream's state.
const HEALTHY: u8 = 0;
const SILENT: u8 = 1;
const SERVFAIL: u8 = 2;

struct Opts {
    duration: Duration,
    rate: f64,
    out: Option<PathBuf>,
    tests: bool,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        duration: Duration::from_secs(30 * 60),
        rate: 40_000.0,
        out: Some(super::root().join("docs/reliability.md")),
        tests: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--no-tests" => o.tests = false,
            "--duration" => o.duration = duration(it.next().context("--duration DUR")?)?,
            "--rate" => o.rate = it.next().context("--rate Q")?.parse()?,
            "--out" => {
                let v = it.next().context("--out FILE")?;
                o.out = (v != "-").then(|| PathBuf::from(v));
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if o.duration < Duration::from_secs(30) || o.rate.is_nan() || o.rate < 100.0 {
        bail!("--duration must be at least 30s and --rate at least 100\n{USAGE}");
    }
    Ok(o)
}

fn duration(s: &str) -> Result<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let v: f64 = num.parse().with_context(|| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => bail!("bad duration unit in {s:?}"),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// One fault test suite: what it injects, and the cargo test that runs it.
const SUITES: &[(&str, &str, &[&str])] = &[
    (
        "sick and hostile upstreams (silent, slow, SERVFAIL storm, TCP reset mid-reply, cut and \
         oversized UDP replies, garbage, wrong ID, wrong question, forged answers from other \
         ports and addresses, refused port)",
        "ferrodns-plugin-forward",
        &["--test", "sick"],
    ),
    (
        "hostile clients (malformed headers, pointer loops, bad EDNS, 3,000 random datagrams, \
         a flood of malformed EDNS options against the log, 600 idle and slowloris TCP clients)",
        "ferrodns",
        &["--test", "hostile"],
    ),
    (
        "the fuzz corpus replayed through every fuzz target",
        "ferrodns-fuzz",
        &["--test", "replay"],
    ),
];

/// Run the task.
pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let root = super::root();
    let cargo = crate::cargo();
    let mut suites = Vec::new();
    if o.tests {
        for (what, package, test) in SUITES {
            println!("==> fault tests: {package} {}", test.join(" "));
            let out = Command::new(&cargo)
                .args(["test", "--release", "-p", package])
                .args(*test)
                .current_dir(&root)
                .output()
                .context("running cargo test")?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if !out.status.success() {
                bail!(
                    "{package} {} failed:\n{text}{}",
                    test.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let passed = text
                .lines()
                .filter_map(|l| l.strip_prefix("test result: ok. "))
                .filter_map(|l| l.split(' ').next()?.parse::<u64>().ok())
                .sum::<u64>();
            suites.push((
                what.to_string(),
                format!("{package} {}", test.join(" ")),
                passed,
            ));
        }
    }
    println!("==> building the release binaries");
    stdout_of(
        Command::new(&cargo)
            .args(["build", "--release", "-q", "--workspace"])
            .current_dir(&root),
        "cargo build --release",
    )?;
    let soak = soak(&root, &o)?;
    let report = render(&o, &suites, &soak);
    if let Some(out) = &o.out {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(out, &report)?;
        println!("==> wrote {}", out.display());
    } else {
        println!("{report}");
    }
    soak.verdict()
}

/// What `ferrodns-load` counted in one phase, for one workload.
#[derive(Default, Clone, Copy)]
struct Tally {
    sent: u64,
    answered: u64,
    lost: u64,
    /// Answered with another rcode than NOERROR.
    failed: u64,
}

impl Tally {
    fn add(&mut self, json: &str) -> Result<()> {
        let n = |k: &str| json_num(json, k).map(|v| v as u64);
        self.sent += n("sent")?;
        self.answered += n("answered")?;
        self.lost += n("lost")?;
        self.failed += n("answered")? - n("NOERROR")?;
        Ok(())
    }
}

#[derive(Default)]
struct Soak {
    cycles: u64,
    elapsed: Duration,
    rate: f64,
    /// Per workload while healthy: hits, misses, TCP misses.
    healthy: [Tally; 3],
    /// While sick: hits, misses.
    sick: [Tally; 2],
    silent_phases: u64,
    servfail_phases: u64,
    reloads: u64,
    malformed: u64,
    /// (seconds since start, RSS KiB), one a second.
    rss: Vec<(f64, u64)>,
    peak_rss_kib: u64,
    crashed: Option<String>,
    upstream_queries: u64,
    /// Most UDP queries waiting in the sockets' backlogs at once, sampled once a second.
    peak_backlog: f64,
    /// At the end: UDP queries refused past a socket's backlog, and past the memory budget.
    overload_refused: f64,
    budget_refused: f64,
}

impl Soak {
    /// RSS flat: the highest sample of the last quarter at most 10 % + 2 MiB over the highest
    /// of the first quarter after the first cycle (the cache fills during the first one).
    /// `None` when fewer than 8 samples come after the first cycle (a one-cycle run), which is
    /// too short to tell.
    fn rss_flat(&self) -> Option<(u64, u64, bool)> {
        let warm = self
            .rss
            .iter()
            .filter(|(t, _)| *t >= self.elapsed.as_secs_f64() / self.cycles.max(1) as f64)
            .collect::<Vec<_>>();
        if warm.len() < 8 {
            return None;
        }
        let q = (warm.len() / 4).max(1);
        let early = warm.iter().take(q).map(|(_, k)| *k).max().unwrap_or(0);
        let late = warm
            .iter()
            .rev()
            .take(q)
            .map(|(_, k)| *k)
            .max()
            .unwrap_or(0);
        Some((early, late, late <= early + early / 10 + 2048))
    }

    fn verdict(&self) -> Result<()> {
        let mut wrong = Vec::new();
        if let Some(c) = &self.crashed {
            wrong.push(format!("ferrodns crashed: {c}"));
        }
        for (name, t) in ["hits", "misses", "TCP misses"].iter().zip(&self.healthy) {
            if t.lost > 0 || t.failed > 0 || t.sent == 0 {
                wrong.push(format!(
                    "{name} while the upstream was healthy: {} sent, {} lost, {} failed",
                    t.sent, t.lost, t.failed
                ));
            }
        }
        if self.sick[0].lost > 0 || self.sick[0].failed > 0 {
            wrong.push(format!(
                "cache hits while the upstream was sick: {} lost, {} failed",
                self.sick[0].lost, self.sick[0].failed
            ));
        }
        if self.reloads < self.cycles {
            wrong.push(format!(
                "{} reloads completed of {}",
                self.reloads, self.cycles
            ));
        }
        if let Some((early, late, false)) = self.rss_flat() {
            wrong.push(format!("RSS grew from {early} KiB to {late} KiB"));
        }
        if wrong.is_empty() {
            println!("==> reliability: all checks passed");
            Ok(())
        } else {
            bail!("reliability checks failed:\n- {}", wrong.join("\n- "))
        }
    }
}

/// The upstream on loopback: A records for any name (TTL 3600 under `hit.test.`, 0 elsewhere),
/// over UDP and TCP on one port, with a switchable state.
struct Upstream {
    addr: SocketAddr,
    state: Arc<AtomicU8>,
    queries: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The reply to `q` in state `state`, or none.
fn upstream_reply(q: &[u8], state: u8) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 || state == SILENT {
        return None;
    }
    // The question ends after its name and 4 bytes.
    let mut pos = 12;
    while pos < q.len() && q[pos] != 0 {
        pos += usize::from(q[pos]) + 1;
    }
    let end = pos + 5;
    if end > q.len() {
        return None;
    }
    let mut r = q[..end].to_vec();
    r[2] = 0x80 | (q[2] & 0x01);
    r[3] = 0x80;
    r[6..12].fill(0);
    r[5] = 1;
    if state == SERVFAIL {
        r[3] |= 2;
        return Some(r);
    }
    let ttl: u32 = if contains_label(&q[12..pos + 1], b"hit") {
        3600
    } else {
        0
    };
    r[7] = 1;
    r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    r.extend_from_slice(&ttl.to_be_bytes());
    r.extend_from_slice(&[0, 4, 192, 0, 2, 1]);
    Some(r)
}

fn contains_label(name: &[u8], label: &[u8]) -> bool {
    let mut pos = 0;
    while pos < name.len() && name[pos] != 0 {
        let len = usize::from(name[pos]);
        if name.get(pos + 1..pos + 1 + len) == Some(label) {
            return true;
        }
        pos += len + 1;
    }
    false
}

impl Upstream {
    fn start() -> Result<Upstream> {
        let port = free_port()?;
        let udp = UdpSocket::bind(("127.0.0.1", port))?;
        // The default receive buffer (about 200 KiB) overflows when this thread loses the CPU
        // for a few tens of milliseconds at the soak's rates, and forward then waits out its
        // 2-s read timeout for every dropped query: a healthy upstream must not drop. 4 MiB,
        // as the server's and the load tool's sockets have.
        let udp = {
            let s = socket2::Socket::from(udp);
            s.set_recv_buffer_size(4 << 20)?;
            UdpSocket::from(s)
        };
        let tcp = TcpListener::bind(("127.0.0.1", port))?;
        udp.set_read_timeout(Some(Duration::from_millis(200)))?;
        tcp.set_nonblocking(true)?;
        let state = Arc::new(AtomicU8::new(HEALTHY));
        let queries = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, n, st) = (state.clone(), queries.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !st.load(Ordering::SeqCst) {
                if let Ok((len, from)) = udp.recv_from(&mut buf) {
                    n.fetch_add(1, Ordering::Relaxed);
                    if let Some(r) = upstream_reply(&buf[..len], s.load(Ordering::SeqCst)) {
                        let _ = udp.send_to(&r, from);
                    }
                }
            }
        });
        let (s, n, st) = (state.clone(), queries.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match tcp.accept() {
                    Ok((conn, _)) => {
                        let (s, n, st) = (s.clone(), n.clone(), st.clone());
                        std::thread::spawn(move || serve_tcp(conn, &s, &n, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Upstream {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            state,
            queries,
            stop,
        })
    }
}

fn serve_tcp(mut conn: TcpStream, state: &AtomicU8, n: &AtomicU64, stop: &AtomicBool) {
    use std::io::{Read, Write};
    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
    let mut len = [0u8; 2];
    while !stop.load(Ordering::SeqCst) {
        match conn.read_exact(&mut len) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return,
        }
        let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if conn.read_exact(&mut q).is_err() {
            return;
        }
        n.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = upstream_reply(&q, state.load(Ordering::SeqCst)) {
            let mut frame = (r.len() as u16).to_be_bytes().to_vec();
            frame.extend_from_slice(&r);
            if conn.write_all(&frame).is_err() {
                return;
            }
        }
    }
}

fn corefile(dns: u16, metrics: u16, upstream: SocketAddr, variant: u64) -> String {
    // Misses come with TTL 0 and a MINTTL of 0 keeps them out of the cache, so that they never
    // evict the hits (a full cache evicts at random, as CoreDNS's). The reload changes the
    // denial capacity each time: a real change, same answers.
    format!(
        ".:{dns} {{\n    bind 127.0.0.1\n    errors {{\n        consolidate 5s \".*\"\n    }}\n    \
         prometheus 127.0.0.1:{metrics}\n    cache 3600 {{\n        success 20000 3600 0\n        \
         denial {} 5\n    }}\n    \
         forward . {upstream} {{\n        max_fails 3\n        health_check 0.5s\n    }}\n}}\n",
        9000 + variant % 2
    )
}

/// `ferrodns-load` for `secs` with `args`; its JSON report.
fn load(tool: &Path, target: SocketAddr, secs: f64, args: &[String]) -> Result<String> {
    stdout_of(
        Command::new(tool)
            .args(["--target", &target.to_string()])
            .args(["--duration", &format!("{}ms", (secs * 1000.0) as u64)])
            .args(["--quiet", "--ignore-stdin", "--timeout", "2s"])
            .args(args),
        "ferrodns-load",
    )
}

fn soak(root: &Path, o: &Opts) -> Result<Soak> {
    let rel = root.join("target/release");
    let dir = root.join("target/reliability");
    std::fs::create_dir_all(&dir)?;
    let upstream = Upstream::start()?;
    let (dns, metrics) = (free_port()?, free_port()?);
    let conf = dir.join("Corefile");
    std::fs::write(&conf, corefile(dns, metrics, upstream.addr, 0))?;
    let mut cmd = Command::new(rel.join("ferrodns"));
    cmd.args(["-conf", &conf.display().to_string()]);
    let log = dir.join("ferrodns.log");
    let mut server = Proc::spawn("ferrodns", cmd, &log)?;
    let target = SocketAddr::from(([127, 0, 0, 1], dns));
    wait_dns(target, &mut server, Duration::from_secs(10))?;

    // A cycle: healthy (reload in the middle), sick, with the sick part a quarter of it.
    let cycle = if o.duration >= Duration::from_secs(600) {
        60.0
    } else {
        30.0
    };
    let cycles = (o.duration.as_secs_f64() / cycle).floor().max(1.0) as u64;
    let (healthy_s, sick_s) = (cycle * 0.75 - 1.0, cycle * 0.25 - 1.0);
    // The rate split: 70 % hits, 20 % misses over UDP, 10 % misses over TCP (8 connections).
    let (hit_rate, miss_rate, tcp_rate) = (o.rate * 0.7, o.rate * 0.2, o.rate * 0.1 / 8.0);
    let tool = rel.join("ferrodns-load");
    let hits = |rate: f64| -> Vec<String> {
        [
            "--udp-rate",
            &rate.to_string(),
            "--names",
            "1000",
            "--zone",
            "hit.test.",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let misses = |rate: f64, zone: &str| -> Vec<String> {
        [
            "--udp-rate",
            &rate.to_string(),
            "--names",
            "1000000",
            "--zone",
            zone,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let tcp = || -> Vec<String> {
        [
            "--udp-rate",
            "0",
            "--tcp-conns",
            "8",
            "--tcp-rate",
            &tcp_rate.to_string(),
            "--names",
            "1000000",
            "--zone",
            "tcp.test.",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    let mut s = Soak {
        cycles,
        rate: o.rate,
        ..Soak::default()
    };
    let start = Instant::now();
    // RSS, once a second, until the soak ends.
    let sampling = Arc::new(AtomicBool::new(true));
    let rss: Arc<std::sync::Mutex<Vec<(f64, u64)>>> = Arc::default();
    let peak_backlog = Arc::new(std::sync::Mutex::new(0.0f64));
    let sampler = {
        let (on, rss, pid) = (sampling.clone(), rss.clone(), server.pid());
        let peak = peak_backlog.clone();
        std::thread::spawn(move || {
            while on.load(Ordering::SeqCst) {
                if let Some(n) = scrape(metrics, "ferrodns_udp_backlog_queries")
                    && let Ok(mut p) = peak.lock()
                {
                    *p = p.max(n);
                }
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kib) = status
                        .lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    && let Ok(mut v) = rss.lock()
                {
                    v.push((start.elapsed().as_secs_f64(), kib));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    // Every load's own report, one JSON line each, for what the summary leaves out.
    let mut phases = String::new();
    for c in 0..cycles {
        server.alive()?;
        println!(
            "==> soak cycle {}/{cycles}: healthy {healthy_s:.0}s (reload midway), then sick {sick_s:.0}s; {:.0}s elapsed",
            c + 1,
            start.elapsed().as_secs_f64()
        );
        upstream.state.store(HEALTHY, Ordering::SeqCst);
        let results = std::thread::scope(|sc| -> Result<Vec<String>> {
            let h = sc.spawn(|| load(&tool, target, healthy_s, &hits(hit_rate)));
            let m = sc.spawn(|| load(&tool, target, healthy_s, &misses(miss_rate, "miss.test.")));
            let t = sc.spawn(|| load(&tool, target, healthy_s, &tcp()));
            let g = sc.spawn(|| malformed(target, healthy_s, o.rate * 0.02));
            // Midway, a changed Corefile and SIGUSR1.
            std::thread::sleep(Duration::from_secs_f64(healthy_s / 2.0));
            std::fs::write(&conf, corefile(dns, metrics, upstream.addr, c + 1))?;
            stdout_of(
                Command::new("kill").args(["-USR1", &server.pid().to_string()]),
                "kill -USR1",
            )?;
            let mut out = Vec::new();
            for j in [h, m, t] {
                out.push(
                    j.join()
                        .map_err(|_| anyhow::anyhow!("a load thread panicked"))??,
                );
            }
            s.malformed += g
                .join()
                .map_err(|_| anyhow::anyhow!("the malformed sender panicked"))??;
            Ok(out)
        })?;
        for (i, r) in results.iter().enumerate() {
            phases.push_str(&format!(
                "{{\"cycle\":{},\"phase\":\"healthy\",\"workload\":{i},\"load\":{}}}\n",
                c + 1,
                r.trim()
            ));
            s.healthy[i].add(r)?;
            progress("healthy", ["hits", "misses", "TCP misses"][i], r);
        }
        let m = |name: &str, filter: &str| scrape_where(metrics, name, filter).unwrap_or(-1.0);
        let exchanges = "coredns_proxy_request_duration_seconds";
        println!(
            "    so far: refused past a socket's backlog {}, past the memory budget {}; \
             upstream exchanges {} (over 256 ms {}), new upstream connections {} UDP {} TCP, \
             failed health checks {}",
            m("ferrodns_udp_overload_refused_total", ""),
            m("ferrodns_budget_refused_total", ""),
            m(&format!("{exchanges}_count"), ""),
            m(&format!("{exchanges}_count"), "") - m(&format!("{exchanges}_bucket"), "le=\"0.256"),
            m("coredns_proxy_conn_cache_misses_total", "proto=\"udp"),
            m("coredns_proxy_conn_cache_misses_total", "proto=\"tcp"),
            m("coredns_proxy_healthcheck_failures_total", ""),
        );
        // Sick: silent and SERVFAIL in turn; a second's gap around each switch so that no
        // query of one phase is answered in the other.
        std::thread::sleep(Duration::from_millis(500));
        let sick = if c % 2 == 0 { SILENT } else { SERVFAIL };
        if sick == SILENT {
            s.silent_phases += 1;
        } else {
            s.servfail_phases += 1;
        }
        upstream.state.store(sick, Ordering::SeqCst);
        let results = std::thread::scope(|sc| -> Result<Vec<String>> {
            let h = sc.spawn(|| load(&tool, target, sick_s, &hits(hit_rate)));
            let m = sc.spawn(|| {
                load(
                    &tool,
                    target,
                    sick_s,
                    &misses(miss_rate / 4.0, "sick.test."),
                )
            });
            let mut out = Vec::new();
            for j in [h, m] {
                out.push(
                    j.join()
                        .map_err(|_| anyhow::anyhow!("a load thread panicked"))??,
                );
            }
            Ok(out)
        })?;
        for (i, r) in results.iter().enumerate() {
            phases.push_str(&format!(
                "{{\"cycle\":{},\"phase\":\"sick\",\"workload\":{i},\"load\":{}}}\n",
                c + 1,
                r.trim()
            ));
            s.sick[i].add(r)?;
            progress(
                if sick == SILENT { "silent" } else { "SERVFAIL" },
                ["hits", "misses"][i],
                r,
            );
        }
        upstream.state.store(HEALTHY, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(500));
    }
    std::fs::write(dir.join("phases.jsonl"), &phases)?;
    s.elapsed = start.elapsed();
    sampling.store(false, Ordering::SeqCst);
    let _ = sampler.join();
    s.rss = rss.lock().map(|v| v.clone()).unwrap_or_default();
    s.upstream_queries = upstream.queries.load(Ordering::Relaxed);
    s.peak_backlog = peak_backlog.lock().map(|p| *p).unwrap_or(0.0);
    s.overload_refused = scrape(metrics, "ferrodns_udp_overload_refused_total").unwrap_or(-1.0);
    s.budget_refused = scrape(metrics, "ferrodns_budget_refused_total").unwrap_or(-1.0);
    match server.alive() {
        Ok(()) => s.peak_rss_kib = server.rss_kib().map(|(_, hwm)| hwm).unwrap_or(0),
        Err(e) => s.crashed = Some(e.to_string()),
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    s.reloads = text.matches("Reloading complete").count() as u64;
    for bad in ["panic", "[FATAL]", "Recovered from panic"] {
        if text.contains(bad) && s.crashed.is_none() {
            s.crashed = Some(format!("its log says {bad:?}; see {}", log.display()));
        }
    }
    Ok(s)
}

/// One sample of the server's metrics endpoint on loopback `port`: the value of `name`
/// (summed over its label sets), or none when it cannot be read.
fn scrape(port: u16, name: &str) -> Option<f64> {
    scrape_where(port, name, "")
}

/// As [`scrape`], over the label sets whose line contains `filter`.
fn scrape_where(port: u16, name: &str, filter: &str) -> Option<f64> {
    use std::io::{Read as _, Write as _};
    let mut c = std::net::TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .ok()?;
    c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    c.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    c.read_to_string(&mut text).ok()?;
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) || !rest.contains(filter) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

/// One line per workload and phase: its counts and rcodes.
fn progress(phase: &str, workload: &str, json: &str) {
    let n = |k: &str| json_num(json, k).unwrap_or(-1.0) as i64;
    println!(
        "    {phase:>8} {workload:<10} sent {} answered {} lost {} NOERROR {} SERVFAIL {} REFUSED {} NXDOMAIN {} other {}",
        n("sent"),
        n("answered"),
        n("lost"),
        n("NOERROR"),
        n("SERVFAIL"),
        n("REFUSED"),
        n("NXDOMAIN"),
        n("other")
    );
}

/// Random datagrams (a third of them a valid header with a garbled body) at `rate` per second
/// for `secs`; how many were sent.
fn malformed(target: SocketAddr, secs: f64, rate: f64) -> Result<u64> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_nonblocking(true)?;
    let mut x: u64 = 0x2545_F491_4F6C_DD1D ^ u64::from(std::process::id());
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let start = Instant::now();
    let mut sent = 0u64;
    let mut buf = [0u8; 2048];
    while start.elapsed().as_secs_f64() < secs {
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            let len = (next() % 600) as usize;
            let p = &mut buf[..len.max(1)];
            for b in p.iter_mut() {
                *b = next() as u8;
            }
            if sent.is_multiple_of(3) && p.len() >= 12 {
                // A query header (QR clear, one question) in front of the noise.
                p[2] &= 0x7f;
                p[4..6].copy_from_slice(&[0, 1]);
            }
            let _ = sock.send_to(p, target);
            sent += 1;
        }
        // Drain whatever came back.
        while sock.recv_from(&mut buf).is_ok() {}
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(sent)
}

fn render(o: &Opts, suites: &[(String, String, u64)], s: &Soak) -> String {
    let mut r = String::new();
    let _ = writeln!(r, "# Reliability\n");
    let _ = writeln!(
        r,
        "Written by `cargo xtask reliability --duration {}s --rate {}` on {} ({} CPUs). \
         The fuzzing campaign and its figures are in [fuzz/README.md](../fuzz/README.md).\n",
        o.duration.as_secs(),
        o.rate,
        std::fs::read_to_string("/etc/hostname")
            .unwrap_or_default()
            .trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if !suites.is_empty() {
        let _ = writeln!(
            r,
            "## Fault tests\n\n| faults injected | suite | tests passed |\n|---|---|---|"
        );
        for (what, suite, n) in suites {
            let _ = writeln!(r, "| {what} | `cargo test --release -p {suite}` | {n} |");
        }
        r.push('\n');
    }
    let _ = writeln!(
        r,
        "## Soak\n\n{} cycles in {:.0} s: the upstream healthy (a Corefile change and SIGUSR1 \
         reload midway, malformed datagrams alongside), then sick ({} times silent, {} times \
         SERVFAIL to everything). Offered while healthy: {:.0} q/s (70 % cache hits, 20 % \
         misses over UDP, 10 % misses over TCP on 8 connections) plus {:.0} malformed datagrams/s.\n",
        s.cycles,
        s.elapsed.as_secs_f64(),
        s.silent_phases,
        s.servfail_phases,
        s.rate,
        s.rate * 0.02
    );
    let _ = writeln!(
        r,
        "| upstream | workload | sent | answered | lost | answered, not NOERROR |\n|---|---|---|---|---|---|"
    );
    for (name, t) in ["cache hits (UDP)", "misses (UDP)", "misses (TCP)"]
        .iter()
        .zip(&s.healthy)
    {
        let _ = writeln!(
            r,
            "| healthy | {name} | {} | {} | {} | {} |",
            t.sent, t.answered, t.lost, t.failed
        );
    }
    for (name, t) in ["cache hits (UDP)", "misses (UDP, may fail)"]
        .iter()
        .zip(&s.sick)
    {
        let _ = writeln!(
            r,
            "| sick | {name} | {} | {} | {} | {} |",
            t.sent, t.answered, t.lost, t.failed
        );
    }
    let growth = match s.rss_flat() {
        Some((early, late, flat)) => format!(
            "highest in the first quarter after the first cycle {:.1} MiB, in the last quarter \
             {:.1} MiB ({})",
            early as f64 / 1024.0,
            late as f64 / 1024.0,
            if flat { "flat" } else { "GREW" }
        ),
        None => "growth not judged: one cycle is too short".to_string(),
    };
    let _ = writeln!(
        r,
        "\n- malformed datagrams sent: {}\n- reloads completed: {} of {}\n- queries the upstream \
         received: {}\n- crashes: {}\n- RSS: peak {:.1} MiB; {growth}\n- UDP queries waiting \
         for a place in flight: at most {} at once (sampled once a second); refused past a \
         socket's backlog: {}; refused past the memory budget: {}",
        s.malformed,
        s.reloads,
        s.cycles,
        s.upstream_queries,
        s.crashed.as_deref().unwrap_or("0"),
        s.peak_rss_kib as f64 / 1024.0,
        s.peak_backlog,
        s.overload_refused,
        s.budget_refused,
    );
    r
}

//! `cargo xtask bench`: ferrodns side by side with the kernel floor (our reflector), Unbound,
//! dnsmasq and the reference CoreDNS, in one run, on this machine.
//!
//! Each loopback workload runs every server pinned to CPU 0, with the load generator and the
//! upstream on CPU 1. The server's CPU time per query is read from `/proc` while
//! `ferrodns-load` offers a fixed rate (a rate the slowest server can carry, so the figure is
//! the server's cost and not the load generator's limit), with the latency of those queries;
//! then dnsperf runs flat out for the saturated rate. The node-local-dns shape runs the
//! project's `node-cache` as the DaemonSet does, between a pod and a kube-dns network
//! namespace, against CoreDNS on the same rendered Corefile, with `ferrodns-testdns` lookups.
//! The results go to `BENCHMARKS.md` as Markdown tables, with ratios and the targets.

mod nodelocal;
pub(crate) mod procs;
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use procs::{Measure, Proc, free_port, json_num, stdout_of, wait_dns};
pub use report::{Measured, Results};

/// Debian packages the bench needs, by the command that shows each is there.
const PACKAGES: &[(&str, &str)] = &[
    ("dnsperf", "dnsperf"),
    ("unbound", "unbound"),
    ("dnsmasq", "dnsmasq"),
    ("ip", "iproute2"),
    ("iptables", "iptables"),
    ("taskset", "util-linux"),
];

/// The servers compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ferrodns,
    /// ferrodns on both CPUs (two workers, two sockets): how it scales.
    Ferrodns2,
    Reflector,
    Unbound,
    Dnsmasq,
    CoreDns,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Ferrodns => "ferrodns",
            Kind::Ferrodns2 => "ferrodns, 2 workers on CPUs 0-1",
            Kind::Reflector => "reflector (floor)",
            Kind::Unbound => "Unbound",
            Kind::Dnsmasq => "dnsmasq",
            Kind::CoreDns => "CoreDNS",
        }
    }
}

/// What a workload asks of the server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A cache in front of the authoritative upstream, every query a hit once warm.
    Cached,
    /// No cache: every query forwarded to the reflector over UDP.
    MissUdp,
    /// No cache: every query forwarded to the reflector over TCP (`force_tcp`).
    MissTcp,
}

pub struct Workload {
    pub key: &'static str,
    pub title: &'static str,
    pub shape: Shape,
    /// Offered rate of the fixed-rate phase (q/s).
    pub rate: f64,
    /// Query file (dnsperf's format: `name type` per line).
    pub queries: PathBuf,
    pub servers: Vec<Kind>,
}

/// Paths of everything the bench runs.
pub struct Tools {
    pub ferrodns: PathBuf,
    pub node_cache: PathBuf,
    pub load: PathBuf,
    pub reflector: PathBuf,
    pub testdns: PathBuf,
    pub coredns: PathBuf,
}

pub struct Opts {
    /// Length of each measured phase.
    pub secs: u64,
    /// Length of each node-local-dns lookup run.
    pub lookup_secs: u64,
    pub out: PathBuf,
    pub only: Vec<String>,
}

const USAGE: &str = "\
usage: cargo xtask bench [--secs N] [--lookup-secs N] [--out FILE] [--only WORKLOAD,...]

Runs ferrodns, the reflector (the kernel floor), Unbound, dnsmasq and CoreDNS side by side and
writes the results as Markdown (default BENCHMARKS.md at the workspace root). Needs root for the
node-local-dns shape (network namespaces, iptables). Workloads: hits, search, miss-udp,
miss-tcp, memory, node-local.
  --secs N         length of each measured phase on loopback (10)
  --lookup-secs N  length of each node-local-dns lookup run (15)
";

pub fn run(args: &[String]) -> Result<()> {
    let root = crate::root();
    let mut opts = Opts {
        secs: 10,
        lookup_secs: 15,
        out: root.join("BENCHMARKS.md"),
        only: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--secs" => opts.secs = value()?.parse().context("--secs")?,
            "--lookup-secs" => opts.lookup_secs = value()?.parse().context("--lookup-secs")?,
            "--out" => opts.out = PathBuf::from(value()?),
            "--only" => opts.only = value()?.split(',').map(String::from).collect(),
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    let started = Instant::now();
    if nproc() < 2 {
        bail!("the bench pins servers to CPU 0 and the load to CPU 1: it needs 2 CPUs");
    }
    crate::ci::install_packages(PACKAGES)?;
    let tools = build(&root)?;
    let dir = std::env::temp_dir().join(format!("ferrodns-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = run_all(&tools, &opts, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let results = result?;
    let text = results.markdown(&opts, started.elapsed());
    std::fs::write(&opts.out, &text).with_context(|| format!("writing {}", opts.out.display()))?;
    println!("{text}");
    println!(
        "==> bench: done in {:.0} s; results in {}",
        started.elapsed().as_secs_f64(),
        opts.out.display()
    );
    Ok(())
}

fn nproc() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn build(root: &Path) -> Result<Tools> {
    let cargo = crate::cargo();
    crate::ci::step(
        "bench: cargo build --release (ferrodns, node-cache, load tools)",
        Command::new(cargo)
            .current_dir(root)
            .args(["build", "--release", "--workspace"]),
    )?;
    let rel = root.join("target/release");
    let coredns = crate::coredns::ensure()?;
    Ok(Tools {
        ferrodns: rel.join("ferrodns"),
        node_cache: rel.join("node-cache"),
        load: rel.join("ferrodns-load"),
        reflector: rel.join("ferrodns-reflector"),
        testdns: rel.join("ferrodns-testdns"),
        coredns,
    })
}

fn wanted(opts: &Opts, key: &str) -> bool {
    opts.only.is_empty() || opts.only.iter().any(|o| o == key)
}

fn progress(msg: &str) {
    println!("==> bench: {msg}");
}

fn run_all(tools: &Tools, opts: &Opts, dir: &Path) -> Result<Results> {
    let mut results = Results::default();
    // The authoritative upstream of the cached workloads (CoreDNS, on the load's CPU) and the
    // reflector upstream of the miss workloads.
    let zones = write_zones(dir)?;
    let auth_port = free_port()?;
    let auth_addr: SocketAddr = ([127, 0, 0, 1], auth_port).into();
    let auth_conf = dir.join("auth.Corefile");
    std::fs::write(&auth_conf, auth_corefile(auth_port, &zones))?;
    let mut cmd = pinned("1", &tools.coredns);
    cmd.args(["-conf", &auth_conf.display().to_string()]);
    let mut auth = Proc::spawn("authoritative CoreDNS", cmd, &dir.join("auth.log"))?;
    wait_dns(auth_addr, &mut auth, Duration::from_secs(20))?;

    let refl_port = free_port()?;
    let refl_addr: SocketAddr = ([127, 0, 0, 1], refl_port).into();
    let mut cmd = pinned("1", &tools.reflector);
    cmd.args(["--listen", &refl_addr.to_string()]);
    let mut upstream_refl = Proc::spawn("upstream reflector", cmd, &dir.join("refl-up.log"))?;
    wait_dns(refl_addr, &mut upstream_refl, Duration::from_secs(20))?;

    let all = vec![
        Kind::Reflector,
        Kind::Ferrodns,
        Kind::Unbound,
        Kind::Dnsmasq,
        Kind::CoreDns,
    ];
    let workloads = vec![
        Workload {
            key: "hits",
            title: "Cache hits (1,000 names, A)",
            shape: Shape::Cached,
            rate: 50_000.0,
            queries: zones.hits.clone(),
            servers: [all.clone(), vec![Kind::Ferrodns2]].concat(),
        },
        Workload {
            key: "search",
            title: "The ndots:5 search pattern (A and AAAA, NXDOMAIN and NODATA with SOA)",
            shape: Shape::Cached,
            rate: 50_000.0,
            queries: zones.search.clone(),
            servers: all,
        },
        Workload {
            key: "miss-udp",
            title: "Misses forwarded over UDP to a fast upstream (no cache)",
            shape: Shape::MissUdp,
            rate: 10_000.0,
            queries: zones.misses.clone(),
            servers: vec![Kind::Ferrodns, Kind::CoreDns],
        },
        Workload {
            key: "miss-tcp",
            title: "Misses forwarded over TCP (`force_tcp`) to a fast upstream (no cache)",
            shape: Shape::MissTcp,
            rate: 10_000.0,
            queries: zones.misses.clone(),
            servers: vec![Kind::Ferrodns, Kind::CoreDns],
        },
    ];
    for w in &workloads {
        if !wanted(opts, w.key) {
            continue;
        }
        for &kind in &w.servers {
            let upstream = match w.shape {
                Shape::Cached => auth_addr,
                Shape::MissUdp | Shape::MissTcp => refl_addr,
            };
            let m = measure(tools, opts, dir, w, kind, upstream)
                .with_context(|| format!("{}: {}", w.key, kind.label()))?;
            results.loopback.push((w.key, w.title, m));
        }
    }
    if wanted(opts, "memory") {
        for kind in [Kind::Ferrodns, Kind::CoreDns] {
            let m = memory(tools, dir, kind, auth_addr, &zones)
                .with_context(|| format!("memory: {}", kind.label()))?;
            results.memory.push(m);
        }
    }
    drop(upstream_refl);
    drop(auth);
    if wanted(opts, "node-local") {
        results.nodelocal = nodelocal::run(tools, opts, dir)?;
    }
    Ok(results)
}

/// `taskset -c cpus program`: the program starts bound to `cpus`, so its thread pools size
/// themselves to them (Rust's available_parallelism, Go's GOMAXPROCS).
pub fn pinned(cpus: &str, program: &Path) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", cpus]).arg(program);
    cmd
}

/// Start `kind` on 127.0.0.1:`port` pinned to CPU 0, set up for `shape` with `upstream`.
fn start_server(
    tools: &Tools,
    dir: &Path,
    kind: Kind,
    shape: Shape,
    port: u16,
    upstream: SocketAddr,
) -> Result<Proc> {
    let tag = format!(
        "{}-{port}",
        kind.label().split(' ').next().unwrap_or("server")
    );
    let log = dir.join(format!("{tag}.log"));
    let corefile = || -> Result<PathBuf> {
        let body = match shape {
            Shape::Cached => format!("    cache 3600\n    forward . {upstream}\n"),
            Shape::MissUdp => format!("    forward . {upstream}\n"),
            Shape::MissTcp => format!("    forward . {upstream} {{\n        force_tcp\n    }}\n"),
        };
        let path = dir.join(format!("{tag}.Corefile"));
        std::fs::write(
            &path,
            format!(".:{port} {{\n    bind 127.0.0.1\n{body}}}\n"),
        )?;
        Ok(path)
    };
    let cmd = match kind {
        Kind::Ferrodns => {
            let mut c = pinned("0", &tools.ferrodns);
            c.args(["-conf", &corefile()?.display().to_string()]);
            c
        }
        Kind::Ferrodns2 => {
            let mut c = pinned("0,1", &tools.ferrodns);
            c.args(["-conf", &corefile()?.display().to_string()]);
            c
        }
        Kind::CoreDns => {
            let mut c = pinned("0", &tools.coredns);
            c.args(["-conf", &corefile()?.display().to_string()]);
            c
        }
        Kind::Reflector => {
            let mut c = pinned("0", &tools.reflector);
            c.args(["--listen", &format!("127.0.0.1:{port}")]);
            c
        }
        Kind::Unbound => {
            let conf = dir.join(format!("{tag}.unbound.conf"));
            std::fs::write(&conf, unbound_conf(port, upstream, dir))?;
            let mut c = pinned("0", Path::new("unbound"));
            c.args(["-d", "-c", &conf.display().to_string()]);
            c
        }
        Kind::Dnsmasq => {
            let mut c = pinned("0", Path::new("dnsmasq"));
            c.args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                &format!("--port={port}"),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--cache-size=10000",
                "--user=root",
                "--log-facility=-",
                &format!("--pid-file={}", dir.join(format!("{tag}.pid")).display()),
                &format!("--server={}#{}", upstream.ip(), upstream.port()),
            ]);
            c
        }
    };
    let mut p = Proc::spawn(kind.label(), cmd, &log)?;
    wait_dns(
        ([127, 0, 0, 1], port).into(),
        &mut p,
        Duration::from_secs(20),
    )?;
    Ok(p)
}

fn unbound_conf(port: u16, upstream: SocketAddr, dir: &Path) -> String {
    format!(
        "server:\n\
         \x20 interface: 127.0.0.1@{port}\n\
         \x20 port: {port}\n\
         \x20 num-threads: 1\n\
         \x20 do-daemonize: no\n\
         \x20 use-syslog: no\n\
         \x20 logfile: \"\"\n\
         \x20 chroot: \"\"\n\
         \x20 username: \"\"\n\
         \x20 directory: \"{dir}\"\n\
         \x20 pidfile: \"{dir}/unbound-{port}.pid\"\n\
         \x20 do-not-query-localhost: no\n\
         \x20 access-control: 127.0.0.0/8 allow\n\
         \x20 module-config: \"iterator\"\n\
         \x20 qname-minimisation: no\n\
         \x20 msg-cache-size: 16m\n\
         \x20 rrset-cache-size: 32m\n\
         \x20 verbosity: 0\n\
         remote-control:\n\
         \x20 control-enable: no\n\
         forward-zone:\n\
         \x20 name: \".\"\n\
         \x20 forward-addr: {}@{}\n",
        upstream.ip(),
        upstream.port(),
        dir = dir.display(),
    )
}

/// One server on one loopback workload.
fn measure(
    tools: &Tools,
    opts: &Opts,
    dir: &Path,
    w: &Workload,
    kind: Kind,
    upstream: SocketAddr,
) -> Result<Measured> {
    let port = free_port()?;
    let target: SocketAddr = ([127, 0, 0, 1], port).into();
    progress(&format!(
        "{}: {}: starting on {target}",
        w.key,
        kind.label()
    ));
    let mut server = start_server(tools, dir, kind, w.shape, port, upstream)?;
    // Warm: every query once (fills the caches, opens the upstream connections).
    for _ in 0..2 {
        dnsperf(target, &w.queries, &["-n", "1", "-c", "16", "-q", "100"])?;
    }
    server.alive()?;
    progress(&format!(
        "{}: {}: {} q/s for {} s",
        w.key,
        kind.label(),
        w.rate,
        opts.secs
    ));
    let before = server.cpu_seconds()?;
    let load = fixed_load(tools, target, &w.queries, w.rate, opts.secs)?;
    let cpu = server.cpu_seconds()? - before;
    server.alive()?;
    progress(&format!(
        "{}: {}: dnsperf flat out for {} s",
        w.key,
        kind.label(),
        opts.secs
    ));
    let secs = opts.secs.to_string();
    let sat = dnsperf(
        target,
        &w.queries,
        &["-l", &secs, "-c", "128", "-q", "1000", "-T", "1"],
    )?;
    server.alive()?;
    let (_, hwm) = server.rss_kib()?;
    let answered = json_num(&load, "answered")?;
    let m = Measured {
        kind,
        cpu_us: if answered > 0.0 {
            cpu * 1e6 / answered
        } else {
            f64::NAN
        },
        rate: w.rate,
        answered,
        lost: json_num(&load, "lost")?,
        p50_us: json_num(&load, "p50")?,
        p99_us: json_num(&load, "p99")?,
        max_us: json_num(&load, "max")?,
        sat_qps: sat.qps,
        sat_lost: sat.lost,
        peak_rss_kib: hwm,
    };
    progress(&format!(
        "{}: {}: {:.2} µs CPU per query, p99 {:.0} µs, lost {}, {:.0} q/s flat out, peak RSS {:.1} MiB",
        w.key,
        kind.label(),
        m.cpu_us,
        m.p99_us,
        m.lost,
        m.sat_qps,
        m.peak_rss_kib as f64 / 1024.0
    ));
    Ok(m)
}

/// `ferrodns-load` on CPU 1 at `rate` for `secs`; its JSON report.
fn fixed_load(
    tools: &Tools,
    target: SocketAddr,
    queries: &Path,
    rate: f64,
    secs: u64,
) -> Result<String> {
    stdout_of(
        pinned("1", &tools.load).args([
            "--target",
            &target.to_string(),
            "--udp-rate",
            &rate.to_string(),
            "--udp-sockets",
            "64",
            "--names-file",
            &queries.display().to_string(),
            "--duration",
            &format!("{secs}s"),
            "--quiet",
            "--ignore-stdin",
        ]),
        "ferrodns-load",
    )
}

pub struct Dnsperf {
    pub qps: f64,
    pub lost: f64,
}

/// dnsperf on CPU 1 against `target` with `extra` options.
fn dnsperf(target: SocketAddr, queries: &Path, extra: &[&str]) -> Result<Dnsperf> {
    let mut cmd = pinned("1", Path::new("dnsperf"));
    cmd.args([
        "-s",
        &target.ip().to_string(),
        "-p",
        &target.port().to_string(),
        "-d",
        &queries.display().to_string(),
        "-t",
        "2",
    ])
    .args(extra);
    let text = stdout_of(&mut cmd, "dnsperf")?;
    let field = |key: &str| -> Result<f64> {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .with_context(|| format!("no {key:?} in dnsperf's output:\n{text}"))?;
        let v = line
            .split(':')
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or("");
        v.parse()
            .with_context(|| format!("{key:?} in dnsperf's output: {line}"))
    };
    Ok(Dnsperf {
        qps: field("Queries per second")?,
        lost: field("Queries lost")?,
    })
}

/// The files the workloads query and the zones the authoritative upstream serves.
pub struct Zones {
    pub dir: PathBuf,
    pub hits: PathBuf,
    pub search: PathBuf,
    pub misses: PathBuf,
    /// 9,984 names that exist and 9,984 that do not, under cluster.local.
    pub fill: PathBuf,
}

const SOA: &str = "@ 3600 IN SOA ns.bench.test. hostmaster.bench.test. 1 7200 1800 86400 3600\n@ 3600 IN NS ns.bench.test.\n";

fn write_zones(dir: &Path) -> Result<Zones> {
    let zdir = dir.join("zones");
    std::fs::create_dir_all(&zdir)?;
    let mut bench =
        format!("$ORIGIN bench.test.\n{SOA}ns 3600 IN A 127.0.0.1\nready 3600 IN A 127.0.0.1\n");
    let mut hits = String::new();
    let mut misses = String::new();
    for i in 0..1000 {
        bench.push_str(&format!("h{i} 3600 IN A 10.1.{}.{}\n", i / 256, i % 256));
        hits.push_str(&format!("h{i}.bench.test A\n"));
        misses.push_str(&format!("m{i}.bench.test A\n"));
    }
    // Services `svc<i>.ns<i%5>` and external names `www<j>.ext.test`, looked up from a pod in
    // namespace `app` with ndots:5: every candidate of the search list, A and AAAA, up to
    // the one that exists.
    let mut cluster =
        format!("$ORIGIN cluster.local.\n{SOA}kube-dns.kube-system.svc 30 IN A 10.96.0.10\n");
    let mut search = String::new();
    for i in 0..50 {
        let svc = format!("svc{i}.ns{}", i % 5);
        cluster.push_str(&format!("{svc}.svc 3600 IN A 10.2.0.{i}\n"));
        for cand in [
            format!("{svc}.app.svc.cluster.local"),
            format!("{svc}.svc.cluster.local"),
        ] {
            search.push_str(&format!("{cand} A\n{cand} AAAA\n"));
        }
    }
    let mut ext = format!("$ORIGIN ext.test.\n{SOA}");
    for j in 0..20 {
        ext.push_str(&format!("www{j} 3600 IN A 192.0.2.{j}\n"));
        for cand in [
            format!("www{j}.ext.test.app.svc.cluster.local"),
            format!("www{j}.ext.test.svc.cluster.local"),
            format!("www{j}.ext.test.cluster.local"),
            format!("www{j}.ext.test"),
        ] {
            search.push_str(&format!("{cand} A\n{cand} AAAA\n"));
        }
    }
    let mut fill = String::new();
    for i in 0..9984 {
        cluster.push_str(&format!(
            "s{i}.mem.svc 30 IN A 10.3.{}.{}\n",
            i / 256,
            i % 256
        ));
        fill.push_str(&format!(
            "s{i}.mem.svc.cluster.local A\nn{i}.mem.svc.cluster.local A\n"
        ));
    }
    std::fs::write(zdir.join("bench.test.db"), bench)?;
    std::fs::write(zdir.join("cluster.local.db"), cluster)?;
    std::fs::write(zdir.join("ext.test.db"), ext)?;
    let z = Zones {
        dir: zdir.clone(),
        hits: zdir.join("hits.txt"),
        search: zdir.join("search.txt"),
        misses: zdir.join("misses.txt"),
        fill: zdir.join("fill.txt"),
    };
    std::fs::write(&z.hits, hits)?;
    std::fs::write(&z.search, search)?;
    std::fs::write(&z.misses, misses)?;
    std::fs::write(&z.fill, fill)?;
    Ok(z)
}

fn auth_corefile(port: u16, z: &Zones) -> String {
    let d = z.dir.display();
    format!(
        "bench.test:{port} {{\n    bind 127.0.0.1\n    file {d}/bench.test.db\n}}\n\
         cluster.local:{port} {{\n    bind 127.0.0.1\n    file {d}/cluster.local.db\n}}\n\
         ext.test:{port} {{\n    bind 127.0.0.1\n    file {d}/ext.test.db\n}}\n"
    )
}

pub struct Memory {
    pub kind: Kind,
    pub idle_kib: u64,
    /// Right after the fill.
    pub after_fill_kib: u64,
    /// Full, at rest.
    pub full_kib: u64,
}

/// RSS idle and with a node-local-dns `cluster.local` cache block full (9,984 success and
/// 9,984 denial entries).
fn memory(
    tools: &Tools,
    dir: &Path,
    kind: Kind,
    upstream: SocketAddr,
    z: &Zones,
) -> Result<Memory> {
    let port = free_port()?;
    let target: SocketAddr = ([127, 0, 0, 1], port).into();
    progress(&format!(
        "memory: {}: idle, then a full node-local cache block",
        kind.label()
    ));
    let conf = dir.join(format!("mem-{port}.Corefile"));
    std::fs::write(
        &conf,
        format!(
            "cluster.local:{port} {{\n    bind 127.0.0.1\n    cache {{\n        success 9984 30\n        denial 9984 5\n    }}\n    forward . {upstream}\n}}\n"
        ),
    )?;
    let bin = match kind {
        Kind::Ferrodns => &tools.ferrodns,
        _ => &tools.coredns,
    };
    let mut cmd = pinned("0", bin);
    cmd.args(["-conf", &conf.display().to_string()]);
    let mut p = Proc::spawn(kind.label(), cmd, &dir.join(format!("mem-{port}.log")))?;
    let probe: SocketAddr = target;
    // The probe asks a name outside the zone (REFUSED): the cache stays empty.
    wait_dns(probe, &mut p, Duration::from_secs(20))?;
    let (idle, _) = p.rss_kib()?;
    dnsperf(target, &z.fill, &["-n", "1", "-c", "32", "-q", "200"])?;
    p.alive()?;
    let (after_fill, _) = p.rss_kib()?;
    // At rest: what the fill freed goes back to the system over seconds (Go's collector;
    // jemalloc's decay, which runs when memory is next freed, as when forward closes the fill's
    // idle upstream connections after its 10 s `expire`). Read 15 s after the fill.
    let rest_at = Instant::now() + Duration::from_secs(15);
    while Instant::now() < rest_at {
        std::thread::sleep(Duration::from_millis(500));
        p.alive()?;
    }
    let (full, _) = p.rss_kib()?;
    progress(&format!(
        "memory: {}: idle {:.1} MiB, full {:.1} MiB right after the fill, {:.1} MiB at rest",
        kind.label(),
        idle as f64 / 1024.0,
        after_fill as f64 / 1024.0,
        full as f64 / 1024.0
    ));
    Ok(Memory {
        kind,
        idle_kib: idle,
        after_fill_kib: after_fill,
        full_kib: full,
    })
}

//! The bench's results as Markdown: one table per workload with the ratio of ferrodns to each
//! peer, the memory table, the node-local-dns lookups, and the targets met or missed.

use std::fmt::Write as _;
use std::time::Duration;

use super::nodelocal::LookupRun;
use super::{Kind, Memory, Opts};

/// One server on one loopback workload.
pub struct Measured {
    pub kind: Kind,
    /// Server CPU (user + system) per answered query at the fixed rate, µs.
    pub cpu_us: f64,
    pub rate: f64,
    pub answered: f64,
    pub lost: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// dnsperf flat out.
    pub sat_qps: f64,
    pub sat_lost: f64,
    pub peak_rss_kib: u64,
}

#[derive(Default)]
pub struct Results {
    pub loopback: Vec<(&'static str, &'static str, Measured)>,
    pub memory: Vec<Memory>,
    pub nodelocal: Vec<LookupRun>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Results {
    fn get(&self, key: &str, kind: Kind) -> Option<&Measured> {
        self.loopback
            .iter()
            .find(|(k, _, m)| *k == key && m.kind == kind)
            .map(|(_, _, m)| m)
    }

    fn mem(&self, kind: Kind) -> Option<&Memory> {
        self.memory.iter().find(|m| m.kind == kind)
    }

    /// Mean lookups and mean p99 of the runs of `kind` in `layout`.
    fn lookups(&self, layout: &str, kind: Kind) -> Option<(f64, f64, u64)> {
        let runs: Vec<&LookupRun> = self
            .nodelocal
            .iter()
            .filter(|r| r.layout == layout && r.kind == kind)
            .collect();
        if runs.is_empty() {
            return None;
        }
        let n = runs.len() as f64;
        Some((
            runs.iter().map(|r| r.lookups).sum::<f64>() / n,
            runs.iter().map(|r| r.p99_ms).sum::<f64>() / n,
            runs.iter().map(|r| r.slow).sum(),
        ))
    }

    pub fn markdown(&self, opts: &Opts, took: Duration) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# Benchmarks\n");
        let _ = writeln!(
            o,
            "Written by `cargo xtask bench` ({:.0} s). Machine: {}; {} CPUs; kernel {}.\n",
            took.as_secs_f64(),
            cpu_model(),
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            kernel()
        );
        let _ = writeln!(
            o,
            "How: each server runs pinned to CPU 0; the load generator and the upstream run on CPU 1.\n\
             *CPU µs/query* is the server's user + system time (from `/proc/<pid>/stat`) divided by\n\
             the queries it answered while `ferrodns-load` offered a fixed rate for {} s; the\n\
             latency columns are those queries' (p50/p99/max, from the load generator).\n\
             *Flat out* is dnsperf (`-c 128 -q 1000`, one thread, CPU 1) for {} s; on two CPUs it\n\
             measures the load generator as much as the server. The reflector answers each query\n\
             with its own bytes (the kernel floor: `recvmmsg`/`sendmmsg` and nothing else).\n\
             *ferrodns, 2 workers* runs unpinned on both CPUs (a worker and an `SO_REUSEPORT`\n\
             socket per CPU, as on a bigger node), the load generator still on CPU 1: its CPU\n\
             per query beside the pinned row is what a second core adds to each query.\n",
            opts.secs, opts.secs
        );
        let mut seen: Vec<&str> = Vec::new();
        for (key, title, _) in &self.loopback {
            if seen.contains(key) {
                continue;
            }
            seen.push(key);
            let _ = writeln!(o, "## {title} (`{key}`)\n");
            let _ = writeln!(
                o,
                "| server | CPU µs/query | ferrodns ÷ it | offered q/s | answered | lost | p50 µs | p99 µs | max µs | flat out q/s | flat-out lost | peak RSS MiB |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|---|");
            let ours = self.get(key, Kind::Ferrodns).map(|m| m.cpu_us);
            for (k, _, m) in &self.loopback {
                if k != key {
                    continue;
                }
                let ratio = match ours {
                    Some(f) if m.kind != Kind::Ferrodns => format!("{:.2}", f / m.cpu_us),
                    _ => "".into(),
                };
                let _ = writeln!(
                    o,
                    "| {} | {:.2} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} |",
                    m.kind.label(),
                    m.cpu_us,
                    ratio,
                    m.rate,
                    m.answered,
                    m.lost,
                    m.p50_us,
                    m.p99_us,
                    m.max_us,
                    m.sat_qps,
                    m.sat_lost,
                    mib(m.peak_rss_kib)
                );
            }
            o.push('\n');
        }
        if !self.memory.is_empty() {
            let _ = writeln!(
                o,
                "## Memory (`memory`)\n\nRSS right after start; then after a node-local-dns `cluster.local` block\n\
                 (`cache {{ success 9984 30; denial 9984 5 }}`) took 9,984 names that exist and 9,984 that do not,\n\
                 right after and at rest, 15 s later (what the fill freed has gone back: forward closes its\n\
                 idle upstream connections after 10 s, as CoreDNS's `expire`).\n"
            );
            let _ = writeln!(
                o,
                "| server | idle RSS MiB | full, right after MiB | full, at rest MiB |\n|---|---|---|---|"
            );
            for m in &self.memory {
                let _ = writeln!(
                    o,
                    "| {} | {:.1} | {:.1} | {:.1} |",
                    m.kind.label(),
                    mib(m.idle_kib),
                    mib(m.after_fill_kib),
                    mib(m.full_kib)
                );
            }
            o.push('\n');
        }
        if !self.nodelocal.is_empty() {
            let _ = writeln!(
                o,
                "## The node-local-dns shape (`node-local`)\n\n\
                 A pod network namespace (resolv.conf: `nameserver 169.254.20.10`, the cluster search path,\n\
                 `ndots:5`) runs `ferrodns-testdns -host kube-dns.kube-system -c 200 -l 5000` for {} s;\n\
                 the node namespace runs the node cache: the project's `node-cache` with the DaemonSet's\n\
                 arguments and the manifest's ConfigMap, or CoreDNS on the Corefile that node-cache rendered,\n\
                 with the same interface and NOTRACK rules; kube-dns (CoreDNS) runs in a third namespace.\n\
                 *shared*: nothing pinned, as on a real node. *pinned*: the node cache on CPU 0, the pod and\n\
                 kube-dns on CPU 1. CPU s is the node cache's during the run.\n",
                opts.lookup_secs
            );
            let _ = writeln!(
                o,
                "| layout | node cache | run | lookups | lookups/s | failed | over 5 s | p50 ms | p99 ms | max ms | node cache CPU s |\n|---|---|---|---|---|---|---|---|---|---|---|"
            );
            for r in &self.nodelocal {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {} | {:.2} | {:.2} | {:.1} | {:.2} |",
                    r.layout,
                    r.kind.label(),
                    r.run,
                    r.lookups,
                    r.per_second,
                    r.failed,
                    r.slow,
                    r.p50_ms,
                    r.p99_ms,
                    r.max_ms,
                    r.cpu_s
                );
            }
            o.push('\n');
        }
        o.push_str(&self.targets());
        o
    }

    fn targets(&self) -> String {
        let mut rows: Vec<(String, String, bool)> = Vec::new();
        let mut cpu = |key: &str, peer: Kind, limit: f64| {
            if let (Some(f), Some(p)) = (self.get(key, Kind::Ferrodns), self.get(key, peer)) {
                let r = f.cpu_us / p.cpu_us;
                rows.push((
                    format!("{key}: CPU/query ≤ {limit:.2}× {}", peer.label()),
                    format!("{r:.2}× ({:.2} vs {:.2} µs)", f.cpu_us, p.cpu_us),
                    r <= limit,
                ));
            }
        };
        for key in ["hits", "search"] {
            cpu(key, Kind::Reflector, 1.12);
            cpu(key, Kind::Unbound, 0.85);
            cpu(key, Kind::CoreDns, 0.45);
        }
        cpu("miss-udp", Kind::CoreDns, 0.4);
        cpu("miss-tcp", Kind::CoreDns, 0.4);
        for (layout, lk, p99) in [("shared", 1.2, 0.8), ("pinned", 1.0, 1.0)] {
            if let (Some(f), Some(c)) = (
                self.lookups(layout, Kind::Ferrodns),
                self.lookups(layout, Kind::CoreDns),
            ) {
                let r = f.0 / c.0;
                rows.push((
                    format!("node-local {layout}: lookups ≥ {lk:.1}× CoreDNS's"),
                    format!("{r:.2}× ({:.0} vs {:.0})", f.0, c.0),
                    r >= lk,
                ));
                let r = f.1 / c.1;
                rows.push((
                    format!("node-local {layout}: p99 ≤ {p99:.1}× CoreDNS's"),
                    format!("{r:.2}× ({:.2} vs {:.2} ms)", f.1, c.1),
                    r <= p99,
                ));
                rows.push((
                    format!("node-local {layout}: no ferrodns lookup over 5 s"),
                    format!("{} (CoreDNS {})", f.2, c.2),
                    f.2 == 0,
                ));
            }
        }
        if let Some(m) = self.mem(Kind::Ferrodns) {
            rows.push((
                "idle RSS ≤ 8 MiB".into(),
                format!("{:.1} MiB", mib(m.idle_kib)),
                m.idle_kib <= 8 * 1024,
            ));
            rows.push((
                "RSS with a full node-local cache block (at rest) ≤ 16 MiB".into(),
                format!(
                    "{:.1} MiB (CoreDNS {:.1})",
                    mib(m.full_kib),
                    self.mem(Kind::CoreDns)
                        .map(|c| mib(c.full_kib))
                        .unwrap_or(0.0)
                ),
                m.full_kib <= 16 * 1024,
            ));
        }
        let mut o = String::from("## Targets\n\n| target | measured | met |\n|---|---|---|\n");
        for (t, v, ok) in rows {
            let _ = writeln!(o, "| {t} | {v} | {} |", if ok { "yes" } else { "**no**" });
        }
        o
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

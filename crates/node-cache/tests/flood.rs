//! kubernetes/dns#438: a flood of unique names at node-cache under a pod memory limit. An
//! OOM-killed node-local-dns skips its teardown and leaves the node's DNS black-holed, so the
//! budget must keep node-cache under its limit.
//!
//! ```text
//!   pod 10.0.1.2 ── veth ── 10.0.1.1 node 10.0.2.1 ── veth ── 10.0.2.2-3 kube-dns
//!                            nodelocaldns: 169.254.20.10, 10.96.0.10
//! ```
//!
//! node-cache runs with the DaemonSet's arguments (and the manifest's ConfigMap Corefile) in a
//! memory cgroup of its own limited to [`LIMIT`]. The upstream manifest sets no memory limit
//! (only `requests: memory: 5Mi`); operators who set one use figures like kubekey's `200Mi`,
//! or smaller; 64 MiB is a small one. node-cache runs with `-memory auto` (the default), so its
//! budget is 75% of that limit, read from the cgroup.
//!
//! From the pod, for [`FLOOD`], two threads send unique names as fast as they can: TXT
//! questions under `flood.example.com.` (kube-dns' stand-in answers each with about 2 KiB, so
//! the caches fill with large entries) and, one in four, A questions under `slow.example.`,
//! which the stand-in forwards to a socket nobody reads (so node-cache's queries in flight pile
//! up until forward gives up). node-cache's VmRSS and the cgroup's usage are sampled every
//! 100 ms. Then: its RSS stayed under the limit, the cgroup saw no OOM kill, node-cache is
//! alive and answers, and its budget metrics show the cache bytes within their share. Needs
//! root (network namespaces, cgroups); it fails without.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use e2e_support::*;
use e2e_world::*;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

mod e2e_support;
mod e2e_world;
mod manifest;

/// The pod's memory limit.
const LIMIT: u64 = 64 << 20;
/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(25);

/// A memory cgroup of its own under this process's, removed on drop.
struct Cgroup {
    dir: PathBuf,
    v2: bool,
}

impl Cgroup {
    fn new(limit: u64) -> Cgroup {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let v1 = own.lines().find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, ctrls, path) = (p.next()?, p.next()?, p.next()?);
            ctrls
                .split(',')
                .any(|c| c == "memory")
                .then(|| path.to_string())
        });
        let name = format!("fdns-flood-{}", std::process::id());
        let (dir, v2) = match v1 {
            Some(path) => (
                Path::new("/sys/fs/cgroup/memory")
                    .join(path.trim_start_matches('/'))
                    .join(&name),
                false,
            ),
            None => {
                let path = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
                let parent = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
                // The memory controller must be on for the parent's children.
                let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+memory");
                (parent.join(&name), true)
            }
        };
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("mkdir {} (needs root): {e}", dir.display()));
        let file = if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        std::fs::write(dir.join(file), limit.to_string()).unwrap();
        Cgroup { dir, v2 }
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    fn usage(&self) -> u64 {
        let f = if self.v2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        self.read(f).trim().parse().unwrap_or(0)
    }

    /// OOM kills in the cgroup (v1 `memory.oom_control`, v2 `memory.events`).
    fn oom_kills(&self) -> u64 {
        let f = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        self.read(f)
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Emptied once node-cache is gone.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The end-to-end world, with kube-dns' stand-in answering ~2 KiB of TXT for any name under
/// `flood.example.com.` on the node's resolver (10.0.2.3), and forwarding `slow.example.` to
/// a socket nobody reads (the returned one, kept open so that queries vanish there).
fn flood_world() -> (World, UdpSocket) {
    let chunk = "x".repeat(250);
    let txt = format!("\\\"{chunk}\\\" ").repeat(8);
    let w = world_with(&format!(
        "flood.example.com:53 {{\n    bind 10.0.2.3\n    template IN TXT {{\n        answer \"{{{{ .Name }}}} 60 IN TXT {txt}\"\n    }}\n    template IN A {{\n        answer \"{{{{ .Name }}}} 60 IN A 203.0.113.7\"\n    }}\n}}\n\
         slow.example:53 {{\n    bind 10.0.2.3\n    forward . 127.0.0.1:5399\n}}\n"
    ));
    let hole = w
        ._kdns
        .inside(|| UdpSocket::bind("127.0.0.1:5399").unwrap());
    (w, hole)
}

/// node-cache with the DaemonSet's arguments, with the node's own /etc and /tmp, in `cg`.
fn start_node_cache(w: &World, cg: &Cgroup) -> Proc {
    // `ip netns exec` mounts a fresh /sys, without the cgroup hierarchy a pod's container
    // sees: mount the memory controller's back where node-cache looks for it.
    let cgroupfs = if cg.v2 {
        "-t cgroup2 cgroup2"
    } else {
        "-t cgroup -o memory cgroup"
    };
    let nc = Path::new(env!("CARGO_BIN_EXE_node-cache"));
    let (argv, _) = node_command(
        w,
        "node",
        &corefile_base(false),
        nc,
        &format!("mount {cgroupfs} /sys/fs/cgroup &&"),
    );
    // Into the cgroup first, then (each step an exec, so the PID stays node-cache's) into the
    // node's namespace.
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        &format!("echo $$ > {}/cgroup.procs && exec \"$@\"", cg.dir.display()),
        "sh",
    ])
    .args(&argv)
    .args(daemonset_args(&format!("{LOCAL},{KUBEDNS_IP}"), &[]))
    .env("KUBE_DNS_UPSTREAM_SERVICE_HOST", "10.0.2.2");
    Proc::spawn(cmd)
}

/// A field of /proc/<pid>/status in bytes (`VmRSS`, `RssAnon`).
fn status(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|k| k * 1024)
}

fn vm_rss(pid: u32) -> Option<u64> {
    status(pid, "VmRSS")
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

fn flood_query(name: &str, qtype: RecordType, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.queries
        .push(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut e = Edns::new();
    e.set_max_payload(4096);
    m.edns = Some(e);
    m.to_vec().unwrap()
}

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    noerror: AtomicU64,
    refused: AtomicU64,
    servfail: AtomicU64,
    other: AtomicU64,
}

/// Two senders (each with a receiver) in the pod until `FLOOD` has passed.
fn flood(pod: &Ns, counts: Arc<Counts>) {
    let to: SocketAddr = format!("{LOCAL}:53").parse().unwrap();
    pod.inside(move || {
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let counts = counts.clone();
                s.spawn(move || {
                    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
                    let rx = sock.try_clone().unwrap();
                    rx.set_read_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    let done = Arc::new(AtomicBool::new(false));
                    let recv_done = done.clone();
                    let rc = counts.clone();
                    let receiver = std::thread::spawn(move || {
                        let mut buf = [0u8; 65535];
                        loop {
                            match rx.recv(&mut buf) {
                                Ok(n) if n >= 4 => {
                                    let c = match buf[3] & 0x0f {
                                        0 => &rc.noerror,
                                        5 => &rc.refused,
                                        2 => &rc.servfail,
                                        _ => &rc.other,
                                    };
                                    c.fetch_add(1, Ordering::Relaxed);
                                }
                                _ if recv_done.load(Ordering::Relaxed) => return,
                                _ => {}
                            }
                        }
                    });
                    let start = Instant::now();
                    let mut i: u64 = 0;
                    while start.elapsed() < FLOOD {
                        i += 1;
                        let n = (t << 40) | i;
                        let q = if i.is_multiple_of(4) {
                            flood_query(&format!("q{n}.slow.example."), RecordType::A, i as u16)
                        } else {
                            flood_query(
                                &format!("q{n}.flood.example.com."),
                                RecordType::TXT,
                                i as u16,
                            )
                        };
                        if sock.send_to(&q, to).is_ok() {
                            counts.sent.fetch_add(1, Ordering::Relaxed);
                        }
                        // About 10k queries a second per thread.
                        if i.is_multiple_of(100) {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                    std::thread::sleep(Duration::from_secs(6));
                    done.store(true, Ordering::Relaxed);
                    let _ = receiver.join();
                });
            }
        });
    });
}

#[test]
fn a_flood_of_unique_names_stays_under_the_memory_limit() {
    let (w, _hole) = flood_world();
    let cg = Cgroup::new(LIMIT);
    let mut nc = start_node_cache(&w, &cg);
    let pid = nc.child.id();
    nc.expect("Memory budget 48 MiB", 1, WAIT);
    nc.expect(READY, 1, WAIT);
    nc.expect("Added back nodelocaldns rule", 24, WAIT);
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        "node-cache"
    );
    let r = ask(
        &w.pod,
        LOCAL,
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(a_of(&r), vec!["10.96.0.1"]);
    let rss_start = vm_rss(pid).unwrap();

    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let cg_dir = cg.dir.clone();
        let v2 = cg.v2;
        std::thread::spawn(move || {
            let cg = Cgroup { dir: cg_dir, v2 };
            let (mut max_rss, mut max_anon, mut max_usage, mut samples) = (0u64, 0, 0, 0u64);
            while !stop.load(Ordering::Relaxed) {
                if let Some(r) = vm_rss(pid) {
                    max_rss = max_rss.max(r);
                }
                if let Some(r) = status(pid, "RssAnon") {
                    max_anon = max_anon.max(r);
                }
                max_usage = max_usage.max(cg.usage());
                samples += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            // Not this thread's to remove.
            std::mem::forget(cg);
            (max_rss, max_anon, max_usage, samples)
        })
    };
    flood(&w.pod, counts.clone());
    stop.store(true, Ordering::Relaxed);
    let (max_rss, max_anon, max_usage, samples) = sampler.join().unwrap();
    let file_end = status(pid, "RssFile").unwrap_or(0);

    let (status, body) = http_get(&w.node, &format!("{LOCAL}:9253"), "/metrics");
    assert_eq!(status, 200);
    let limit = metric(&body, "ferrodns_budget_limit_bytes");
    let cache_limit = metric(&body, "ferrodns_budget_cache_limit_bytes");
    let cache_bytes = metric(&body, "ferrodns_budget_cache_bytes");
    let inflight_limit = metric(&body, "ferrodns_budget_inflight_limit");
    let refused = metric(&body, "ferrodns_budget_refused_total");
    let skipped = metric(&body, "ferrodns_budget_cache_skipped_total");
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    eprintln!(
        "limit {} MiB; budget {:.0} MiB (cache share {:.0} MiB, {inflight_limit} queries in flight)\n\
         sent {} queries in {FLOOD:?}: {} NOERROR, {} REFUSED, {} SERVFAIL, {} other\n\
         node-cache VmRSS {} MiB at start, max {:.1} MiB over {samples} samples (of which file-backed \
         at the end {:.1} MiB: the binary's text, not charged to the pod's cgroup here); \
         RssAnon max {:.1} MiB; cgroup usage max {:.1} MiB, failcnt {}, oom_kill {}\n\
         cache bytes {:.1} MiB (share {:.1} MiB), {skipped} inserts skipped, {refused} queries refused by the budget",
        LIMIT >> 20,
        limit / 1048576.0,
        cache_limit / 1048576.0,
        c(&counts.sent),
        c(&counts.noerror),
        c(&counts.refused),
        c(&counts.servfail),
        c(&counts.other),
        rss_start >> 20,
        max_rss as f64 / 1048576.0,
        file_end as f64 / 1048576.0,
        max_anon as f64 / 1048576.0,
        max_usage as f64 / 1048576.0,
        cg.read("memory.failcnt").trim(),
        cg.oom_kills(),
        cache_bytes / 1048576.0,
        cache_limit / 1048576.0,
    );
    assert_eq!(
        limit as u64,
        LIMIT * 3 / 4,
        "-memory auto: 75% of the limit"
    );
    // What the cgroup must hold and cannot reclaim: the anonymous part of the RSS. The
    // file-backed part is the binary's text (the debug build's is large), charged to whoever
    // read it first and reclaimable.
    assert!(
        max_anon < LIMIT,
        "anonymous RSS reached {max_anon} of {LIMIT}"
    );
    assert!(
        max_rss.saturating_sub(file_end) < LIMIT,
        "RSS less its file-backed pages reached {} of {LIMIT}",
        max_rss.saturating_sub(file_end)
    );
    assert!(
        max_usage < LIMIT,
        "cgroup usage reached {max_usage} of {LIMIT}"
    );
    assert_eq!(
        cg.read("memory.failcnt").trim(),
        if cg.v2 { "" } else { "0" }
    );
    assert_eq!(cg.oom_kills(), 0, "the cgroup OOM-killed something");
    assert!(nc.child.try_wait().unwrap().is_none(), "node-cache died");
    assert!(cache_bytes <= cache_limit, "{cache_bytes} > {cache_limit}");
    assert!(c(&counts.noerror) > 10_000, "the flood was answered");
    // Still answering afterwards.
    let r = ask(
        &w.pod,
        LOCAL,
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(a_of(&r), vec!["10.96.0.1"]);
    let r = ask(&w.pod, LOCAL, "after.flood.example.com.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    // Dropping `nc` kills it; the namespaces (and their rules) go with the world.
}

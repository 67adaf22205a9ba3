//! A rolling update of node-local-dns, ten restarts and a binary upgrade, under a steady load
//! from a pod, loses no query and never leaves the node without its rules.
//!
//! The world is the end-to-end test's (pod, node and kube-dns namespaces; see e2e_world). Each
//! generation of node-cache runs with the DaemonSet's arguments under a root of its own, as a
//! new pod would. Even rounds go as the DaemonSet controller does them (SIGTERM to the old
//! process first, the new one started while the old one waits for it), odd ones the other
//! way round (the new process started beside the running one). The first generation runs a
//! copy of the binary in another file (the old version). From the pod, 20,000 UDP queries per
//! second and 200 TCP connections at 5 q/s each go to 169.254.20.10 for names the node's
//! resolvers answer (through the `.:53` block and its `cache 30`), with TTLs of 20 to 29 s by
//! the name's last digit, so that the entries cached during the warm-up do not all expire in the
//! same second later (a miss wave no hand-off causes). A thread in the node's
//! namespace reads `iptables-save` every 10 ms, and checks the `nodelocaldns` link.
//!
//! Asserted: every query answered, none slower than 1 s; all 12 rules and the link present in
//! every sample; the cache hit rate in the two seconds after each hand-off within 5 points of
//! the two seconds before.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use e2e_support::*;
use e2e_world::*;
use ferrodns_loadgen::{LoadSpec, Report, background};

mod e2e_support;
mod e2e_world;
mod manifest;

const RESTARTS: usize = 10;
const NAMES: usize = 5000;

/// What the sampler saw.
#[derive(Default)]
struct Samples {
    taken: AtomicU64,
    short: AtomicU64,
    fewest: AtomicU64,
    no_link: AtomicU64,
}

/// Every 10 ms in the node's namespace: the node-local-dns rules in `iptables-save`, and the
/// `nodelocaldns` link.
fn sample_rules(node: &Ns, want: u64, stop: Arc<AtomicBool>, out: Arc<Samples>) {
    out.fewest.store(u64::MAX, Ordering::SeqCst);
    let file = std::fs::File::open(format!("/run/netns/{}", node.0)).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        while !stop.load(Ordering::SeqCst) {
            let next = Instant::now() + Duration::from_millis(10);
            let save = Command::new("iptables-save").output().unwrap();
            let n = String::from_utf8_lossy(&save.stdout)
                .lines()
                .filter(|l| l.contains("NodeLocal DNS Cache"))
                .count() as u64;
            out.taken.fetch_add(1, Ordering::SeqCst);
            out.fewest.fetch_min(n, Ordering::SeqCst);
            if n < want {
                out.short.fetch_add(1, Ordering::SeqCst);
            }
            if nix::net::if_::if_nametoindex("nodelocaldns").is_err() {
                out.no_link.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    });
}

/// Cache hits and misses so far, from node-cache's :9253 (seen from the pod).
fn hits_and_misses(w: &World) -> (f64, f64) {
    let (status, body) = http_get(&w.pod, "10.0.1.1:9253", "/metrics");
    assert_eq!(status, 200);
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

/// The hit rate (percent) over the next two seconds.
fn hit_rate(w: &World) -> f64 {
    let (h0, m0) = hits_and_misses(w);
    std::thread::sleep(Duration::from_secs(2));
    let (h1, m1) = hits_and_misses(w);
    let (h, m) = (h1 - h0, m1 - m0);
    assert!(
        h + m > 1000.0,
        "too few queries in a second: {h} hits, {m} misses"
    );
    100.0 * h / (h + m)
}

#[test]
fn a_rolling_update_under_load_loses_no_query_and_keeps_the_rules() {
    let w = world();
    let base = corefile_base(false);
    let args = daemonset_args("169.254.20.10,10.96.0.10", &[]);
    // The old version: the same build in another file.
    let old_exe = w.dir.join("node-cache-old");
    std::fs::copy(env!("CARGO_BIN_EXE_node-cache"), &old_exe).unwrap();

    let (mut current, _) = start_node_cache_exe(&w, "gen0", &base, &args, &old_exe);
    current.expect(READY, 1, WAIT);
    current.expect("Added back nodelocaldns rule", 24, WAIT);

    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Samples::default());
    sample_rules(&w.node, 24, stop.clone(), samples.clone());

    let mut spec = LoadSpec::new("169.254.20.10:53".parse().unwrap());
    spec.udp_rate = 20_000.0;
    spec.tcp_connections = 200;
    spec.tcp_rate = 5.0;
    spec.names = LoadSpec::pattern(NAMES, "rollout.example.com.");
    // The load's sockets live in the pod's namespace.
    let pod = std::fs::File::open(format!("/run/netns/{}", w.pod.0)).unwrap();
    let load = background::start(spec, 1, move || {
        nix::sched::setns(&pod, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut warming = Vec::new();
    loop {
        let r = hit_rate(&w);
        warming.push(format!("{r:.1}"));
        if r >= 95.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cache never warmed up: {warming:?}"
        );
    }

    let exe = Path::new(env!("CARGO_BIN_EXE_node-cache")).to_path_buf();
    let mut rates = Vec::new();
    let mut past = Vec::new();
    for round in 0..=RESTARTS {
        let before = hit_rate(&w);
        let old_pid = current.child.id();
        let tag = format!("gen{}", round + 1);
        let mut next = if round % 2 == 0 {
            // As the DaemonSet does it: the old pod terminates, the new one is created.
            current.signal("TERM");
            current.expect("SIGTERM: waiting up to 20s for a successor", 1, WAIT);
            start_node_cache_exe(&w, &tag, &base, &args, &exe).0
        } else {
            start_node_cache_exe(&w, &tag, &base, &args, &exe).0
        };
        next.expect(
            &format!("handoff: taking over the sockets of process {old_pid}"),
            1,
            WAIT,
        );
        next.expect("handoff: took over from process", 1, WAIT);
        assert_eq!(current.wait_exit(), 0, "round {round}");
        assert!(
            !current.seen.iter().any(|l| l.contains("Tearing down")),
            "round {round}: {:#?}",
            current.seen
        );
        past.push(std::mem::replace(&mut current, next));
        let after = hit_rate(&w);
        eprintln!(
            "hand-off {round} ({}): hit rate {before:.1}% before, {after:.1}% after",
            if round == 0 { "upgrade" } else { "restart" }
        );
        rates.push((before, after));
    }

    let report = load.stop().expect("the load ran");
    // What went wrong, if anything, in any generation's words.
    past.push(current);
    for (generation, p) in past.iter_mut().enumerate() {
        while let Ok(l) = p.lines.try_recv() {
            p.seen.push(l);
        }
        for l in p
            .seen
            .iter()
            .filter(|l| l.contains("[ERROR]") || l.contains("panic"))
        {
            eprintln!("gen{generation}: {l}");
        }
    }
    stop.store(true, Ordering::SeqCst);
    let taken = samples.taken.load(Ordering::SeqCst);
    eprintln!(
        "rules: {taken} samples, fewest {} of 24, {} short, {} without the link",
        samples.fewest.load(Ordering::SeqCst),
        samples.short.load(Ordering::SeqCst),
        samples.no_link.load(Ordering::SeqCst)
    );
    eprintln!("load: {report}");
    assert!(taken > 100, "{taken} samples");
    assert_eq!(samples.short.load(Ordering::SeqCst), 0);
    assert_eq!(samples.no_link.load(Ordering::SeqCst), 0);
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

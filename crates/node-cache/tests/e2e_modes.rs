//! node-cache end to end in each way clusters run it: iptables, nftables (`-nftables`),
//! IPv6-only, dual-stack and IPVS (here dual-stack too), in the network namespaces of
//! `e2e_world` (pod, node, kube-dns; both families on both links):
//!
//! ```text
//!   pod 10.0.1.2, fd01::2 ── veth ── 10.0.1.1, fd01::1 node 10.0.2.1, fd02::1 ── veth ── kube-dns
//!                      nodelocaldns: the mode's -localip addresses     10.0.2.2, fd02::2
//! ```
//!
//! The node also holds a stand-in for kube-proxy in nftables mode (`table ip kube-proxy`,
//! `table ip6 kube-proxy`, each with a `ct state` rule), which turns connection tracking on in
//! the node's namespace, so that the check that the pod's queries are not tracked can fail.
//!
//! Each mode makes the same checks: the rules (or the table) exactly as expected, the
//! addresses on the link and usable, answers on every listen address over UDP and TCP, none of
//! the pod's queries in `conntrack -L` while a control packet is, `/health`, both metrics
//! ports, a stubDomains edit taking effect without a restart, and teardown. The modes run one
//! after the other (one world at a time).

use std::time::Duration;

use e2e_support::*;
use e2e_world::*;
use hickory_proto::rr::RecordType;

mod e2e_support;
mod e2e_world;
mod manifest;
mod nft_expect;

/// The IPv6 listen address of these tests, and kube-dns's IPv6 ClusterIP.
const LOCAL6: &str = "fd00::10";
const KUBEDNS_IP6: &str = "fd00::a";

#[derive(Debug)]
struct Mode {
    tag: &'static str,
    localip: String,
    ipvs: bool,
    nftables: bool,
    v6_only: bool,
}

/// The ConfigMap Corefile after the installer's `sed` for `mode`. IPv6-only also brackets the
/// address of `health`, as Kubernetes' NodeLocal DNSCache page tells IPv6 users to.
fn base_corefile(mode: &Mode) -> String {
    let mut text = manifest::configmap_corefile();
    let (local, server) = if mode.v6_only {
        text = text.replace(
            "health __PILLAR__LOCAL__DNS__:8080",
            "health [__PILLAR__LOCAL__DNS__]:8080",
        );
        (LOCAL6, KUBEDNS_IP6)
    } else {
        (LOCAL, KUBEDNS_IP)
    };
    let text = text
        .replace("__PILLAR__LOCAL__DNS__", local)
        .replace("__PILLAR__DNS__DOMAIN__", "cluster.local");
    if mode.ipvs {
        text.replace(",__PILLAR__DNS__SERVER__", "")
            .replace("__PILLAR__CLUSTER__DNS__", KUBEDNS_IP)
    } else {
        text.replace("__PILLAR__DNS__SERVER__", server)
    }
}

/// `-localip` of deploy/nodelocaldns-dualstack.yaml after the installer's substitutions, once
/// it is shown that the file is deploy/nodelocaldns.yaml with only that argument changed.
fn dual_stack_localip() -> String {
    let read = |f: &str| std::fs::read_to_string(manifest::repo().join("deploy").join(f)).unwrap();
    let (dual, single) = (
        read("nodelocaldns-dualstack.yaml"),
        read("nodelocaldns.yaml"),
    );
    assert_eq!(dual.lines().count(), single.lines().count());
    let changed: Vec<(&str, &str)> = dual
        .lines()
        .zip(single.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    let (dual_args, single_args) = changed[0];
    let value = |line: &str| {
        let rest = line.split("\"-localip\", \"").nth(1).unwrap();
        rest.split('"').next().unwrap().to_string()
    };
    assert_eq!(
        dual_args.replace(&value(dual_args), ""),
        single_args.replace(&value(single_args), ""),
        "only the -localip value differs"
    );
    value(dual_args)
        .replace("__PILLAR__IPV6__LOCAL__DNS__", LOCAL6)
        .replace("__PILLAR__IPV6__DNS__SERVER__", KUBEDNS_IP6)
        .replace("__PILLAR__LOCAL__DNS__", LOCAL)
        .replace("__PILLAR__DNS__SERVER__", KUBEDNS_IP)
}

/// kube-proxy in nftables mode, as far as this test needs it: its tables, each with a filter
/// chain that looks at connection state, as kube-proxy's `filter-input` does (which makes the
/// kernel track connections in the namespace).
fn kube_proxy_stand_in(node: &Ns) {
    for family in ["ip", "ip6"] {
        for cmd in [
            vec!["nft", "add", "table", family, "kube-proxy"],
            vec![
                "nft",
                "add",
                "chain",
                family,
                "kube-proxy",
                "filter-input",
                "{ type filter hook input priority -110; }",
            ],
            vec![
                "nft",
                "add",
                "rule",
                family,
                "kube-proxy",
                "filter-input",
                "ct",
                "state",
                "new",
                "counter",
            ],
        ] {
            let o = node.exec(&cmd);
            assert!(
                o.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

/// `conntrack -L` of both families in the node's namespace.
fn conntrack(node: &Ns) -> String {
    let mut all = String::new();
    for family in ["ipv4", "ipv6"] {
        let o = node.exec(&["conntrack", "-L", "-f", family]);
        assert!(
            o.status.success(),
            "conntrack: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        all.push_str(&String::from_utf8_lossy(&o.stdout));
    }
    all
}

/// One datagram from the pod to `to`, which nothing answers: a flow the node tracks.
fn control_packet(pod: &Ns, to: &str) {
    let to: std::net::SocketAddr = to.parse().unwrap();
    pod.inside(move || {
        let from = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
        let s = std::net::UdpSocket::bind(from).unwrap();
        s.send_to(b"not dns", to).unwrap();
    });
}

fn listed_table(node: &Ns) -> Option<String> {
    let o = node.exec(&["nft", "list", "table", "inet", "nodelocaldns"]);
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn run(mode: Mode) {
    let w = world();
    kube_proxy_stand_in(&w.node);
    if mode.ipvs {
        // kube-proxy's IPVS service address stands for kube-dns: routed to it.
        w.node.ip(&[
            "route",
            "add",
            &format!("{KUBEDNS_IP}/32"),
            "via",
            "10.0.2.2",
        ]);
    }
    let ips: Vec<&str> = mode.localip.split(',').collect();
    let (v4, v6): (Vec<&str>, Vec<&str>) = ips.iter().partition(|ip| !ip.contains(':'));
    let mut args = daemonset_args(&mode.localip, &["-handoffwait=0s"]);
    if mode.nftables {
        args.push("-nftables".to_string());
    }
    let upstream = if mode.v6_only { UPSTREAM6 } else { "10.0.2.2" };
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_node-cache"));
    let (mut nc, etc) =
        start_node_cache_at(&w, mode.tag, &base_corefile(&mode), &args, exe, upstream);
    let tag = mode.tag;
    nc.expect(READY, 1, WAIT);

    // The rules, or the table.
    if mode.nftables {
        nc.expect(
            "Added back nodelocaldns nftables table - inet nodelocaldns (",
            1,
            WAIT,
        );
        let listing = listed_table(&w.node).expect("the table");
        // Counters as at the start (the node's own probes may have run through some).
        assert_eq!(
            nft_expect::zero_counters(&nft_expect::without_fingerprint(&listing)),
            nft_expect::expected_listing(&ips),
            "{tag}"
        );
        assert_eq!(rules_of(&w.node, false), Vec::<String>::new(), "{tag}");
        assert_eq!(rules_of(&w.node, true), Vec::<String>::new(), "{tag}");
        assert!(
            !nc.seen
                .iter()
                .any(|l| l.contains("kube-proxy runs in nftables mode")),
            "{tag}"
        );
    } else {
        nc.expect("Added back nodelocaldns rule", 12 * ips.len(), WAIT);
        assert_eq!(
            sorted_by_table(rules_of(&w.node, false)),
            sorted_by_table(expected_rules(&v4)),
            "{tag}"
        );
        assert_eq!(
            sorted_by_table(rules_of(&w.node, true)),
            sorted_by_table(expected_rules(&v6)),
            "{tag}"
        );
        assert_eq!(listed_table(&w.node), None, "{tag}");
        assert!(
            nc.seen.iter().any(|l| l.contains(
                "kube-proxy runs in nftables mode on this node (table ip kube-proxy, table ip6 kube-proxy)"
            )),
            "{tag}: {}",
            nc.seen.join("\n")
        );
    }

    // The addresses: on the link, which stays down, none of them tentative.
    let addrs = w.node.ip(&["addr", "show", "dev", "nodelocaldns"]);
    for ip in &ips {
        let prefix = if ip.contains(':') { 128 } else { 32 };
        assert!(addrs.contains(&format!("{ip}/{prefix}")), "{tag}: {addrs}");
    }
    assert!(!addrs.contains("tentative"), "{tag}: {addrs}");
    assert!(!addrs.contains("state UP"), "{tag}: {addrs}");
    // Each server block listens on every address.
    let corefile = std::fs::read_to_string(etc.join("Corefile")).unwrap();
    for line in corefile
        .lines()
        .filter(|l| l.trim_start().starts_with("bind "))
    {
        for ip in &ips {
            assert!(
                line.split_whitespace().any(|w| w == *ip),
                "{tag}: {ip} not in {line:?}"
            );
        }
    }

    // Answers on every address, over UDP and TCP.
    for ip in &ips {
        let r = ask(
            &w.pod,
            ip,
            "kubernetes.default.svc.cluster.local.",
            RecordType::A,
        );
        assert_eq!(a_of(&r), vec!["10.96.0.1"], "{tag}: {ip}");
        let r = ask(&w.pod, ip, "www.example.com.", RecordType::A);
        assert_eq!(a_of(&r), vec!["203.0.113.7"], "{tag}: {ip}");
    }

    // None of that was tracked; a packet to the node's own address is.
    let control = if v4.is_empty() {
        ("[fd01::1]:5353", "dst=fd01::1 ")
    } else {
        ("10.0.1.1:5353", "dst=10.0.1.1 ")
    };
    control_packet(&w.pod, control.0);
    let tracked = conntrack(&w.node);
    assert!(
        tracked
            .lines()
            .any(|l| l.contains(control.1) && l.contains("dport=5353")),
        "{tag}: the control flow is tracked:\n{tracked}"
    );
    for ip in &ips {
        // (The node's own queries at startup, before the rules, may be tracked.)
        let pod = if ip.contains(':') {
            "fd01::2"
        } else {
            "10.0.1.2"
        };
        assert!(
            !tracked.contains(&format!("src={pod} dst={ip} ")),
            "{tag}: a query from the pod to {ip} was tracked:\n{tracked}"
        );
    }

    // Health where the ConfigMap puts it (the first address of the substitution), metrics.
    let health = match v4.first() {
        Some(ip) => format!("{ip}:8080"),
        None => format!("[{}]:8080", v6[0]),
    };
    let (status, body) = http_get(&w.pod, &health, "/health");
    assert_eq!((status, body.as_str()), (200, "OK"), "{tag}");
    let (status, body) = http_get(&w.pod, "10.0.1.1:9253", "/metrics");
    assert_eq!(status, 200, "{tag}");
    assert!(body.contains("coredns_dns_requests_total{"), "{tag}");
    let (status, body) = http_get(&w.pod, "10.0.1.1:9353", "/metrics");
    assert_eq!(status, 200, "{tag}");
    assert!(
        body.contains("coredns_nodecache_setup_errors_total{errortype=\"iptables\"} 0"),
        "{tag}: {body}"
    );

    // A stubDomains edit, picked up without a restart.
    add_acme_stub_domain(&mut nc, &etc);
    for ip in &ips {
        let r = ask(&w.pod, ip, "www.acme.local.", RecordType::A);
        assert_eq!(a_of(&r), vec!["198.51.100.4"], "{tag}: {ip}");
    }
    assert!(nc.child.try_wait().unwrap().is_none(), "{tag}: no restart");

    // Teardown: every rule of both families, the table, the link; kube-proxy's tables stay.
    nc.signal("TERM");
    nc.expect("Tearing down", 1, Duration::from_secs(30));
    assert_eq!(nc.wait_exit(), 0, "{tag}: {}", nc.seen.join("\n"));
    assert_eq!(rules_of(&w.node, false), Vec::<String>::new(), "{tag}");
    assert_eq!(rules_of(&w.node, true), Vec::<String>::new(), "{tag}");
    assert_eq!(listed_table(&w.node), None, "{tag}");
    assert!(
        w.node
            .exec(&["nft", "list", "table", "ip", "kube-proxy"])
            .status
            .success(),
        "{tag}"
    );
    assert!(!has_link(&w.node), "{tag}");
}

#[test]
fn iptables_mode() {
    run(Mode {
        tag: "iptables",
        localip: format!("{LOCAL},{KUBEDNS_IP}"),
        ipvs: false,
        nftables: false,
        v6_only: false,
    });
}

#[test]
fn nftables_mode_dual_stack() {
    run(Mode {
        tag: "nftables",
        localip: dual_stack_localip(),
        ipvs: false,
        nftables: true,
        v6_only: false,
    });
}

#[test]
fn ipv6_only() {
    run(Mode {
        tag: "ipv6",
        localip: format!("{LOCAL6},{KUBEDNS_IP6}"),
        ipvs: false,
        nftables: false,
        v6_only: true,
    });
}

#[test]
fn dual_stack_with_the_dual_stack_manifest() {
    let localip = dual_stack_localip();
    assert_eq!(
        localip,
        format!("{LOCAL},{KUBEDNS_IP},{LOCAL6},{KUBEDNS_IP6}")
    );
    run(Mode {
        tag: "dual",
        localip,
        ipvs: false,
        nftables: false,
        v6_only: false,
    });
}

#[test]
fn ipvs_mode_dual_stack() {
    // IPVS mode: only the link-local addresses; kube-dns is reached at its service address.
    run(Mode {
        tag: "ipvs",
        localip: format!("{LOCAL},{LOCAL6}"),
        ipvs: true,
        nftables: false,
        v6_only: false,
    });
}

//! node-cache end to end on a dual-stack node, in network namespaces this test creates and
//! deletes: the world of `e2e.rs` with IPv6 on the pod's link, and `-localip` holding the
//! IPv4 pair of the upstream DaemonSet plus an IPv6 pair (a listen address and the kube-dns
//! ClusterIP of the other family). The ConfigMap Corefile is the upstream one after the
//! installer's `sed`, unchanged: node-cache adds the IPv6 addresses to its `bind`.
//!
//! ```text
//!   pod 10.0.1.2, fd01::2 ── veth ── 10.0.1.1, fd01::1 node 10.0.2.1 ── veth ── kube-dns
//!                     nodelocaldns: 169.254.20.10, 10.96.0.10, fd00::10, fd00::a
//! ```

use std::time::Duration;

use e2e_support::*;
use e2e_world::*;
use hickory_proto::rr::RecordType;

mod e2e_support;
mod e2e_world;
mod manifest;

const LOCAL6: &str = "fd00::10";
const KUBEDNS_IP6: &str = "fd00::a";

/// The packet count of each node-local-dns `NOTRACK` rule in the `raw` table that matches
/// UDP to `ip` (from `iptables-save -c`, or `ip6tables-save -c`).
fn untracked_udp_packets(w: &World, ip: &str) -> u64 {
    let tool = if ip.contains(':') {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    let out = w.node.exec(&[tool, "-c", "-t", "raw"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let prefix = if ip.contains(':') { 128 } else { 32 };
    let needle = format!("-A PREROUTING -d {ip}/{prefix} -p udp");
    text.lines()
        .filter(|l| l.contains(&needle) && l.contains("NOTRACK"))
        .filter_map(|l| {
            let counters = l.strip_prefix('[')?.split(']').next()?;
            counters.split(':').next()?.parse::<u64>().ok()
        })
        .sum()
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

#[test]
fn node_cache_serves_both_families_from_one_process() {
    let w = world();
    // The pod's second family; no DAD on the veth, so the addresses work at once.
    w.node
        .ip(&["addr", "add", "fd01::1/64", "dev", "np0", "nodad"]);
    w.pod
        .ip(&["addr", "add", "fd01::2/64", "dev", "pp0", "nodad"]);
    w.pod
        .ip(&["-6", "route", "add", "default", "via", "fd01::1"]);

    let localip = dual_stack_localip();
    assert_eq!(
        localip,
        format!("{LOCAL},{KUBEDNS_IP},{LOCAL6},{KUBEDNS_IP6}")
    );
    let (mut nc, etc) = start_node_cache(
        &w,
        "dual",
        &corefile_base(false),
        &daemonset_args(&localip, &["-handoffwait=0s"]),
    );
    nc.expect(READY, 1, WAIT);
    nc.expect("Added back nodelocaldns rule", 48, WAIT);
    assert_eq!(
        sorted_by_table(rules(&w.node)),
        sorted_by_table(expected_rules(&[LOCAL, KUBEDNS_IP]))
    );
    assert_eq!(
        sorted_by_table(rules_of(&w.node, true)),
        sorted_by_table(expected_rules(&[LOCAL6, KUBEDNS_IP6]))
    );

    // The rendered Corefile listens on every address, the health endpoint stays on the first
    // IPv4 one (the ConfigMap's `health 169.254.20.10:8080`).
    let corefile = std::fs::read_to_string(etc.join("Corefile")).unwrap();
    assert!(
        corefile.contains(&format!(
            "bind {LOCAL} {KUBEDNS_IP} {LOCAL6} {KUBEDNS_IP6}\n"
        )),
        "{corefile}"
    );
    let addrs = w.node.ip(&["addr", "show", "dev", "nodelocaldns"]);
    for a in [LOCAL6, KUBEDNS_IP6] {
        assert!(addrs.contains(&format!("{a}/128")), "{addrs}");
    }
    assert!(!addrs.contains("tentative"), "{addrs}");

    let before: Vec<u64> = [LOCAL, LOCAL6]
        .iter()
        .map(|ip| untracked_udp_packets(&w, ip))
        .collect();
    for server in [LOCAL, KUBEDNS_IP, LOCAL6, KUBEDNS_IP6] {
        let r = ask(
            &w.pod,
            server,
            "kubernetes.default.svc.cluster.local.",
            RecordType::A,
        );
        assert_eq!(a_of(&r), vec!["10.96.0.1"], "{server}");
        let r = ask(&w.pod, server, "www.example.com.", RecordType::A);
        assert_eq!(a_of(&r), vec!["203.0.113.7"], "{server}");
    }
    // The pod's queries went through the NOTRACK rules of their own family.
    for (ip, was) in [LOCAL, LOCAL6].iter().zip(before) {
        let now = untracked_udp_packets(&w, ip);
        assert!(now >= was + 2, "{ip}: {was} -> {now}");
    }

    let (status, body) = http_get(&w.pod, "169.254.20.10:8080", "/health");
    assert_eq!((status, body.as_str()), (200, "OK"));

    nc.signal("TERM");
    nc.expect("Tearing down", 1, Duration::from_secs(30));
    assert_eq!(nc.wait_exit(), 0, "{}", nc.seen.join("\n"));
    assert_eq!(rules(&w.node), Vec::<String>::new());
    assert_eq!(rules_of(&w.node, true), Vec::<String>::new());
    assert!(
        !w.node
            .exec(&["ip", "link", "show", "nodelocaldns"])
            .status
            .success()
    );
}

//! node-cache end to end, in network namespaces this test creates and deletes:
//!
//! ```text
//!   pod 10.0.1.2 ── veth ── 10.0.1.1 node 10.0.2.1 ── veth ── 10.0.2.2-4 kube-dns
//!                            nodelocaldns: 169.254.20.10, 10.96.0.10
//! ```
//!
//! The node runs `node-cache` with the DaemonSet's arguments after the install substitution,
//! with `/etc` and `/tmp` of its own (bind mounts in the mount namespace `ip netns exec` gives
//! it): `/etc/coredns/Corefile.base` is the ConfigMap Corefile of deploy/nodelocaldns.yaml after
//! the same substitution, `/etc/kube-dns` the kube-dns ConfigMap directory, `/etc/resolv.conf`
//! names the fake node resolver. kube-dns is ferrodns, authoritative for cluster.local and
//! the reverse zones 10.in-addr.arpa and ip6.arpa, plus a fake node resolver and a stub-domain server. This machine has no
//! dummy link driver, so the test creates the `nodelocaldns` link (a bridge) as it would exist.

use std::time::Duration;

use e2e_support::*;
use e2e_world::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

mod e2e_support;
mod e2e_world;
mod manifest;

#[test]
fn node_cache_with_the_daemonsets_arguments() {
    let w = world();

    // iptables mode: both the link-local IP and the kube-dns ClusterIP.
    let (mut nc, etc) = start_node_cache(
        &w,
        "iptables",
        &corefile_base(false),
        &daemonset_args("169.254.20.10,10.96.0.10", &[]),
    );
    nc.expect(READY, 1, WAIT);
    // The rules go in once the pidfile exists: 12 per IP.
    nc.expect("Added back nodelocaldns rule", 24, WAIT);
    assert_eq!(
        sorted_by_table(rules(&w.node)),
        sorted_by_table(expected_rules(&[LOCAL, KUBEDNS_IP]))
    );
    let addrs = w.node.ip(&["addr", "show", "dev", "nodelocaldns"]);
    assert!(addrs.contains("169.254.20.10/32") && addrs.contains("10.96.0.10/32"));
    assert!(!addrs.contains("state UP"), "never set up: {addrs}");

    for server in [LOCAL, KUBEDNS_IP] {
        let r = ask(
            &w.pod,
            server,
            "kubernetes.default.svc.cluster.local.",
            RecordType::A,
        );
        assert_eq!(a_of(&r), vec!["10.96.0.1"], "{server}");
        assert!(r.metadata.authoritative, "kube-dns's AA comes through");
        let r = ask(&w.pod, server, "1.0.96.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(a_of(&r), vec!["kubernetes.default.svc.cluster.local."]);
        let v6 = format!("{V6_PTR_LABELS}.ip6.arpa.");
        let r = ask(&w.pod, server, &v6, RecordType::PTR);
        assert_eq!(a_of(&r), vec!["kubernetes.default.svc.cluster.local."]);
        let r = ask(
            &w.pod,
            server,
            "nope.default.svc.cluster.local.",
            RecordType::A,
        );
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        let r = ask(&w.pod, server, "www.example.com.", RecordType::A);
        assert_eq!(
            a_of(&r),
            vec!["203.0.113.7"],
            "external names from the node's resolvers"
        );
    }

    let (status, body) = http_get(&w.pod, "169.254.20.10:8080", "/health");
    assert_eq!((status, body.as_str()), (200, "OK"));
    let (status, body) = http_get(&w.pod, "10.0.1.1:9253", "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("coredns_dns_requests_total{"), "{body}");
    assert!(body.contains("coredns_cache_"), "{body}");
    let (status, body) = http_get(&w.pod, "10.0.1.1:9353", "/metrics");
    assert_eq!(status, 200);
    for kind in [
        "iptables",
        "iptables_lock",
        "interface_add",
        "interface_check",
        "configmap",
    ] {
        assert!(
            body.contains(&format!(
                "coredns_nodecache_setup_errors_total{{errortype=\"{kind}\"}}"
            )),
            "{kind}: {body}"
        );
    }

    // A stubDomains edit in the kube-dns ConfigMap directory: picked up within the 10 s poll,
    // then by the reload plugin, with no restart.
    let before = ask(&w.pod, LOCAL, "www.acme.local.", RecordType::A);
    assert_eq!(
        a_of(&before),
        vec!["203.0.113.7"],
        "acme.local from the node resolver first"
    );
    add_acme_stub_domain(&mut nc, &etc);
    let after = ask(&w.pod, LOCAL, "www.acme.local.", RecordType::A);
    assert_eq!(
        a_of(&after),
        vec!["198.51.100.4"],
        "acme.local from its stub server"
    );
    assert!(nc.child.try_wait().unwrap().is_none(), "no restart");

    // SIGTERM with no successor coming: it serves on for -handoffwait (20 s by default),
    // then removes every rule and the link.
    nc.signal("TERM");
    nc.expect("SIGTERM: waiting up to 20s for a successor", 1, WAIT);
    assert_eq!(rules(&w.node).len(), 24, "still in place while waiting");
    let r = ask(
        &w.pod,
        LOCAL,
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(a_of(&r), vec!["10.96.0.1"], "still answering while waiting");
    nc.expect("Tearing down", 1, Duration::from_secs(30));
    assert_eq!(nc.wait_exit(), 0, "{}", nc.seen.join("\n"));
    assert_eq!(rules(&w.node), Vec::<String>::new());
    assert!(!has_link(&w.node));

    // IPVS mode with -skipteardown: only the link-local IP, kube-dns reached at its ClusterIP.
    w.node
        .ip(&["link", "add", "nodelocaldns", "type", "bridge"]);
    w.node.ip(&[
        "route",
        "add",
        &format!("{KUBEDNS_IP}/32"),
        "via",
        "10.0.2.2",
    ]);
    let (mut nc, _) = start_node_cache(
        &w,
        "ipvs",
        &corefile_base(true),
        &daemonset_args("169.254.20.10", &["-skipteardown", "-handoffwait=0s"]),
    );
    nc.expect(READY, 1, WAIT);
    nc.expect("Added back nodelocaldns rule", 12, WAIT);
    assert_eq!(
        sorted_by_table(rules(&w.node)),
        sorted_by_table(expected_rules(&[LOCAL]))
    );
    let r = ask(
        &w.pod,
        LOCAL,
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(a_of(&r), vec!["10.96.0.1"]);
    nc.signal("TERM");
    assert_eq!(nc.wait_exit(), 0);
    assert_eq!(
        rules(&w.node).len(),
        12,
        "-skipteardown leaves the rules in place"
    );
    assert!(has_link(&w.node));
}

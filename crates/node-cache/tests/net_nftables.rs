//! nftables mode against the kernel, in throw-away network namespaces: the table written over
//! netlink reads back in `nft` as the iptables rules' equivalent, a check leaves a good table
//! alone and rewrites a damaged one, teardown removes exactly that table, and kube-proxy's
//! nftables tables are recognised.

mod net_support;
mod nft_expect;

use std::net::IpAddr;

use ferrodns_node_cache::nftables::{Ensured, Nftables, kube_proxy_tables};
use net_support::Ns;
use nft_expect::{expected_listing, without_fingerprint};

fn ips(s: &str) -> Vec<IpAddr> {
    s.split(',').map(|p| p.parse().unwrap()).collect()
}

/// `nft list table inet nodelocaldns` in `ns`, or `None` when there is no such table.
fn listed(ns: &Ns) -> Option<String> {
    let o = ns.exec(&["nft", "list", "table", "inet", "nodelocaldns"]);
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn the_table_reads_back_as_the_rules_and_is_kept_and_removed() {
    let ns = Ns::new("nft");
    let table = Nftables::new(&ips("169.254.20.10,fd00::10"), 53, 8080);
    let ns = &ns;
    let (steps, _log) = ns.block_on(|| async move {
        let first = table.ensure().await.unwrap();
        let written = listed(ns);
        let second = table.ensure().await.unwrap();
        // Someone deletes a rule (the first of the output chain).
        let handles = ns.exec(&[
            "nft",
            "-a",
            "list",
            "chain",
            "inet",
            "nodelocaldns",
            "output",
        ]);
        let text = String::from_utf8_lossy(&handles.stdout).into_owned();
        let handle = text
            .lines()
            .filter(|l| l.contains("notrack"))
            .find_map(|l| l.split("# handle ").nth(1))
            .unwrap()
            .trim()
            .to_string();
        let del = ns.exec(&[
            "nft",
            "delete",
            "rule",
            "inet",
            "nodelocaldns",
            "output",
            "handle",
            &handle,
        ]);
        assert!(del.status.success());
        let third = table.ensure().await.unwrap();
        let repaired = listed(ns);
        // Other tables are not touched by teardown.
        assert!(
            ns.exec(&["nft", "add", "table", "ip", "other"])
                .status
                .success()
        );
        let deleted = table.delete().await.unwrap();
        let after = listed(ns);
        let again = table.delete().await.unwrap();
        let other = ns
            .exec(&["nft", "list", "table", "ip", "other"])
            .status
            .success();
        (
            first, written, second, third, repaired, deleted, after, again, other,
        )
    });
    let (first, written, second, third, repaired, deleted, after, again, other) = steps;
    assert_eq!(first, Ensured::Written);
    let written = written.expect("the table after the first check");
    assert_eq!(
        without_fingerprint(&written),
        expected_listing(&["169.254.20.10", "fd00::10"])
    );
    assert_eq!(second, Ensured::Present, "a good table is left alone");
    assert_eq!(
        third,
        Ensured::Written,
        "a missing rule brings the table back"
    );
    assert_eq!(
        without_fingerprint(&repaired.unwrap()),
        expected_listing(&["169.254.20.10", "fd00::10"])
    );
    assert!(deleted);
    assert_eq!(after, None);
    assert!(!again, "nothing left to delete");
    assert!(other, "teardown removes only node-cache's table");
}

#[test]
fn kube_proxys_nftables_tables_are_recognised() {
    let ns = Ns::new("kp");
    let ns = &ns;
    let (found, _) = ns.block_on(|| async move {
        let before = kube_proxy_tables().await.unwrap();
        for family in ["ip", "ip6"] {
            assert!(
                ns.exec(&["nft", "add", "table", family, "kube-proxy"])
                    .status
                    .success()
            );
        }
        let after = kube_proxy_tables().await.unwrap();
        (before, after)
    });
    assert_eq!(found.0, Vec::<String>::new());
    assert_eq!(found.1, vec!["ip".to_string(), "ip6".to_string()]);
}

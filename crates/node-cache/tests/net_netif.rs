//! The `nodelocaldns` link over netlink, in throw-away network namespaces: a link that already
//! exists (of any type) gets the addresses; a missing one is created as a dummy, or, on a
//! kernel without the dummy driver, counted as upstream counts it; teardown deletes it.

mod net_support;

use std::net::IpAddr;

use ferrodns_node_cache::netif::{Ensured, Netif};
use ferrodns_node_cache::setup::{ErrorType, Network, NetworkOptions, SetupMetrics};
use net_support::Ns;

fn ips(s: &str) -> Vec<IpAddr> {
    s.split(',').map(|p| p.parse().unwrap()).collect()
}

fn interface_only(local: &str) -> NetworkOptions {
    let mut o = NetworkOptions::new(local, ips(local));
    o.setup_iptables = false;
    o
}

#[test]
fn an_existing_bridge_gets_the_addresses_stays_down_and_goes_at_teardown() {
    let ns = Ns::new("bridge");
    ns.ip(&["link", "add", "nodelocaldns", "type", "bridge"]);
    // One of the addresses is there already: fine.
    ns.ip(&["addr", "add", "10.96.0.10/32", "dev", "nodelocaldns"]);
    let metrics = SetupMetrics::unregistered();
    let opts = interface_only("169.254.20.10,10.96.0.10");
    let ((first, after_init, after_second), log) = ns.block_on(|| async {
        let net = Network::new(opts, metrics.clone());
        let netif = Netif::new("nodelocaldns", ips("169.254.20.10,10.96.0.10"));
        let first = netif.ensure().await;
        net.init().await;
        let after_init = ns.addrs("nodelocaldns");
        net.setup().await;
        let after_second = ns.addrs("nodelocaldns");
        net.teardown().await;
        (first, after_init, after_second)
    });
    assert_eq!(
        first,
        Ok(Ensured::Found {
            kind: Some("bridge".to_string())
        })
    );
    let addrs = after_init.unwrap();
    assert!(addrs.contains("inet 169.254.20.10/32 "), "{addrs}");
    assert!(addrs.contains("inet 10.96.0.10/32 "), "{addrs}");
    assert_eq!(addrs.lines().count(), 2, "{addrs}");
    assert_eq!(after_second.unwrap(), addrs);
    for t in ErrorType::ALL {
        assert_eq!(metrics.get(t), 0, "{t:?}");
    }
    // Announced once, at INFO, with its type; no "Added interface" (it was not added).
    assert_eq!(
        log.matches("[INFO] Found existing interface nodelocaldns of type bridge, using it\n")
            .count(),
        1,
        "{log}"
    );
    assert!(!log.contains("Added interface"), "{log}");
    assert!(log.contains("[INFO] Tearing down\n"), "{log}");
    assert_eq!(ns.link("nodelocaldns"), None, "deleted at teardown");
}

#[test]
fn the_link_is_never_set_up() {
    let ns = Ns::new("down");
    ns.ip(&["link", "add", "nodelocaldns", "type", "bridge"]);
    let opts = interface_only("169.254.20.10");
    ns.block_on(|| async {
        let net = Network::new(opts, SetupMetrics::unregistered());
        net.init().await;
    });
    let link = ns.link("nodelocaldns").unwrap();
    assert!(link.contains("state DOWN"), "{link}");
    assert!(!link.contains(",UP"), "{link}");
}

#[test]
fn ipv6_addresses_go_on_as_128s_on_a_veth_end() {
    let ns = Ns::new("veth6");
    ns.ip(&[
        "link",
        "add",
        "nodelocaldns",
        "type",
        "veth",
        "peer",
        "name",
        "nlpeer",
    ]);
    let netif = Netif::new("nodelocaldns", ips("fd00::10,fd00::53"));
    let ((ensured, again), _) = ns.block_on(|| async {
        let a = netif.ensure().await;
        let b = netif.ensure().await;
        (a, b)
    });
    assert_eq!(
        ensured,
        Ok(Ensured::Found {
            kind: Some("veth".to_string())
        })
    );
    assert_eq!(again, ensured);
    let addrs = ns.addrs("nodelocaldns").unwrap();
    assert!(addrs.contains("inet6 fd00::10/128 "), "{addrs}");
    assert!(addrs.contains("inet6 fd00::53/128 "), "{addrs}");
    ns.block_on(|| async { netif.remove().await.unwrap() });
    assert_eq!(ns.link("nodelocaldns"), None);
    // The veth pair goes as a whole.
    assert_eq!(ns.link("nlpeer"), None);
    // Removing again: upstream's "Link not found".
    let (again, _) = ns.block_on(|| async { netif.remove().await });
    assert_eq!(again.unwrap_err().to_string(), "Link not found");
}

#[test]
fn a_missing_link_is_created_as_a_dummy_or_counted_as_upstream_counts_it() {
    let ns = Ns::new("missing");
    let dummy = ns.has_dummy_driver();
    let metrics = SetupMetrics::unregistered();
    let opts = interface_only("169.254.20.10");
    let (_, log) = ns.block_on(|| async {
        let net = Network::new(opts, metrics.clone());
        net.init().await;
        net.setup().await;
    });
    if dummy {
        // A kernel with the driver: one dummy, down, with the address.
        let link = ns.link("nodelocaldns").unwrap();
        assert!(link.contains("dummy"), "{link}");
        assert!(link.contains("state DOWN"), "{link}");
        assert!(
            ns.addrs("nodelocaldns")
                .unwrap()
                .contains("inet 169.254.20.10/32 ")
        );
        assert_eq!(
            log.matches("[INFO] Added interface - nodelocaldns\n")
                .count(),
            1
        );
        assert_eq!(metrics.get(ErrorType::InterfaceAdd), 0);
    } else {
        // This machine's kernel: no dummy driver, so each pass fails to add it. Upstream's
        // accounting: interface_add and interface_check both, and "Added interface" anyway.
        assert_eq!(ns.link("nodelocaldns"), None);
        assert_eq!(metrics.get(ErrorType::InterfaceAdd), 2);
        assert_eq!(metrics.get(ErrorType::InterfaceCheck), 2);
        assert_eq!(
            log.matches(
                "[ERROR] Failed to add non-existent interface nodelocaldns: operation not supported\n\
                 [INFO] Added interface - nodelocaldns\n\
                 [ERROR] Error checking dummy device nodelocaldns - operation not supported\n"
            )
            .count(),
            2,
            "{log}"
        );
    }
    assert_eq!(metrics.get(ErrorType::Iptables), 0);
}

#[test]
fn teardown_keeps_what_the_flags_say_node_cache_does_not_manage() {
    let ns = Ns::new("keep");
    ns.ip(&["link", "add", "nodelocaldns", "type", "bridge"]);
    let rule = &ferrodns_node_cache::iptables::rules("169.254.20.10", "53", "8080")[0];
    let mut argv = vec!["iptables", "-w", "5", "-I", rule.chain, "-t", rule.table];
    argv.extend(rule.args.iter().map(String::as_str));
    assert!(ns.exec(&argv).status.success());
    let mut opts = NetworkOptions::new("169.254.20.10", ips("169.254.20.10"));
    opts.setup_interface = false;
    opts.setup_iptables = false;
    ns.block_on(|| async {
        let net = Network::new(opts, SetupMetrics::unregistered());
        net.init().await;
        net.setup().await;
        net.teardown().await;
    });
    assert!(ns.link("nodelocaldns").is_some());
    assert_eq!(ns.addrs("nodelocaldns").unwrap(), "");
    assert_eq!(ns.saved_rules(false).len(), 1);
}

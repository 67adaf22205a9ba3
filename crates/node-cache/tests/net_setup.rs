//! The setup loop, teardown and metrics: the error counter's five series, the `/metrics`
//! listener, the `-syncinterval` quirk, the pidfile gate and the periodic re-check, with real
//! iptables and links in throw-away network namespaces.

mod net_support;

use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrodns_node_cache::setup::{
    self, ErrorType, Network, NetworkOptions, SetupMetrics, SyncIntervalError, sync_period,
};
use ferrodns_plugin::Metrics;
use net_support::Ns;
use tokio::sync::watch;

fn ips(s: &str) -> Vec<IpAddr> {
    s.split(',').map(|p| p.parse().unwrap()).collect()
}

const SERIES: [&str; 5] = [
    "coredns_nodecache_setup_errors_total{errortype=\"iptables\"} 0\n",
    "coredns_nodecache_setup_errors_total{errortype=\"iptables_lock\"} 0\n",
    "coredns_nodecache_setup_errors_total{errortype=\"interface_add\"} 0\n",
    "coredns_nodecache_setup_errors_total{errortype=\"interface_check\"} 0\n",
    "coredns_nodecache_setup_errors_total{errortype=\"configmap\"} 0\n",
];

#[test]
fn the_counter_shows_five_series_at_zero_and_counts() {
    let metrics = Metrics::new();
    let m = SetupMetrics::register(&metrics);
    let text = metrics.encode();
    for s in SERIES {
        assert!(text.contains(s), "{s} missing from\n{text}");
    }
    assert!(
        text.contains("# TYPE coredns_nodecache_setup_errors counter\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "# HELP coredns_nodecache_setup_errors The number of errors during periodic network \
             setup for node-cache."
        ),
        "{text}"
    );
    m.configmap_error();
    m.inc(ErrorType::IptablesLock);
    m.inc(ErrorType::IptablesLock);
    let text = metrics.encode();
    assert!(text.contains("coredns_nodecache_setup_errors_total{errortype=\"configmap\"} 1\n"));
    assert!(text.contains("coredns_nodecache_setup_errors_total{errortype=\"iptables_lock\"} 2\n"));
    // A second registration is the same family.
    let again = SetupMetrics::register(&metrics);
    assert_eq!(again.get(ErrorType::Configmap), 1);
    // An unregistered counter counts but is exported nowhere.
    let lone = SetupMetrics::unregistered();
    lone.inc(ErrorType::Iptables);
    assert_eq!(lone.get(ErrorType::Iptables), 1);
    assert_eq!(m.get(ErrorType::Iptables), 0);
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_serves_the_whole_registry_or_logs_and_goes_on() {
    let metrics = Metrics::new();
    // A family registered elsewhere in the process shows too.
    let other: prometheus_client::metrics::counter::Counter =
        metrics.register("coredns_other_thing", "Other.", Default::default);
    other.inc();
    let addr = setup::serve_metrics("127.0.0.1:0", metrics.clone())
        .await
        .unwrap();
    let m = SetupMetrics::register(&metrics);
    m.inc(ErrorType::InterfaceAdd);
    let page = tokio::task::spawn_blocking(move || http_get(addr, "/metrics"))
        .await
        .unwrap();
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("coredns_other_thing_total 1\n"), "{page}");
    // The classic text format, with Go's process collector, as upstream's promhttp.Handler().
    assert!(
        page.contains("# TYPE coredns_other_thing_total counter\n"),
        "{page}"
    );
    assert!(!page.contains("# EOF"), "{page}");
    assert!(
        page.contains("# TYPE process_resident_memory_bytes gauge\n"),
        "{page}"
    );
    assert!(
        page.contains("coredns_nodecache_setup_errors_total{errortype=\"interface_add\"} 1\n"),
        "{page}"
    );
    let other_path = tokio::task::spawn_blocking(move || http_get(addr, "/health"))
        .await
        .unwrap();
    assert!(other_path.starts_with("HTTP/1.1 404 "), "{other_path}");

    // The port is taken: logged, startup goes on, and the family is not registered.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let err = setup::serve_metrics(&taken_addr, metrics.clone())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        format!("listen tcp {taken_addr}: bind: address already in use")
    );
    let fresh = Metrics::new();
    let log = net_support::LogBuf::default();
    let guard = net_support::capture_here(&log);
    let lone = setup::init_metrics(&taken_addr, &fresh).await;
    drop(guard);
    lone.inc(ErrorType::Iptables);
    assert!(!fresh.encode().contains("nodecache"), "{}", fresh.encode());
    assert_eq!(
        log.text(),
        format!(
            "[ERROR] Failed to start metrics handler: listen tcp {taken_addr}: bind: address \
             already in use\n"
        )
    );
    // `-metrics-listen-address 0`, the way users switch it off (kubernetes/dns#542).
    assert_eq!(
        setup::serve_metrics("0", metrics.clone())
            .await
            .unwrap_err(),
        "listen tcp: address 0: missing port in address"
    );
    // init_metrics on a free port registers the family.
    let fresh = Metrics::new();
    let _ = setup::init_metrics("127.0.0.1:0", &fresh).await;
    for s in SERIES {
        assert!(fresh.encode().contains(s));
    }
}

#[test]
fn sync_interval_reads_nanoseconds_as_seconds_as_upstream() {
    assert_eq!(sync_period("60ns"), Ok(Duration::from_secs(60)));
    assert_eq!(sync_period("30ns"), Ok(Duration::from_secs(30)));
    assert_eq!(sync_period("1ns"), Ok(Duration::from_secs(1)));
    assert_eq!(setup::DEFAULT_SYNC_PERIOD, Duration::from_secs(60));
    // 60 s = 6e10 ns, times 1e9 wraps in 64 bits: 4_659_767_778_871_345_152 ns, ~147 years.
    assert_eq!(
        sync_period("60s"),
        Ok(Duration::from_nanos(4_659_767_778_871_345_152))
    );
    assert_eq!(sync_period("0"), Err(SyncIntervalError::NonPositive));
    assert_eq!(sync_period("0s"), Err(SyncIntervalError::NonPositive));
    assert_eq!(sync_period("-5ns"), Err(SyncIntervalError::NonPositive));
    assert_eq!(
        sync_period("60").unwrap_err().to_string(),
        "time: missing unit in duration \"60\""
    );
}

#[test]
fn options_come_from_the_flags() {
    let args: Vec<String> = [
        "-localip",
        "169.254.20.10,10.96.0.10",
        "-dns.port",
        "1053",
        "-health-port",
        "9090",
        "-interfacename",
        "nlcache",
        "-setupiptables=false",
        "-syncinterval",
        "30ns",
        "-pidfile",
        "/tmp/x.pid",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let p = ferrodns_node_cache::flags::parse(&args).unwrap();
    let o = NetworkOptions::from_params(&p);
    assert_eq!(o.local_ip_str, "169.254.20.10,10.96.0.10");
    assert_eq!(o.local_ips, ips("169.254.20.10,10.96.0.10"));
    assert_eq!(o.local_port, "1053");
    assert_eq!(o.health_port, "9090");
    assert_eq!(o.interface_name, "nlcache");
    assert!(o.setup_interface && !o.setup_iptables);
    assert_eq!(o.sync_period, Duration::from_secs(30));
    assert_eq!(
        o.pidfile.as_deref(),
        Some(std::path::Path::new("/tmp/x.pid"))
    );
    let net = Network::new(o, SetupMetrics::unregistered());
    assert_eq!(net.rules().len(), 24);
    assert_eq!(net.rules()[0].args[5], "1053");
    assert_eq!(net.rules()[10].args[5], "9090");
    // The defaults: 60 s (the flag's 60ns), no pidfile.
    let p = ferrodns_node_cache::flags::parse(&["-localip".to_string(), "fd00::10".to_string()])
        .unwrap();
    let o = NetworkOptions::from_params(&p);
    assert_eq!(o.sync_period, Duration::from_secs(60));
    assert_eq!(o.pidfile, None);
    assert_eq!(o.interface_name, "nodelocaldns");
    assert!(o.setup_interface && o.setup_iptables);
}

#[test]
fn a_zero_period_turns_the_check_off_instead_of_crashing() {
    let mut o = NetworkOptions::new("169.254.20.10", ips("169.254.20.10"));
    // Nothing may touch this namespace.
    o.setup_interface = false;
    o.setup_iptables = false;
    o.sync_period = Duration::ZERO;
    let net = Network::new(o, SetupMetrics::unregistered());
    let log = net_support::LogBuf::default();
    // One poll: the loop logs and then waits (for a stop that never comes) instead of ticking.
    let polled = net_support::capture(&log, || {
        futures_util::FutureExt::now_or_never(Box::pin(net.run_periodic()))
    });
    assert!(polled.is_none(), "the loop waits for a stop");
    assert!(
        log.text().contains(
            "[ERROR] non-positive interval for NewTicker: the periodic interface/iptables check \
             is off\n"
        ),
        "{}",
        log.text()
    );
}

fn one_ip_in(ns: &Ns) -> NetworkOptions {
    let mut o = NetworkOptions::new("169.254.20.10", ips("169.254.20.10"));
    o.iptables_command = Some(ns.iptables_command(false));
    o
}

/// Poll `f` every 100 ms until it holds or `limit` passes.
async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f()
}

#[test]
fn the_first_full_setup_waits_for_the_pidfile_then_teardown_removes_everything() {
    let ns = Ns::new("pidfile");
    ns.ip(&["link", "add", "nodelocaldns", "type", "bridge"]);
    let dir = std::env::temp_dir().join(format!("nctest-pid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("node-cache.pid");
    let _ = std::fs::remove_file(&pidfile);
    let mut opts = one_ip_in(&ns);
    opts.pidfile = Some(pidfile.clone());
    opts.sync_period = Duration::from_secs(3600);
    let metrics = SetupMetrics::unregistered();
    // Borrowed into the future, which owns the log capture it waits on.
    let (ns, pidfile, metrics) = (&ns, &pidfile, &metrics);
    let (checks, log) = ns.block_on_logged(|log| async move {
        let net = Arc::new(Network::new(opts, metrics.clone()));
        net.init().await;
        let after_init = (ns.saved_rules(false).len(), ns.addrs("nodelocaldns"));
        // A stop channel that never fires: teardown stops the loop itself.
        let (_keep, never) = watch::channel(false);
        net.spawn_periodic(never);
        // The loop has looked for the pidfile twice, a second apart (bounded wait).
        let waiting = format!(
            "[INFO] waiting for coredns pidfile '{}'\n",
            pidfile.display()
        );
        let looked_twice = eventually(Duration::from_secs(5), || {
            log.text().matches(&waiting).count() >= 2
        })
        .await;
        assert!(looked_twice, "{}", log.text());
        let while_waiting = ns.saved_rules(false).len();
        std::fs::write(pidfile, "1\n").unwrap();
        let t0 = Instant::now();
        let installed =
            eventually(Duration::from_secs(4), || ns.saved_rules(false).len() == 12).await;
        let took = t0.elapsed();
        net.teardown().await;
        (after_init, while_waiting, installed, took)
    });
    let ((init_rules, init_addrs), while_waiting, installed, took) = checks;
    // Init: the interface only.
    assert_eq!(init_rules, 0);
    assert!(init_addrs.unwrap().contains("inet 169.254.20.10/32 "));
    assert_eq!(while_waiting, 0, "no rule before the pidfile exists");
    assert!(
        installed,
        "rules within a poll of the pidfile appearing\n{log}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(
        log.contains(&format!(
            "[INFO] waiting for coredns pidfile '{}'\n",
            pidfile.display()
        )),
        "{log}"
    );
    assert_eq!(
        log.matches("[INFO] Added back nodelocaldns rule - ")
            .count(),
        12
    );
    // Teardown: stop the loop, then the rules, then the link.
    let tearing = log.find("[INFO] Tearing down\n").unwrap();
    let exiting = log
        .find("[WARNING] Exiting iptables/interface check goroutine\n")
        .unwrap();
    assert!(tearing < exiting, "{log}");
    assert_eq!(ns.saved_rules(false), Vec::<String>::new());
    assert_eq!(ns.link("nodelocaldns"), None);
    for t in ErrorType::ALL {
        assert_eq!(metrics.get(t), 0, "{t:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn each_period_puts_back_what_went_missing_until_stopped() {
    let ns = Ns::new("period");
    ns.ip(&["link", "add", "nodelocaldns", "type", "bridge"]);
    let mut opts = one_ip_in(&ns);
    opts.sync_period = sync_period("1ns").unwrap();
    let net_rules = ferrodns_node_cache::iptables::rules("169.254.20.10", "53", "8080");
    let victim = net_rules[4].clone();
    let metrics = SetupMetrics::unregistered();
    // Borrowed into the future, which owns the log capture it waits on.
    let (ns, victim, metrics) = (&ns, &victim, &metrics);
    let (checks, log) = ns.block_on_logged(|log| async move {
        let net = Arc::new(Network::new(opts, metrics.clone()));
        let (stop_tx, stop_rx) = watch::channel(false);
        net.spawn_periodic(stop_rx);
        // Without a pidfile nothing happens before the first tick (1 s).
        let before_tick = ns.saved_rules(false).len();
        // A pass adds the rules, then the address: wait for the end of the whole pass.
        let first = eventually(Duration::from_secs(3), || {
            ns.saved_rules(false).len() == 12
                && ns
                    .addrs("nodelocaldns")
                    .is_some_and(|a| a.contains("169.254.20.10/32"))
        })
        .await;
        // Someone deletes a rule and the address.
        let mut argv = vec![
            "iptables",
            "-w",
            "5",
            "-D",
            victim.chain,
            "-t",
            victim.table,
        ];
        argv.extend(victim.args.iter().map(String::as_str));
        assert!(ns.exec(&argv).status.success());
        ns.ip(&["addr", "del", "169.254.20.10/32", "dev", "nodelocaldns"]);
        let back = eventually(Duration::from_secs(3), || {
            ns.saved_rules(false).len() == 12
                && ns
                    .addrs("nodelocaldns")
                    .is_some_and(|a| a.contains("169.254.20.10/32"))
        })
        .await;
        // The caller's stop channel ends the loop.
        stop_tx.send_replace(true);
        let exited = eventually(Duration::from_secs(5), || {
            log.text()
                .contains("[WARNING] Exiting iptables/interface check goroutine\n")
        })
        .await;
        assert!(exited, "{}", log.text());
        // Stopped: a deleted rule stays deleted.
        assert!(ns.exec(&argv).status.success());
        // An observation window longer than the 1 s period (paused tokio time cannot stand in:
        // a pass runs real iptables processes).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after_stop = ns.saved_rules(false).len();
        net.teardown().await;
        (before_tick, first, back, after_stop)
    });
    let (before_tick, first, back, after_stop) = checks;
    assert_eq!(before_tick, 0);
    assert!(first, "{log}");
    assert!(back, "{log}");
    assert_eq!(after_stop, 11);
    assert_eq!(
        log.matches(&format!("[INFO] Added back nodelocaldns rule - {victim}\n"))
            .count(),
        2,
        "{log}"
    );
    assert_eq!(
        log.matches("[WARNING] Exiting iptables/interface check goroutine\n")
            .count(),
        1
    );
    assert_eq!(ns.saved_rules(false), Vec::<String>::new());
    for t in ErrorType::ALL {
        assert_eq!(metrics.get(t), 0, "{t:?}");
    }
}

#[test]
fn dual_stack_gets_rules_of_both_families_and_usable_ipv6_addresses() {
    let ns = Ns::new("dual");
    ns.ip(&["link", "add", "nodelocaldns", "type", "bridge"]);
    // An address left tentative by an earlier agent (added with DAD on a link that is down):
    // it can be neither bound nor reached until replaced.
    ns.ip(&["addr", "add", "fd00::a/128", "dev", "nodelocaldns"]);
    assert!(ns.addrs("nodelocaldns").unwrap().contains("tentative"));
    let local = "169.254.20.10,fd00::10,fd00::a";
    let mut opts = NetworkOptions::new(local, ips(local));
    opts.iptables_command = Some(ns.iptables_command(false));
    opts.ip6tables_command = Some(ns.iptables_command(true));
    let metrics = SetupMetrics::unregistered();
    let expected: Vec<Vec<String>> = [false, true]
        .iter()
        .map(|&v6| {
            let mut want: Vec<String> = ferrodns_node_cache::iptables::rules(local, "53", "8080")
                .iter()
                .filter(|r| r.ipv6 == v6)
                .map(net_support::saved_form)
                .collect();
            want.sort();
            want
        })
        .collect();
    let (ns, metrics) = (&ns, &metrics);
    let ((v4, v6, addrs, binds), log) = ns.block_on(|| async move {
        let net = Network::new(opts, metrics.clone());
        net.setup().await;
        let mut v4 = ns.saved_rules(false);
        let mut v6 = ns.saved_rules(true);
        v4.sort();
        v6.sort();
        let addrs = ns.addrs("nodelocaldns").unwrap_or_default();
        // The IPv6 listen addresses can be bound at once, on a link that is down.
        let binds: Vec<bool> = ["[fd00::10]:53", "[fd00::a]:53"]
            .iter()
            .map(|a| std::net::UdpSocket::bind(a).is_ok())
            .collect();
        net.teardown().await;
        (v4, v6, addrs, binds)
    });
    assert_eq!(v4, expected[0], "{log}");
    assert_eq!(v6, expected[1], "{log}");
    assert_eq!(v4.len(), 12);
    assert_eq!(v6.len(), 24);
    assert!(addrs.contains("inet 169.254.20.10/32 "), "{addrs}");
    for a in ["fd00::10/128", "fd00::a/128"] {
        let line = addrs.lines().find(|l| l.contains(a)).unwrap_or_default();
        assert!(
            line.contains("nodad") && !line.contains("tentative"),
            "{a}: {addrs}"
        );
    }
    assert_eq!(binds, [true, true], "{log}");
    assert_eq!(ns.saved_rules(false), Vec::<String>::new());
    assert_eq!(ns.saved_rules(true), Vec::<String>::new());
    assert_eq!(ns.link("nodelocaldns"), None);
    for t in ErrorType::ALL {
        assert_eq!(metrics.get(t), 0, "{t:?}: {log}");
    }
}

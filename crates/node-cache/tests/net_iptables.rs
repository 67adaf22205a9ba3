//! The iptables rules against the real `iptables` binary, in throw-away network namespaces:
//! order, idempotence, teardown of duplicates, the IPv6 tool, error accounting.

mod net_support;

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrodns_node_cache::iptables::{self, Ensured, Iptables};
use ferrodns_node_cache::setup::{ErrorType, Network, NetworkOptions, SetupMetrics};
use net_support::{Ns, saved_form};

const LOCAL: &str = "169.254.20.10,10.96.0.10";

fn ips(s: &str) -> Vec<IpAddr> {
    s.split(',').map(|p| p.parse().unwrap()).collect()
}

/// Every rule inserted at the top in list order: per table and chain, the saved order is the
/// list order reversed.
fn expected_saved(rules: &[iptables::Rule]) -> Vec<String> {
    let mut by_chain: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for r in rules {
        by_chain
            .entry((r.table, r.chain))
            .or_default()
            .insert(0, saved_form(r));
    }
    // iptables-save prints filter before raw here (table creation order in the namespace is
    // the order of first use, so compare per table/chain instead of globally).
    by_chain.into_values().flatten().collect()
}

fn sorted_by_chain(saved: &[String]) -> Vec<String> {
    let mut by_chain: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for line in saved {
        let mut w = line.split(' ');
        let table = w.next().unwrap_or("").to_string();
        let chain = w.nth(1).unwrap_or("").to_string();
        by_chain
            .entry((table, chain))
            .or_default()
            .push(line.clone());
    }
    by_chain.into_values().flatten().collect()
}

#[tokio::test]
async fn rules_go_on_top_in_list_order_once_and_every_copy_goes_at_teardown() {
    let ns = Ns::new("ipt");
    let ipt = Iptables::with_command(ns.iptables_command(false));
    let rules = iptables::rules(LOCAL, "53", "8080");
    assert_eq!(rules.len(), 24);

    for r in &rules {
        assert_eq!(ipt.ensure(r).await.unwrap(), Ensured::Inserted, "{r}");
    }
    let saved = ns.saved_rules(false);
    assert_eq!(saved.len(), 24, "{saved:#?}");
    assert_eq!(sorted_by_chain(&saved), expected_saved(&rules));
    // The very first rule of the list is the last one in PREROUTING; the last IP's last rule
    // tops raw OUTPUT.
    let prerouting: Vec<_> = saved
        .iter()
        .filter(|l| l.starts_with("raw -A PREROUTING"))
        .collect();
    assert_eq!(
        prerouting.last().unwrap().as_str(),
        "raw -A PREROUTING -d 169.254.20.10/32 -p tcp -m tcp --dport 53 -m comment --comment \
         \"NodeLocal DNS Cache: skip conntrack\" -j NOTRACK"
    );
    let raw_output: Vec<_> = saved
        .iter()
        .filter(|l| l.starts_with("raw -A OUTPUT"))
        .collect();
    assert_eq!(
        raw_output.first().unwrap().as_str(),
        "raw -A OUTPUT -s 10.96.0.10/32 -p tcp -m tcp --sport 8080 -m comment --comment \
         \"NodeLocal DNS Cache: skip conntrack\" -j NOTRACK"
    );

    // A second pass finds everything and changes nothing.
    for r in &rules {
        assert_eq!(ipt.ensure(r).await.unwrap(), Ensured::Present, "{r}");
    }
    assert_eq!(ns.saved_rules(false), saved);

    // Duplicates, as a flaky `-C` once made upstream add (kubernetes/dns#568).
    let cmd = |op: &str, r: &iptables::Rule| {
        let mut argv = vec!["iptables", "-w", "5", op, r.chain, "-t", r.table];
        argv.extend(r.args.iter().map(String::as_str));
        let o = ns.exec(&argv);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    cmd("-I", &rules[0]);
    cmd("-A", &rules[0]);
    cmd("-A", &rules[17]);
    assert_eq!(ns.saved_rules(false).len(), 27);

    let mut deleted = Vec::new();
    for r in &rules {
        deleted.push(ipt.delete_all(r).await.unwrap());
    }
    assert_eq!(deleted[0], 3);
    assert_eq!(deleted[17], 2);
    assert_eq!(deleted.iter().sum::<usize>(), 27);
    assert_eq!(ns.saved_rules(false), Vec::<String>::new());
    // Nothing left to delete.
    assert_eq!(ipt.delete_all(&rules[0]).await.unwrap(), 0);
    assert!(!ipt.check(&rules[0]).await.unwrap());
}

#[test]
fn ipv6_addresses_select_ip6tables_and_the_pass_logs_as_upstream() {
    let ns = Ns::new("ip6");
    let mut opts = NetworkOptions::new("fd00::10", ips("fd00::10"));
    opts.setup_interface = false;
    let metrics = SetupMetrics::unregistered();
    // No iptables command given: the tool is chosen by family, and runs in the namespace
    // because the runtime's thread has joined it.
    let (_, log) = ns.block_on(|| async {
        let net = Network::new(opts, metrics.clone());
        net.setup().await;
        net.setup().await;
    });
    let v6 = ns.saved_rules(true);
    assert_eq!(v6.len(), 12, "{v6:#?}");
    assert!(
        v6.iter()
            .all(|l| l.contains("-d fd00::10/128") || l.contains("-s fd00::10/128"))
    );
    assert_eq!(ns.saved_rules(false), Vec::<String>::new());
    for t in ErrorType::ALL {
        assert_eq!(metrics.get(t), 0, "{t:?}");
    }
    let added: Vec<_> = log
        .lines()
        .filter(|l| l.starts_with("[INFO] Added back nodelocaldns rule - "))
        .collect();
    assert_eq!(added.len(), 12, "{log}");
    assert_eq!(
        added[0],
        "[INFO] Added back nodelocaldns rule - {raw PREROUTING [-p tcp -d fd00::10 --dport 53 \
         -j NOTRACK -m comment --comment NodeLocal DNS Cache: skip conntrack]}"
    );
    let present = log
        .lines()
        .filter(|l| {
            l.starts_with("[DEBUG] iptables rule {")
                && l.ends_with("} for nodelocaldns already exists")
        })
        .count();
    assert_eq!(present, 12, "{log}");
}

/// A stand-in iptables that fails as told (it touches nothing). It is run as `/bin/sh <script>`,
/// not executed itself: a file just written by this multi-threaded test process may still be
/// open for writing in a child that another test is forking, and exec of it then fails with
/// "text file busy" (ETXTBSY). Its arguments keep their positions (`$1` is `-w`).
fn fake_iptables(dir: &std::path::Path, name: &str, script: &str) -> Vec<String> {
    let path = dir.join(name);
    std::fs::write(&path, format!("{script}\n")).unwrap();
    vec!["/bin/sh".to_string(), path.to_string_lossy().into_owned()]
}

#[test]
fn failures_are_counted_as_iptables_or_iptables_lock_and_logged() {
    let dir = std::env::temp_dir().join(format!("nctest-fake-ipt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let locked = fake_iptables(
        &dir,
        "locked",
        "echo 'Another app is currently holding the xtables lock. Stopped waiting after 5s.' >&2\nexit 4",
    );
    let broken = fake_iptables(&dir, "broken", "echo 'iptables: bad' >&2\nexit 2");
    // -C says absent, -I fails.
    let no_insert = fake_iptables(
        &dir,
        "noinsert",
        "case \"$3\" in -C) exit 1;; esac\necho 'insert refused' >&2\nexit 3",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = |command: &[String]| {
        let mut opts = NetworkOptions::new("169.254.20.10", ips("169.254.20.10"));
        // Never touch this namespace's links.
        opts.setup_interface = false;
        opts.iptables_command = Some(command.to_vec());
        let metrics = SetupMetrics::unregistered();
        let log = net_support::LogBuf::default();
        net_support::capture(&log, || {
            rt.block_on(async {
                let net = Network::new(opts, metrics.clone());
                net.setup().await;
                net.teardown().await;
            })
        });
        (metrics, log.text())
    };

    let (m, log) = run(&locked);
    // 12 on the pass, 12 more at teardown.
    assert_eq!(m.get(ErrorType::IptablesLock), 24);
    assert_eq!(m.get(ErrorType::Iptables), 0);
    assert!(
        log.contains(
            "[ERROR] Error checking/adding iptables rule {raw PREROUTING [-p tcp -d 169.254.20.10 \
             --dport 53 -j NOTRACK -m comment --comment NodeLocal DNS Cache: skip conntrack]}, \
             error - error checking rule: exit status 4: Another app is currently holding the \
             xtables lock. Stopped waiting after 5s.\n"
        ),
        "{log}"
    );
    assert!(
        log.contains("[ERROR] Failed deleting iptables rule {raw PREROUTING [-p tcp"),
        "{log}"
    );

    let (m, _) = run(&broken);
    assert_eq!(m.get(ErrorType::Iptables), 24);
    assert_eq!(m.get(ErrorType::IptablesLock), 0);

    let (m, log) = run(&no_insert);
    // The pass fails to insert each of the 12; teardown finds nothing to delete.
    assert_eq!(m.get(ErrorType::Iptables), 12);
    assert!(
        log.contains("error - error appending rule: exit status 3: insert refused\n"),
        "{log}"
    );

    let (m, log) = run(&["/nonexistent/iptables".to_string()]);
    assert_eq!(m.get(ErrorType::Iptables), 24);
    assert!(log.contains("exec: \"/nonexistent/iptables\""), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

//! The setup table of CoreDNS's bind plugin (setup_test.go, Linux: `lo` has 127.0.0.1 and ::1),
//! in our words, plus error texts checked against CoreDNS v1.14.7 and interface expansion on a
//! made-up interface list.

use ferrodns_plugin::{BlockSettings, SetupError};
use ferrodns_plugin_bind::{DESCRIPTOR, Interface, setup_with_interfaces};
use ferrodns_plugin_test as testkit;

fn hosts(input: &str) -> Result<Vec<String>, String> {
    let block = testkit::setup(&DESCRIPTOR, input).map_err(|e| e.to_string())?;
    assert!(block.bound, "{input}");
    assert!(block.plugins.is_empty(), "{input}: bind has no handler");
    Ok(block.listen_hosts)
}

#[test]
fn upstream_table() {
    let cases: [(&str, Option<&[&str]>); 8] = [
        ("bind 1.2.3.4", Some(&["1.2.3.4"])),
        ("bind", None),
        ("bind 1.2.3.invalid", None),
        ("bind 1.2.3.4 ::5", Some(&["1.2.3.4", "::5"])),
        (
            "bind ::1 1.2.3.4 ::5 127.9.9.0",
            Some(&["::1", "1.2.3.4", "::5", "127.9.9.0"]),
        ),
        ("bind ::1 1.2.3.4 ::5 127.9.9.0 noone", None),
        ("bind 1.2.3.4 lo", Some(&["1.2.3.4", "127.0.0.1", "::1"])),
        ("bind lo {\nexcept 127.0.0.1\n}\n", Some(&["::1"])),
    ];
    for (input, want) in cases {
        match (hosts(input), want) {
            (Ok(got), Some(want)) => assert_eq!(got, want, "{input}"),
            (Err(_), None) => {}
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn more_lines_and_excepts() {
    let cases: [(&str, &[&str]); 7] = [
        // Lines are put together in order, without removing duplicates.
        ("bind 127.0.0.1\nbind ::1", &["127.0.0.1", "::1"]),
        (
            "bind lo\nbind 127.0.0.1",
            &["127.0.0.1", "::1", "127.0.0.1"],
        ),
        // An except only applies to its own line.
        ("bind lo {\n except ::1\n}\nbind ::1", &["127.0.0.1", "::1"]),
        // Everything excepted: no address at all.
        ("bind lo {\n except lo\n}", &[]),
        // Addresses compare as text.
        ("bind ::1 {\n except 0::1\n}", &["::1"]),
        // The last except line of a block wins.
        (
            "bind lo {\n except 127.0.0.1\n except ::1\n}",
            &["127.0.0.1"],
        ),
        // Literal addresses are kept as written.
        ("bind 0::1 ::FFFF:1.2.3.4", &["0::1", "::FFFF:1.2.3.4"]),
    ];
    for (input, want) in cases {
        assert_eq!(
            hosts(input).unwrap_or_else(|e| panic!("{input}: {e}")),
            want,
            "{input}"
        );
    }
}

#[test]
fn error_texts() {
    // As CoreDNS v1.14.7 prints them: no position.
    let cases = [
        (
            "bind",
            "plugin/bind: at least one address or interface name is expected",
        ),
        (
            "bind 1.2.3.invalid",
            "plugin/bind: not a valid IP address or interface name: \"1.2.3.invalid\"",
        ),
        (
            "bind noone",
            "plugin/bind: not a valid IP address or interface name: \"noone\"",
        ),
        (
            "bind fe80::1%eth0",
            "plugin/bind: not a valid IP address or interface name: \"fe80::1%eth0\"",
        ),
        (
            "bind 01.2.3.4",
            "plugin/bind: not a valid IP address or interface name: \"01.2.3.4\"",
        ),
        (
            "bind lo {\nexcept\n}",
            "plugin/bind: at least one address or interface must be given to except subdirective",
        ),
        ("bind lo {\nfoo\n}", "plugin/bind: invalid option \"foo\""),
        (
            "bind lo {\nexcept 1.2.3.x\n}",
            "plugin/bind: not a valid IP address or interface name: \"1.2.3.x\"",
        ),
        (
            "bind \"a\\\"b\"",
            "plugin/bind: not a valid IP address or interface name: \"a\\\"b\"",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(hosts(input).expect_err(input), want, "{input}");
    }
    // An empty block is fine.
    assert_eq!(hosts("bind lo {\n}").expect("ok"), ["127.0.0.1", "::1"]);
}

#[test]
fn ip_syntax_like_go() {
    // Go's net.ParseIP on the same texts.
    for ok in [
        "::0001",
        "1:2:3:4:5:6:1.2.3.4",
        "::ffff:1.2.3.4",
        "::",
        "0.0.0.0",
    ] {
        assert!(hosts(&format!("bind {ok}")).is_ok(), "{ok}");
    }
    for bad in [
        "1.2.3.04",
        "1:2:3:4:5:6:7:8:9",
        "::1%lo",
        "1.2.3",
        "0x1.2.3.4",
        "[::1]",
    ] {
        assert!(hosts(&format!("bind {bad}")).is_err(), "{bad}");
    }
}

/// Run setup on a made-up interface list.
fn with_interfaces(input: &str, ifaces: &[Interface]) -> Result<Vec<String>, SetupError> {
    let mut block = BlockSettings::default();
    testkit::parse_in(&mut block, "bind", input, |c| {
        setup_with_interfaces(c, ifaces)
    })?;
    Ok(block.listen_hosts)
}

#[test]
fn interface_expansion() {
    let ifaces = vec![
        Interface {
            name: "eth0".into(),
            addrs: vec![
                "192.0.2.2".parse().expect("ip"),
                "fd00::2".parse().expect("ip"),
                "fe80::fc:ff:fe00:1".parse().expect("ip"),
            ],
        },
        Interface {
            name: "ifb0".into(),
            addrs: vec![],
        },
    ];
    assert_eq!(
        with_interfaces("bind eth0", &ifaces).expect("ok"),
        ["192.0.2.2", "fd00::2", "fe80::fc:ff:fe00:1%eth0"]
    );
    // A known interface without addresses adds nothing and is no error.
    assert_eq!(
        with_interfaces("bind ifb0 10.0.0.1", &ifaces).expect("ok"),
        ["10.0.0.1"]
    );
    assert_eq!(
        with_interfaces("bind eth0 {\n except 192.0.2.2\n}", &ifaces).expect("ok"),
        ["fd00::2", "fe80::fc:ff:fe00:1%eth0"]
    );
    // A zoned address is not an IP address to Go either, even in an except list.
    assert_eq!(
        with_interfaces("bind eth0 {\n except fe80::fc:ff:fe00:1%eth0\n}", &ifaces)
            .expect_err("zone")
            .to_string(),
        "plugin/bind: not a valid IP address or interface name: \"fe80::fc:ff:fe00:1%eth0\""
    );
    assert_eq!(
        with_interfaces("bind lo", &ifaces)
            .expect_err("no lo")
            .to_string(),
        "plugin/bind: not a valid IP address or interface name: \"lo\""
    );
}

#[test]
fn real_interfaces_include_addressless_ones() {
    let ifaces = ferrodns_plugin_bind::interfaces().expect("interfaces");
    let lo = ifaces.iter().find(|i| i.name == "lo").expect("lo");
    assert!(lo.addrs.contains(&"127.0.0.1".parse().expect("ip")));
    // Every name the kernel lists is known, with or without an address.
    if let Ok(dir) = std::fs::read_dir("/sys/class/net") {
        for e in dir.flatten() {
            let name = e.file_name().into_string().expect("utf-8 name");
            assert!(ifaces.iter().any(|i| i.name == name), "{name}");
            assert!(hosts(&format!("bind {name}")).is_ok(), "{name}");
        }
    }
}

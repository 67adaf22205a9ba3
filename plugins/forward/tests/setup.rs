//! The setup tables of CoreDNS's forward plugin (setup_test.go, setup_policy_test.go), in our
//! words, with the exact error texts of CoreDNS v1.14.7.

use std::time::Duration;

use ferrodns_plugin_forward::DESCRIPTOR;
use ferrodns_plugin_forward::config::{self, Config, Policy, split_zone};
use ferrodns_plugin_test as testkit;

/// Parse `text` as the block's forward lines.
fn parse(text: &str) -> Result<Vec<Config>, String> {
    let mut d = testkit::dispenser("forward", text).map_err(|e| e.to_string())?;
    config::parse_all(&mut d).map_err(|e| e.to_string())
}

fn one(text: &str) -> Config {
    match parse(text) {
        Ok(mut v) => v.remove(0),
        Err(e) => panic!("{text}: {e}"),
    }
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("{text}: accepted"),
        Err(e) => e,
    }
}

/// The whole setup (as the server runs it), for errors raised after parsing.
fn setup_err(text: &str) -> String {
    match testkit::setup(&DESCRIPTOR, text) {
        Ok(_) => panic!("{text}: accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn positive() {
    // (input, from, max_fails, force_tcp, prefer_udp, hc_domain)
    let cases: &[(&str, &str, u32, bool, bool, &str)] = &[
        ("forward . 127.0.0.1", ".", 2, false, false, "."),
        (
            "forward . 127.0.0.1 {\nhealth_check 0.5s domain example.org\n}\n",
            ".",
            2,
            false,
            false,
            "example.org.",
        ),
        (
            "forward . 127.0.0.1 {\nexcept miek.nl\n}\n",
            ".",
            2,
            false,
            false,
            ".",
        ),
        (
            "forward . 127.0.0.1 {\nmax_fails 3\n}\n",
            ".",
            3,
            false,
            false,
            ".",
        ),
        (
            "forward . 127.0.0.1 {\nforce_tcp\n}\n",
            ".",
            2,
            true,
            false,
            ".",
        ),
        (
            "forward . 127.0.0.1 {\nprefer_udp\n}\n",
            ".",
            2,
            false,
            true,
            ".",
        ),
        (
            "forward . 127.0.0.1 {\nforce_tcp\nprefer_udp\n}\n",
            ".",
            2,
            true,
            true,
            ".",
        ),
        ("forward . 127.0.0.1:53", ".", 2, false, false, "."),
        ("forward . 127.0.0.1:8080", ".", 2, false, false, "."),
        ("forward . [::1]:53", ".", 2, false, false, "."),
        ("forward . [2003::1]:53", ".", 2, false, false, "."),
        ("forward . 127.0.0.1 \n", ".", 2, false, false, "."),
        (
            "forward 10.9.3.0/18 127.0.0.1",
            "0.9.10.in-addr.arpa.",
            2,
            false,
            false,
            ".",
        ),
    ];
    for (input, from, fails, tcp, udp, domain) in cases {
        let c = one(input);
        assert_eq!(c.from, *from, "{input}");
        assert_eq!(c.max_fails, *fails, "{input}");
        assert_eq!(c.force_tcp, *tcp, "{input}");
        assert_eq!(c.prefer_udp, *udp, "{input}");
        assert_eq!(c.hc_domain, *domain, "{input}");
        assert!(c.hc_recursion_desired, "{input}");
    }
    let two = parse("forward . ::1\nforward com ::2").expect("two stanzas");
    assert_eq!(two.len(), 2);
    assert_eq!(two[1].from, "com.");
    assert_eq!(two[0].upstreams[0].addr, "[::1]:53");
}

#[test]
fn negative() {
    let cases: &[(&str, &str)] = &[
        (
            "forward . https://1.1.1.1/ \n",
            "paths are not allowed in HTTPS upstream addresses (the /dns-query path is used by default): https://1.1.1.1/",
        ),
        (
            "forward . 127.0.0.1 {\nblaatl\n}\n",
            "Testfile:3 - Error during parsing: unknown property 'blaatl'",
        ),
        (
            "forward . 127.0.0.1 {\nhealth_check 0.5s domain\n}\n",
            "Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'domain'",
        ),
        (
            "forward xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx 127.0.0.1 \n",
            "unable to normalize 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'",
        ),
        (
            "forward .",
            "Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after '.'",
        ),
        (
            "forward",
            "Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'forward'",
        ),
        (
            "forward . quic://127.0.0.1",
            "'quic' is not supported as a destination protocol in forward: quic://127.0.0.1:853",
        ),
        (
            "forward . 127.0.0.1 {\nexpire -1s\n}",
            "expire can't be negative: -1s",
        ),
        (
            "forward . 127.0.0.1 {\nhealth_check -1s\n}",
            "health_check can't be negative: -1000000000",
        ),
        (
            "forward . 127.0.0.1 {\nmax_fails -1\n}",
            "strconv.ParseUint: parsing \"-1\": invalid syntax",
        ),
        (
            "forward . 127.0.0.1 {\nmax_fails 99999999999\n}",
            "strconv.ParseUint: parsing \"99999999999\": value out of range",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(err(input), *want, "{input}");
    }
}

#[test]
fn too_many_upstreams_and_prefix() {
    let many: Vec<String> = (1..=16).map(|i| format!("127.0.0.{i}")).collect();
    let text = format!("forward . {}", many.join(" "));
    assert_eq!(
        setup_err(&text),
        "plugin/forward: more than 15 TOs configured: 16"
    );
    assert_eq!(
        setup_err("forward . 127.0.0.1 {\nblaatl\n}"),
        "plugin/forward: Testfile:3 - Error during parsing: unknown property 'blaatl'"
    );
    let fifteen = format!("forward . {}", many[..15].join(" "));
    let block = testkit::setup(&DESCRIPTOR, &fifteen).expect("15 is fine");
    assert_eq!(block.plugins.len(), 1);
}

#[test]
fn source_address() {
    assert_eq!(
        one("forward . 127.0.0.1 {\nsource_address 192.0.2.1\n}\n").source_address,
        Some("192.0.2.1".parse().expect("ip"))
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nsource_address not-an-ip\n}\n"),
        "Testfile:3 - Error during parsing: invalid IP address: not-an-ip"
    );
    assert_eq!(
        one("forward . 127.0.0.1 {\nsource_address 2001:0db8:85a3:0000:1319:8a2e:0370:7344\n}\n")
            .source_address,
        Some("2001:db8:85a3::1319:8a2e:370:7344".parse().expect("ip"))
    );
    assert_eq!(
        one("forward . 127.0.0.1 {\nsource_address ::ffff:192.0.2.1\n}\n").source_address,
        Some("192.0.2.1".parse().expect("ip"))
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nsource_address \n}\n"),
        "Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'source_address'"
    );
}

#[test]
fn split_zone_table() {
    let cases = [
        (
            "tls://127.0.0.1%example.net:854",
            "tls://127.0.0.1:854",
            "example.net",
        ),
        (
            "tls://127.0.0.1%example.net",
            "tls://127.0.0.1",
            "example.net",
        ),
        (
            "https://127.0.0.1%example.net:443",
            "https://127.0.0.1:443",
            "example.net",
        ),
        (
            "https://127.0.0.1%example.net",
            "https://127.0.0.1",
            "example.net",
        ),
        ("tls://127.0.0.1:854", "tls://127.0.0.1:854", ""),
        ("https://127.0.0.1:443", "https://127.0.0.1:443", ""),
        ("dns://127.0.0.1", "dns://127.0.0.1", ""),
        ("foo%bar:baz", "foo:baz", "bar"),
        (
            "tls://[::1%example.net]:853",
            "tls://[::1]:853",
            "example.net",
        ),
        (
            "https://[::1%example.net]:443",
            "https://[::1]:443",
            "example.net",
        ),
    ];
    for (input, host, zone) in cases {
        assert_eq!(
            split_zone(input),
            (host.to_string(), zone.to_string()),
            "{input}"
        );
    }
}

#[test]
fn tls_names() {
    let c = one("forward . tls://127.0.0.1 {\ntls_servername dns\n}");
    assert_eq!(c.tls_servername.as_deref(), Some("dns"));
    let c = one("forward . tls://127.0.0.1%example.net {\ntls\n}");
    assert_eq!(c.upstreams[0].server_name.as_deref(), Some("example.net"));
    assert_eq!(c.upstreams[0].addr, "127.0.0.1:853");
    let c = one(
        "forward . tls://127.0.0.1%example.net:854 tls://127.0.0.2%example.net tls://fe80::1%example.com {\ntls\n}",
    );
    assert_eq!(c.upstreams.len(), 3);
    assert_eq!(c.upstreams[0].addr, "127.0.0.1:854");
    assert_eq!(
        err("forward . tls://127.0.0.1%example.net:854 {\ntls_servername foo\n}"),
        "both forward ('foo') and proxy level ('example.net') TLS servernames are set for upstream proxy 'tls://127.0.0.1:854'"
    );
    let c = one("forward . tls://[2400:3200::1%dns.alidns.com]:853 {\ntls\n}");
    assert_eq!(
        c.upstreams[0].server_name.as_deref(),
        Some("dns.alidns.com")
    );
    assert_eq!(c.upstreams[0].addr, "[2400:3200::1]:853");
    one("forward . 127.0.0.1 {\ntls_servername dns\n}");
    one("forward . 127.0.0.1 {\ntls\n}");
    one("forward . https://127.0.0.1 \n");
    // DoT and DoH build (system roots).
    testkit::setup(&DESCRIPTOR, "forward . tls://127.0.0.1").expect("dot");
    assert_eq!(
        err("forward . tls://127.0.0.1 {\ntls /nonexistent/ca.pem\n}"),
        "error reading /nonexistent/ca.pem: open /nonexistent/ca.pem: no such file or directory"
    );
    assert_eq!(
        err("forward . tls://127.0.0.1 {\ntls /nonexistent/c.pem /nonexistent/k.pem\n}"),
        "could not load TLS cert: open /nonexistent/c.pem: no such file or directory"
    );
    assert_eq!(
        err("forward . tls://127.0.0.1 {\ntls a b c d\n}"),
        "Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'd'"
    );
    testkit::setup(&DESCRIPTOR, "forward . https://127.0.0.1").expect("doh");
}

#[test]
fn resolv_conf() {
    let dir = std::env::temp_dir().join(format!("ferrodns-forward-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let resolv = dir.join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 10.10.255.252\nnameserver 10.10.255.253",
    )
    .expect("w");
    let v6 = dir.join("resolv-ipv6.conf");
    std::fs::write(
        &v6,
        "nameserver 0388:d254:7aec:6892:9f7f:e93b:5806:1b0f%en0",
    )
    .expect("w");
    let empty = dir.join("empty.conf");
    std::fs::write(&empty, "# nameserver 1.1.1.1\n# nameserver 1.0.0.1").expect("w");
    let null = dir.join("null.conf");
    std::fs::write(&null, "").expect("w");

    let addrs = |c: Config| c.upstreams.into_iter().map(|u| u.addr).collect::<Vec<_>>();
    assert_eq!(
        addrs(one(&format!("forward . {}", resolv.display()))),
        ["10.10.255.252:53", "10.10.255.253:53"]
    );
    assert_eq!(
        err(&format!("forward . {}", null.display())),
        "no valid upstream addresses found"
    );
    assert_eq!(
        addrs(one(&format!("forward . {}", v6.display()))),
        ["[0388:d254:7aec:6892:9f7f:e93b:5806:1b0f]:53"]
    );
    assert_eq!(
        addrs(one(&format!("forward . {} 127.0.0.1", empty.display()))),
        ["127.0.0.1:53"]
    );
    // De-duplication across entries, first wins.
    assert_eq!(
        addrs(one("forward . 127.0.0.1 dns://127.0.0.1:53 127.0.0.2")),
        ["127.0.0.1:53", "127.0.0.2:53"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn numbers() {
    assert_eq!(
        one("forward . 127.0.0.1 {\nmax_concurrent 1000\n}\n")
            .max_concurrent
            .0,
        1000
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nmax_concurrent many\n}\n"),
        "strconv.Atoi: parsing \"many\": invalid syntax"
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nmax_concurrent -4\n}\n"),
        "max_concurrent can't be negative: -4"
    );
    assert_eq!(one("forward . 127.0.0.1 {\n}\n").max_connect_attempts, None);
    assert_eq!(
        one("forward . 127.0.0.1 {\nmax_connect_attempts 0\n}\n").max_connect_attempts,
        Some(0)
    );
    assert_eq!(
        one("forward . 127.0.0.1 {\nmax_connect_attempts 5\n}\n").max_connect_attempts,
        Some(5)
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nmax_connect_attempts many\n}\n"),
        "strconv.ParseUint: parsing \"many\": invalid syntax"
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nmax_connect_attempts -4\n}\n"),
        "strconv.ParseUint: parsing \"-4\": invalid syntax"
    );
    assert_eq!(one("forward . 127.0.0.1\n").max_idle_conns, 0);
    assert_eq!(
        one("forward . 127.0.0.1 {\nmax_idle_conns 10\n}\n").max_idle_conns,
        10
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nmax_idle_conns many\n}\n"),
        "strconv.Atoi: parsing \"many\": invalid syntax"
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nmax_idle_conns -1\n}\n"),
        "max_idle_conns can't be negative: -1"
    );
}

#[test]
fn health_check() {
    // (input, rd, domain)
    let ok: &[(&str, bool, &str)] = &[
        ("forward . 127.0.0.1\n", true, "."),
        ("forward . 127.0.0.1 {\nhealth_check 0.5s\n}\n", true, "."),
        (
            "forward . 127.0.0.1 {\nhealth_check 0.5s no_rec\n}\n",
            false,
            ".",
        ),
        (
            "forward . 127.0.0.1 {\nhealth_check 0.5s no_rec domain example.org\n}\n",
            false,
            "example.org.",
        ),
        (
            "forward . 127.0.0.1 {\nhealth_check 0.5s domain example.org\n}\n",
            true,
            "example.org.",
        ),
        (
            "forward . 127.0.0.1 {\nhealth_check 0.5s domain .\n}\n",
            true,
            ".",
        ),
        (
            "forward . 127.0.0.1 {\nhealth_check 0.5s domain example.org.\n}\n",
            true,
            "example.org.",
        ),
    ];
    for (input, rd, domain) in ok {
        let c = one(input);
        assert_eq!(c.hc_recursion_desired, *rd, "{input}");
        assert_eq!(c.hc_domain, *domain, "{input}");
    }
    assert_eq!(
        one("forward . 127.0.0.1 {\nhealth_check 0.5s\n}\n").hc_interval,
        Duration::from_millis(500)
    );
    let bad: &[(&str, &str)] = &[
        (
            "forward . 127.0.0.1 {\nhealth_check no_rec\n}\n",
            "time: invalid duration \"no_rec\"",
        ),
        (
            "forward . 127.0.0.1 {\nhealth_check domain example.org\n}\n",
            "time: invalid duration \"domain\"",
        ),
        (
            "forward . 127.0.0.1 {\nhealth_check 0.5s rec\n}\n",
            "health_check: unknown option rec",
        ),
        (
            "forward . 127.0.0.1 {\nhealth_check 0.5s domain\n}\n",
            "Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'domain'",
        ),
        (
            "forward . 127.0.0.1 {\nhealth_check 0.5s domain example..org\n}\n",
            "health_check: invalid domain name example..org",
        ),
    ];
    for (input, want) in bad {
        assert_eq!(err(input), *want, "{input}");
    }
}

#[test]
fn next_and_failover() {
    assert_eq!(
        one("forward . 127.0.0.1 {\nnext NXDOMAIN\n}\n").next_rcodes,
        [3]
    );
    assert_eq!(
        one("forward . 127.0.0.1 {\nnext SERVFAIL\n}\n").next_rcodes,
        [2]
    );
    assert_eq!(
        one("forward . 127.0.0.1 {\nnext NXDOMAIN SERVFAIL REFUSED\n}\n").next_rcodes,
        [3, 2, 5]
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nnext\n}\n"),
        "Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'next'"
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nnext INVALID\n}\n"),
        "INVALID is not a valid rcode"
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nnext NXDOMAIN INVALID\n}\n"),
        "INVALID is not a valid rcode"
    );
    assert_eq!(
        one("forward . 127.0.0.1 {\nfailover ServFail Refused notimpl\n}\n").failover_rcodes,
        [2, 5, 4]
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nfailover NOERROR\n}\n"),
        "NoError cannot be used in failover"
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nfailover NOT_A_VALID_RCODE\n}\n"),
        "NOT_A_VALID_RCODE is not a valid rcode"
    );
    assert!(one("forward . 127.0.0.1 {\nnext_on_nodata\n}\n").next_on_nodata);
    assert!(!one("forward . 127.0.0.1\n").failfast);
    assert!(one("forward . 127.0.0.1 {\nfailfast_all_unhealthy_upstreams\n}\n").failfast);
    assert_eq!(
        err("forward . 127.0.0.1 {\nfailfast_all_unhealthy_upstreams false\n}\n"),
        "Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'false'"
    );
}

#[test]
fn durations() {
    assert_eq!(one("forward . 127.0.0.1\n").max_age, Duration::ZERO);
    assert_eq!(
        one("forward . 127.0.0.1 {\nmax_age 30s\n}\n").max_age,
        Duration::from_secs(30)
    );
    assert_eq!(
        one("forward . 127.0.0.1 {\nexpire 10s\nmax_age 10s\n}\n").max_age,
        Duration::from_secs(10)
    );
    assert_eq!(
        one("forward . 127.0.0.1 {\nmax_age 0s\n}\n").max_age,
        Duration::ZERO
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nmax_age -1s\n}\n"),
        "max_age can't be negative: -1s"
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nmax_age invalid\n}\n"),
        "time: invalid duration \"invalid\""
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nexpire 30s\nmax_age 10s\n}\n"),
        "max_age (10s) must not be less than expire (30s)"
    );
    assert_eq!(
        one("forward . 127.0.0.1\n").read_timeout,
        Duration::from_secs(2)
    );
    assert_eq!(
        one("forward . 127.0.0.1 {\nread_timeout 5s\n}\n").read_timeout,
        Duration::from_secs(5)
    );
    assert_eq!(
        one("forward . 127.0.0.1 {\nread_timeout 500ms\n}\n").read_timeout,
        Duration::from_millis(500)
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nread_timeout 0s\n}\n"),
        "read_timeout must be positive: 0s"
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nread_timeout -1s\n}\n"),
        "read_timeout must be positive: -1s"
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nread_timeout invalid\n}\n"),
        "time: invalid duration \"invalid\""
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\nread_timeout\n}\n"),
        "Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'read_timeout'"
    );
}

#[test]
fn policies() {
    assert_eq!(
        one("forward . 127.0.0.1 {\npolicy random\n}\n").policy,
        Policy::Random
    );
    assert_eq!(
        one("forward . 127.0.0.1 {\npolicy round_robin\n}\n").policy,
        Policy::RoundRobin
    );
    assert_eq!(
        one("forward . 127.0.0.1 {\npolicy sequential\n}\n").policy,
        Policy::Sequential
    );
    assert_eq!(one("forward . 127.0.0.1\n").policy, Policy::Random);
    assert_eq!(
        err("forward . 127.0.0.1 {\npolicy random2\n}\n"),
        "Testfile:3 - Error during parsing: unknown policy 'random2'"
    );
}

#[test]
fn resolver_and_doh_method() {
    assert_eq!(
        err("forward . 127.0.0.1 {\nresolver dns.example\n}\n"),
        "resolver must be an IP address or IP:port: \"dns.example\""
    );
    assert_eq!(
        one("forward . 127.0.0.1 {\nresolver 10.0.0.1 [::1]:5353\n}\n").resolver,
        ["10.0.0.1", "[::1]:5353"]
    );
    assert_eq!(
        err("forward . 127.0.0.1 {\ndoh_method PUT\n}\n"),
        "doh_method must be either POST or GET"
    );
}

#[test]
fn several_stanzas_chain_in_order() {
    let text = "forward 1st.example.org 10.0.0.1\nforward 2nd.example.org 10.0.0.2\nforward 3rd.example.org 10.0.0.3";
    let block = testkit::setup(&DESCRIPTOR, text).expect("setup");
    assert_eq!(block.plugins.len(), 3);
    assert!(block.plugins.iter().all(|p| p.name() == "forward"));
    let froms: Vec<String> = parse(text)
        .expect("parse")
        .into_iter()
        .map(|c| c.from)
        .collect();
    assert_eq!(
        froms,
        ["1st.example.org.", "2nd.example.org.", "3rd.example.org."]
    );
}

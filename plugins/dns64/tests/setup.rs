//! The dns64 directive's syntax, defaults and errors, as CoreDNS v1.14.7 reports them.

use ferrodns_plugin_dns64::{Config, DESCRIPTOR, parse_prefix};
use ferrodns_plugin_test as testkit;

fn parse(input: &str) -> Result<Config, String> {
    testkit::parse_with("dns64", input, ferrodns_plugin_dns64::setup::parse)
        .map_err(|e| e.to_string())
}

#[test]
fn defaults() {
    let cfg = parse("dns64").expect("parse");
    assert_eq!(cfg.prefix, parse_prefix("64:ff9b::/96").expect("prefix"));
    assert!(!cfg.translate_all);
    assert!(!cfg.allow_ipv4);
    let block = testkit::setup(&DESCRIPTOR, "dns64").expect("setup");
    assert_eq!(block.plugins.len(), 1);
    assert_eq!(block.plugins[0].name(), "dns64");
}

#[test]
fn options() {
    let p = |s: &str| parse_prefix(s).expect(s);
    let cases = [
        ("dns64 2001:db8::/32", p("2001:db8::/32"), false, false),
        (
            "dns64 {\nprefix 2001:db8:1::/48\n}",
            p("2001:db8:1::/48"),
            false,
            false,
        ),
        ("dns64 {\ntranslate_all\n}", p("64:ff9b::/96"), true, false),
        (
            "dns64 {\nallow_ipv4\ntranslate_all\n}",
            p("64:ff9b::/96"),
            true,
            true,
        ),
        // Every line is read; the last prefix wins.
        (
            "dns64 2001:db8::/32\ndns64 {\nallow_ipv4\n}",
            p("2001:db8::/32"),
            false,
            true,
        ),
        (
            "dns64 2001:db8::/32\ndns64 2001:db8::/64",
            p("2001:db8::/64"),
            false,
            false,
        ),
        // A block after a prefix argument is not read (upstream's loop goes on to the next
        // token), and its lines are not taken as properties.
        (
            "dns64 2001:db8::/40 {\ntranslate_all\n}",
            p("2001:db8::/40"),
            false,
            false,
        ),
    ];
    for (input, prefix, all, v4) in cases {
        let cfg = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(cfg.prefix, prefix, "{input}");
        assert_eq!(cfg.translate_all, all, "{input}");
        assert_eq!(cfg.allow_ipv4, v4, "{input}");
    }
    for len in [32, 40, 48, 56, 64, 72, 80, 88, 96] {
        let input = format!("dns64 2001:db8::/{len}");
        assert_eq!(parse(&input).expect(&input).prefix.len(), len);
    }
}

#[test]
fn errors() {
    let bad = [
        (
            "dns64 a b",
            "plugin/dns64: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'b'",
        ),
        (
            "dns64 {\nfoo\n}",
            "plugin/dns64: Testfile:3 - Error during parsing: unknown property 'foo'",
        ),
        (
            "dns64 {\nprefix\n}",
            "plugin/dns64: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'prefix'",
        ),
        (
            "dns64 nonsense",
            "plugin/dns64: invalid CIDR address: nonsense",
        ),
        (
            "dns64 {\nprefix 1.2.3.4/33\n}",
            "plugin/dns64: invalid CIDR address: 1.2.3.4/33",
        ),
        (
            "dns64 192.0.2.1/24",
            "plugin/dns64: Testfile:2 - Error during parsing: invalid netmask 32 IPv6 address: \"192.0.2.0/24\"",
        ),
        (
            "dns64 {\nprefix 64:ff9b::/100\n}",
            "plugin/dns64: Testfile:3 - Error during parsing: invalid prefix length \"64:ff9b::/100\"",
        ),
        (
            "dns64 64:ff9b::1:2/24",
            "plugin/dns64: Testfile:2 - Error during parsing: invalid prefix length \"64:ff00::/24\"",
        ),
        (
            "dns64 ::ffff:1.2.3.4/104",
            "plugin/dns64: Testfile:2 - Error during parsing: invalid prefix length \"1.0.0.0/8\"",
        ),
        (
            "dns64 {\nprefix 64:ff9b::/96 extra\n}",
            "plugin/dns64: Testfile:3 - Error during parsing: unknown property 'extra'",
        ),
    ];
    for (input, want) in bad {
        let err = testkit::setup(&DESCRIPTOR, input).expect_err(input);
        assert_eq!(err.to_string(), want, "{input}");
    }
}

#[test]
fn the_labelled_family_shows_only_once_counted() {
    // As a Go CounterVec, the family has no series, so nothing shows at start.
    let text = testkit::startup_metrics(&DESCRIPTOR);
    assert!(!text.contains("dns64"), "{text}");
}

//! Setup tests, ported from CoreDNS's plugin/rewrite/setup_test.go (TestParse) and extended
//! with the error texts of each rule type.

use ferrodns_plugin_rewrite::DESCRIPTOR;
use ferrodns_plugin_test as testkit;

fn check(input: &str) -> Result<(), String> {
    testkit::setup(&DESCRIPTOR, input)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn coredns_parse_table() {
    // (input, should fail, error contains)
    let cases: &[(&str, bool, &str)] = &[
        (
            "rewrite",
            true,
            "plugin/rewrite: no rule type specified for rewrite",
        ),
        (
            "rewrite name",
            true,
            "plugin/rewrite: too few arguments for a name rule",
        ),
        ("rewrite name a.com b.com", false, ""),
        (
            "rewrite stop {\n    name regex foo bar\n    answer name bar foo\n}",
            false,
            "",
        ),
        (
            "rewrite stop name regex foo bar answer name bar foo",
            false,
            "",
        ),
        (
            "rewrite stop {\n    name regex foo bar\n    answer name bar foo\n    name baz\n}",
            true,
            "2 arguments required",
        ),
        (
            "rewrite stop {\n    answer name bar foo\n    name regex foo bar\n}",
            true,
            "must begin with a name rule",
        ),
        (
            "rewrite stop",
            true,
            "stop rule must begin with a rule type",
        ),
        (
            "rewrite continue",
            true,
            "continue rule must begin with a rule type",
        ),
        (
            "rewrite stop name regex [bad[ bar answer name bar foo",
            true,
            "plugin/rewrite: invalid regex matching pattern: [bad[",
        ),
    ];
    for (input, should_fail, contains) in cases {
        match check(input) {
            Ok(()) => assert!(!should_fail, "{input:?} should fail"),
            Err(e) => {
                assert!(should_fail, "{input:?} failed: {e}");
                assert!(e.contains(contains), "{input:?}: {e}");
            }
        }
    }
}

#[test]
fn exact_error_texts() {
    let cases: &[(&str, &str)] = &[
        (
            "rewrite foo a b",
            "plugin/rewrite: invalid rule type \"foo\"",
        ),
        ("rewrite type A XYZ", "plugin/rewrite: invalid type \"XYZ\""),
        (
            "rewrite class IN",
            "plugin/rewrite: class rules must have exactly two arguments",
        ),
        (
            "rewrite ttl a.",
            "plugin/rewrite: too few (1) arguments for a ttl rule",
        ),
        (
            "rewrite ttl a. -",
            "plugin/rewrite: invalid TTL '-' for a ttl rule",
        ),
        (
            "rewrite rcode a. NOERROR FOO",
            "plugin/rewrite: invalid replacement RCODE 'FOO' for a rcode rule",
        ),
        (
            "rewrite edns0 local set",
            "plugin/rewrite: EDNS0 local rules require three or four args",
        ),
        (
            "rewrite edns0 local set 0xzz 1",
            "plugin/rewrite: strconv.ParseUint: parsing \"0xzz\": invalid syntax",
        ),
        (
            "rewrite edns0 local set 1 0xabc",
            "plugin/rewrite: encoding/hex: odd length hex string",
        ),
        (
            "rewrite cname regex ( a",
            "plugin/rewrite: invalid cname rewrite regex pattern: error parsing regexp: missing closing ): `(`",
        ),
        (
            "rewrite name suffix a. b. answer",
            "plugin/rewrite: invalid arguments for suffix rule",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(check(input).unwrap_err(), *want, "{input:?}");
    }
}

#[test]
fn several_lines_make_one_handler() {
    let block = testkit::setup(
        &DESCRIPTOR,
        "rewrite name a. b.\nrewrite continue type A AAAA\nrewrite edns0 nsid set",
    )
    .expect("setup");
    assert_eq!(block.plugins.len(), 1);
    assert_eq!(block.plugins[0].name(), "rewrite");
}

/// CoreDNS's rewrite_test.go TestNewRule table (the two cases with invalid UTF-8 left out: Rust
/// strings cannot hold them).
#[test]
fn coredns_new_rule_table() {
    let cases: &[(&[&str], bool)] = &[
        (&[], true),
        (&["foo"], true),
        (&["name"], true),
        (&["name", "a.com"], true),
        (&["name", "a.com", "b.com", "c.com"], true),
        (&["name", "a.com", "b.com"], false),
        (&["name", "exact", "a.com", "b.com"], false),
        (&["name", "prefix", "a.com", "b.com"], false),
        (&["name", "suffix", "a.com", "b.com"], false),
        (&["name", "substring", "a.com", "b.com"], false),
        (&["name", "regex", "([a])\\.com", "new-{1}.com"], false),
        (&["name", "regex", "([a]\\.com", "new-{1}.com"], true),
        (
            &[
                "name",
                "regex",
                "(dns)\\.(core)\\.(rocks)",
                "{2}.{1}.{3}",
                "answer",
                "name",
                "(core)\\.(dns)\\.(rocks)",
                "{2}.{1}.{3}",
            ],
            false,
        ),
        (
            &[
                "name",
                "regex",
                "(adns)\\.(core)\\.(rocks)",
                "{2}.{1}.{3}",
                "answer",
                "name",
                "(core)\\.(adns)\\.(rocks)",
                "{2}.{1}.{3}",
                "too.long",
                "way.too.long",
            ],
            true,
        ),
        (
            &[
                "name",
                "regex",
                "(bdns)\\.(core)\\.(rocks)",
                "{2}.{1}.{3}",
                "NoAnswer",
                "name",
                "(core)\\.(bdns)\\.(rocks)",
                "{2}.{1}.{3}",
            ],
            true,
        ),
        (
            &[
                "name",
                "regex",
                "(cdns)\\.(core)\\.(rocks)",
                "{2}.{1}.{3}",
                "answer",
                "ttl",
                "(core)\\.(cdns)\\.(rocks)",
                "{2}.{1}.{3}",
            ],
            true,
        ),
        (
            &[
                "name",
                "substring",
                "fcore.dns.rocks",
                "dns.fcore.rocks",
                "answer",
                "name",
                "(fcore)\\.(dns)\\.(rocks)",
                "{2}.{1}.{3}",
            ],
            false,
        ),
        (&["name", "substring", "a.com", "b.com", "c.com"], true),
        (&["type"], true),
        (&["type", "a"], true),
        (&["type", "any", "a", "a"], true),
        (&["type", "any", "a"], false),
        (&["type", "XY", "WV"], true),
        (&["type", "ANY", "WV"], true),
        (&["class"], true),
        (&["class", "IN"], true),
        (&["class", "ch", "in", "in"], true),
        (&["class", "ch", "in"], false),
        (&["class", "XY", "WV"], true),
        (&["class", "IN", "WV"], true),
        (&["edns0"], true),
        (&["edns0", "unknown-rule-type", "set"], true),
        (&["edns0", "unknown-rule-type", "unset"], true),
        (&["edns0", "local"], true),
        (&["edns0", "local", "set"], true),
        (&["edns0", "local", "set", "0xffee"], true),
        (&["edns0", "local", "set", "invalid-uint", "abcdefg"], true),
        (&["edns0", "local", "set", "65518", "abcdefg"], false),
        (&["edns0", "local", "set", "0xffee", "abcdefg"], false),
        (
            &["edns0", "local", "set", "0xffee", "abcdefg", "revert"],
            false,
        ),
        (&["edns0", "local", "append", "0xffee", "abcdefg"], false),
        (
            &["edns0", "local", "append", "0xffee", "abcdefg", "revert"],
            false,
        ),
        (&["edns0", "local", "replace", "0xffee", "abcdefg"], false),
        (
            &["edns0", "local", "replace", "0xffee", "abcdefg", "revert"],
            false,
        ),
        (&["edns0", "local", "unset", "0xffee"], false),
        (&["edns0", "local", "unset", "0xffee", "abcdefg"], true),
        (&["edns0", "local", "unset", "0xffee", "revert"], true),
        (&["edns0", "local", "foo", "0xffee", "abcdefg"], true),
        (&["edns0", "local", "set", "0xffee", "0xabcdefg"], true),
        (&["edns0", "nsid", "set", "junk"], true),
        (&["edns0", "nsid", "set"], false),
        (&["edns0", "nsid", "set", "revert"], false),
        (&["edns0", "nsid", "append"], false),
        (&["edns0", "nsid", "append", "revert"], false),
        (&["edns0", "nsid", "replace"], false),
        (&["edns0", "nsid", "replace", "revert"], false),
        (&["edns0", "nsid", "unset"], false),
        (&["edns0", "nsid", "unset", "revert"], true),
        (&["edns0", "nsid", "foo"], true),
        (&["edns0", "local", "set", "invalid-uint", "{qname}"], true),
        (&["edns0", "local", "set", "0xffee", "{dummy}"], true),
        (&["edns0", "local", "set", "0xffee", "{qname}"], false),
        (&["edns0", "local", "set", "0xffee", "{qtype}"], false),
        (&["edns0", "local", "set", "0xffee", "{client_ip}"], false),
        (&["edns0", "local", "set", "0xffee", "{client_port}"], false),
        (&["edns0", "local", "set", "0xffee", "{protocol}"], false),
        (&["edns0", "local", "set", "0xffee", "{server_ip}"], false),
        (&["edns0", "local", "set", "0xffee", "{server_port}"], false),
        (
            &["edns0", "local", "set", "0xffee", "{server_port}", "revert"],
            false,
        ),
        (&["edns0", "local", "append", "0xffee", "{dummy}"], true),
        (&["edns0", "local", "append", "0xffee", "{qname}"], false),
        (&["edns0", "local", "append", "0xffee", "{qtype}"], false),
        (
            &["edns0", "local", "append", "0xffee", "{client_ip}"],
            false,
        ),
        (
            &["edns0", "local", "append", "0xffee", "{client_port}"],
            false,
        ),
        (&["edns0", "local", "append", "0xffee", "{protocol}"], false),
        (
            &["edns0", "local", "append", "0xffee", "{server_ip}"],
            false,
        ),
        (
            &["edns0", "local", "append", "0xffee", "{server_port}"],
            false,
        ),
        (
            &[
                "edns0",
                "local",
                "append",
                "0xffee",
                "{server_port}",
                "revert",
            ],
            false,
        ),
        (&["edns0", "local", "replace", "0xffee", "{dummy}"], true),
        (&["edns0", "local", "replace", "0xffee", "{qname}"], false),
        (&["edns0", "local", "replace", "0xffee", "{qtype}"], false),
        (
            &["edns0", "local", "replace", "0xffee", "{client_ip}"],
            false,
        ),
        (
            &["edns0", "local", "replace", "0xffee", "{client_port}"],
            false,
        ),
        (
            &["edns0", "local", "replace", "0xffee", "{protocol}"],
            false,
        ),
        (
            &["edns0", "local", "replace", "0xffee", "{server_ip}"],
            false,
        ),
        (
            &["edns0", "local", "replace", "0xffee", "{server_port}"],
            false,
        ),
        (
            &[
                "edns0",
                "local",
                "replace",
                "0xffee",
                "{server_port}",
                "revert",
            ],
            false,
        ),
        (&["edns0", "subnet", "set", "-1", "56"], true),
        (&["edns0", "subnet", "set", "24", "-56"], true),
        (&["edns0", "subnet", "set", "33", "56"], true),
        (&["edns0", "subnet", "set", "24", "129"], true),
        (&["edns0", "subnet", "set", "24", "56"], false),
        (&["edns0", "subnet", "set", "24", "56", "revert"], false),
        (&["edns0", "subnet", "append", "24", "56"], false),
        (&["edns0", "subnet", "append", "24", "56", "72"], true),
        (&["edns0", "subnet", "append", "24", "56", "revert"], false),
        (&["edns0", "subnet", "replace", "24", "56"], false),
        (&["edns0", "subnet", "replace", "24", "56", "revert"], false),
        (&["edns0", "subnet", "unset"], false),
        (&["edns0", "subnet", "unset", "24", "56"], true),
        (&["edns0", "subnet", "unset", "revert"], true),
        (&["unknown-action", "name", "a.com", "b.com"], true),
        (&["stop", "name", "a.com", "b.com"], false),
        (&["continue", "name", "a.com", "b.com"], false),
        (&["unknown-action", "type", "any", "a"], true),
        (&["stop", "type", "any", "a"], false),
        (&["continue", "type", "any", "a"], false),
        (&["unknown-action", "class", "ch", "in"], true),
        (&["stop", "class", "ch", "in"], false),
        (&["continue", "class", "ch", "in"], false),
        (
            &[
                "unknown-action",
                "edns0",
                "local",
                "set",
                "0xffee",
                "abcedef",
            ],
            true,
        ),
        (
            &["stop", "edns0", "local", "set", "0xffee", "abcdefg"],
            false,
        ),
        (
            &["continue", "edns0", "local", "set", "0xffee", "abcdefg"],
            false,
        ),
        (&["unknown-action", "edns0", "nsid", "set"], true),
        (&["stop", "edns0", "nsid", "set"], false),
        (&["continue", "edns0", "nsid", "set"], false),
        (
            &[
                "unknown-action",
                "edns0",
                "local",
                "set",
                "0xffee",
                "{qname}",
            ],
            true,
        ),
        (
            &["stop", "edns0", "local", "set", "0xffee", "{qname}"],
            false,
        ),
        (
            &["stop", "edns0", "local", "set", "0xffee", "{qtype}"],
            false,
        ),
        (
            &["stop", "edns0", "local", "set", "0xffee", "{client_ip}"],
            false,
        ),
        (
            &["stop", "edns0", "local", "set", "0xffee", "{client_port}"],
            false,
        ),
        (
            &["stop", "edns0", "local", "set", "0xffee", "{protocol}"],
            false,
        ),
        (
            &["stop", "edns0", "local", "set", "0xffee", "{server_ip}"],
            false,
        ),
        (
            &["stop", "edns0", "local", "set", "0xffee", "{server_port}"],
            false,
        ),
        (
            &["continue", "edns0", "local", "set", "0xffee", "{qname}"],
            false,
        ),
        (
            &["continue", "edns0", "local", "set", "0xffee", "{qtype}"],
            false,
        ),
        (
            &["continue", "edns0", "local", "set", "0xffee", "{client_ip}"],
            false,
        ),
        (
            &[
                "continue",
                "edns0",
                "local",
                "set",
                "0xffee",
                "{client_port}",
            ],
            false,
        ),
        (
            &["continue", "edns0", "local", "set", "0xffee", "{protocol}"],
            false,
        ),
        (
            &["continue", "edns0", "local", "set", "0xffee", "{server_ip}"],
            false,
        ),
        (
            &[
                "continue",
                "edns0",
                "local",
                "set",
                "0xffee",
                "{server_port}",
            ],
            false,
        ),
        (
            &["unknown-action", "edns0", "subnet", "set", "24", "64"],
            true,
        ),
        (&["stop", "edns0", "subnet", "set", "24", "56"], false),
        (&["stop", "edns0", "subnet", "append", "24", "56"], false),
        (&["stop", "edns0", "subnet", "replace", "24", "56"], false),
        (&["stop", "edns0", "subnet", "unset"], false),
        (&["continue", "edns0", "subnet", "set", "24", "56"], false),
        (
            &["continue", "edns0", "subnet", "append", "24", "56"],
            false,
        ),
        (
            &["continue", "edns0", "subnet", "replace", "24", "56"],
            false,
        ),
        (&["continue", "edns0", "subnet", "unset"], false),
    ];
    for (args, should_err) in cases {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let got = ferrodns_plugin_rewrite::new_rule(&args);
        assert_eq!(got.is_err(), *should_err, "{args:?}: {:?}", got.err());
    }
}

/// CoreDNS's name_test.go TestNewNameRule table (through newRule, as its second half does).
#[test]
fn coredns_new_name_rule_table() {
    let cases: &[(&[&str], bool)] = &[
        (
            &[
                "stop",
                "name",
                "exact",
                "srv3.coredns.rocks",
                "srv4.coredns.rocks",
            ],
            false,
        ),
        (
            &["stop", "name", "srv1.coredns.rocks", "srv2.coredns.rocks"],
            false,
        ),
        (
            &["stop", "name", "suffix", "coredns.rocks", "coredns.rocks."],
            false,
        ),
        (
            &["stop", "name", "suffix", "coredns.rocks.", "coredns.rocks"],
            false,
        ),
        (
            &["stop", "name", "suffix", "coredns.rocks.", "coredns.rocks."],
            false,
        ),
        (
            &["stop", "name", "regex", "srv1.coredns.rocks", "10"],
            false,
        ),
        (
            &["stop", "name", "regex", "(.*).coredns.rocks", "10"],
            false,
        ),
        (
            &[
                "stop",
                "name",
                "regex",
                "(.*).coredns.rocks",
                "{1}.coredns.rocks",
            ],
            false,
        ),
        (
            &[
                "stop",
                "name",
                "regex",
                "(.*).coredns.rocks",
                "{1}.{2}.coredns.rocks",
            ],
            true,
        ),
        (
            &[
                "stop",
                "name",
                "regex",
                "staging.mydomain.com",
                "aws-loadbalancer-id.us-east-1.elb.amazonaws.com",
            ],
            false,
        ),
        (
            &[
                "stop",
                "name",
                "suffix",
                "staging.mydomain.com",
                "coredns.rock",
                "answer",
            ],
            true,
        ),
        (
            &[
                "stop",
                "name",
                "suffix",
                "staging.mydomain.com",
                "coredns.rock",
                "answer",
                "name",
            ],
            true,
        ),
        (
            &[
                "stop",
                "name",
                "suffix",
                "staging.mydomain.com",
                "coredns.rock",
                "answer",
                "other",
            ],
            true,
        ),
        (
            &[
                "stop",
                "name",
                "suffix",
                "staging.mydomain.com",
                "coredns.rock",
                "answer",
                "auto",
            ],
            false,
        ),
        (
            &[
                "stop",
                "name",
                "regex",
                "staging.mydomain.com",
                "coredns.rock",
                "answer",
                "auto",
            ],
            false,
        ),
        (
            &[
                "stop",
                "name",
                "regex",
                "staging.mydomain.com",
                "coredns.rock",
                "answer",
                "name",
            ],
            true,
        ),
        (
            &[
                "stop",
                "name",
                "regex",
                "staging.mydomain.com",
                "coredns.rock",
                "answer",
                "name",
                "coredns.rock",
                "staging.mydomain.com",
            ],
            false,
        ),
        (
            &[
                "stop",
                "name",
                "regex",
                "staging.mydomain.com",
                "coredns.rock",
                "answer",
                "name",
                "(.*).coredns.rock",
                "{1}.{2}.staging.mydomain.com",
            ],
            true,
        ),
        (
            &[
                "stop",
                "name",
                "regex",
                "staging.mydomain.com",
                "coredns.rock",
                "answer",
                "name",
                "(.*).coredns.rock",
                "{1}.staging.mydomain.com",
                "name",
                "(.*).coredns.rock",
                "{1}.staging.mydomain.com",
            ],
            false,
        ),
        (
            &[
                "stop",
                "name",
                "regex",
                "staging.mydomain.com",
                "coredns.rock",
                "answer",
                "name",
                "(.*).coredns.rock",
                "{1}.staging.mydomain.com",
                "answer",
                "name",
                "(.*).coredns.rock",
                "{1}.staging.mydomain.com",
            ],
            false,
        ),
        (
            &[
                "stop",
                "name",
                "regex",
                "staging.mydomain.com",
                "coredns.rock",
                "answer",
                "name",
                "(.*).coredns.rock",
                "{1}.staging.mydomain.com",
                "name",
                "(.*).coredns.rock",
            ],
            true,
        ),
        (
            &[
                "stop",
                "name",
                "regex",
                "staging.mydomain.com",
                "coredns.rock",
                "answer",
                "name",
                "(.*).coredns.rock",
                "{1}.staging.mydomain.com",
                "value",
                "(.*).coredns.rock",
                "{1}.staging.mydomain.com",
            ],
            false,
        ),
        (
            &[
                "stop",
                "name",
                "regex",
                "staging.mydomain.com",
                "coredns.rock",
                "answer",
                "name",
                "(.*).coredns.rock",
                "{1}.staging.mydomain.com",
                "answer",
                "value",
                "(.*).coredns.rock",
                "{1}.staging.mydomain.com",
            ],
            false,
        ),
        (
            &[
                "stop",
                "name",
                "regex",
                "staging.mydomain.com",
                "coredns.rock",
                "answer",
                "name",
                "(.*).coredns.rock",
                "{1}.staging.mydomain.com",
                "value",
                "(.*).coredns.rock",
            ],
            true,
        ),
        (
            &[
                "stop",
                "name",
                "suffix",
                "staging.mydomain.com.",
                "coredns.rock.",
                "answer",
                "value",
                "(.*).coredns.rock",
                "{1}.staging.mydomain.com",
                "value",
                "(.*).coredns.rock",
                "{1}.staging.mydomain.com",
            ],
            false,
        ),
        (
            &[
                "stop",
                "name",
                "suffix",
                "staging.mydomain.com.",
                "coredns.rock.",
                "answer",
                "value",
                "(.*).coredns.rock",
                "{1}.staging.mydomain.com",
                "answer",
                "value",
                "(.*).coredns.rock",
                "{1}.staging.mydomain.com",
            ],
            false,
        ),
        (
            &[
                "stop",
                "name",
                "suffix",
                "staging.mydomain.com.",
                "coredns.rock.",
                "answer",
                "value",
                "(.*).coredns.rock",
                "{1}.staging.mydomain.com",
                "name",
                "(.*).coredns.rock",
                "{1}.staging.mydomain.com",
            ],
            false,
        ),
    ];
    for (args, should_err) in cases {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let got = ferrodns_plugin_rewrite::new_rule(&args);
        assert_eq!(got.is_err(), *should_err, "{args:?}: {:?}", got.err());
    }
}

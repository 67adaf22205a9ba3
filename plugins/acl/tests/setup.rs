//! CoreDNS's acl setup tests (setup_test.go) and more, with the exact error texts of v1.14.7.

use std::collections::BTreeSet;

use ferrodns_plugin_acl::{ANY_TYPE, Action, DESCRIPTOR, Network, Policy, Rule, parse};
use ferrodns_plugin_test as testkit;

/// Inputs CoreDNS accepts (setup_test.go's, then edge cases of the same parser).
const ACCEPTED: &[&str] = &[
    "acl {\nblock type A net 192.168.0.0/16\n}",
    "acl {\nblock type * net 192.168.0.0/16\n}",
    "acl {\nblock type A net *\n}",
    "acl {\nallow type * net 192.168.1.0/24\nblock type * net 192.168.0.0/16\n}",
    "acl {\nfilter type A net 192.168.0.0/16\n}",
    "acl {\nallow type * net 192.168.0.0/16\nblock type * net *\n}",
    "acl {\ndrop type * net 192.168.0.0/16\n}",
    "acl a.example.org {\nblock type * net 192.168.1.0/24\n}",
    "acl a.example.org {\nblock type * net 192.168.1.0/24\n}\nacl b.example.org {\nblock type * net 192.168.2.0/24\n}",
    "acl example.org {\nblock type * net 192.168.1.0/24 192.168.3.0/24\n}",
    "acl example.org {\nblock type TXT ANY CNAME net 192.168.3.0/24\n}",
    "acl {\nblock type A net 2001:0db8:85a3:0000:0000:8a2e:0370:7334\n}",
    "acl {\nblock type * net 2001:db8:85a3::8a2e:370:7334\n}",
    "acl {\nblock type A\n}",
    "acl {\nallow net 2001:db8:abcd:0012::0/64\nblock net 2001:db8:abcd:0012::0/48\n}",
    "acl {\nfilter type A net 2001:0db8:85a3:0000:0000:8a2e:0370:7334\n}",
    "acl {\nallow net 2001:db8:abcd:0012::0/64\nblock\n}",
    "acl {\ndrop net 2001:db8:abcd:0012::0/64\n}",
    "acl a.example.org {\nblock net 2001:db8:abcd:0012::0/64\n}",
    "acl a.example.org {\nblock net 2001:db8:abcd:0012::0/64\n}\nacl b.example.org {\nblock net 2001:db8:abcd:0013::0/64\n}",
    "acl example.org {\nblock net 2001:db8:abcd:0012::0/64 2001:db8:85a3::8a2e:370:7334/64\n}",
    // Beyond upstream's table.
    "acl",
    "acl example.org",
    "acl {\n}",
    "acl {\nBLOCK TYPE A NET 10.0.0.0/8\n}",
    "acl {\nblock type * NOSUCHTYPE\n}",
    "acl {\nblock net * not-an-address\n}",
    "acl {\nblock type None\n}",
    "acl {\nblock net 10.0.0.1/08\n}",
    "acl {\nblock net 10.0.0.0/8 type A net 11.0.0.0/8 type AAAA\n}",
];

/// Inputs CoreDNS refuses, with its error.
const REJECTED: &[(&str, &str)] = &[
    (
        "acl {\nblock A net 192.168.0.0/16\n}",
        "plugin/acl: Testfile:3 - Error during parsing: unexpected token \"A\"; expect 'type | net'",
    ),
    (
        "acl {\nblock type net 192.168.0.0/16\n}",
        "plugin/acl: Testfile:3 - Error during parsing: no token specified in \"type\" section",
    ),
    (
        "acl {\nblock type ABC net 192.168.0.0/16\n}",
        "plugin/acl: Testfile:3 - Error during parsing: unexpected token \"ABC\"; expect legal QTYPE",
    ),
    (
        "acl {\nblck type A net 192.168.0.0/16\n}",
        "plugin/acl: Testfile:3 - Error during parsing: unexpected token \"blck\"; expect 'allow', 'block', 'filter' or 'drop'",
    ),
    (
        "acl {\nblock type A net 192.168.0/16\n}",
        "plugin/acl: Testfile:3 - Error during parsing: illegal CIDR notation \"192.168.0/16\"",
    ),
    (
        "acl {\nblock type A net 192.168.0.0/33\n}",
        "plugin/acl: Testfile:3 - Error during parsing: illegal CIDR notation \"192.168.0.0/33\"",
    ),
    (
        "acl {\nblock type A net 2001::85a3::8a2e:370:7334\n}",
        "plugin/acl: Testfile:3 - Error during parsing: illegal CIDR notation \"2001::85a3::8a2e:370:7334/128\"",
    ),
    (
        "acl {\nblock type A net 2001:db8:85a3:::8a2e:370:7334\n}",
        "plugin/acl: Testfile:3 - Error during parsing: illegal CIDR notation \"2001:db8:85a3:::8a2e:370:7334/128\"",
    ),
    // Beyond upstream's table.
    (
        "acl {\nblock type a\n}",
        "plugin/acl: Testfile:3 - Error during parsing: unexpected token \"a\"; expect legal QTYPE",
    ),
    (
        "acl {\nblock NET\n}",
        "plugin/acl: Testfile:3 - Error during parsing: no token specified in \"net\" section",
    ),
    (
        "acl {\nblock net 10.0.0.1\nallow net 1.2.3\n}",
        "plugin/acl: Testfile:4 - Error during parsing: illegal CIDR notation \"1.2.3/32\"",
    ),
    (
        "acl {\nallow\n}\nacl x {\nreject\n}",
        "plugin/acl: Testfile:6 - Error during parsing: unexpected token \"reject\"; expect 'allow', 'block', 'filter' or 'drop'",
    ),
    (
        "acl {\nblock type A * net example.org\n}",
        "plugin/acl: Testfile:3 - Error during parsing: illegal CIDR notation \"example.org/32\"",
    ),
    (
        "acl {\nblock net 10.0.0.0/8 type\n}",
        "plugin/acl: Testfile:3 - Error during parsing: no token specified in \"type\" section",
    ),
    (
        "acl {\nblock net 010.0.0.0/8\n}",
        "plugin/acl: Testfile:3 - Error during parsing: illegal CIDR notation \"010.0.0.0/8\"",
    ),
];

#[test]
fn accepted() {
    for input in ACCEPTED {
        match testkit::setup(&DESCRIPTOR, input) {
            Ok(block) => assert_eq!(block.plugins.len(), 1, "{input}"),
            Err(e) => panic!("{input}: unexpected error {e}"),
        }
    }
}

#[test]
fn rejected() {
    for (input, want) in REJECTED {
        match testkit::setup(&DESCRIPTOR, input) {
            Ok(_) => panic!("{input}: expected error {want}"),
            Err(e) => assert_eq!(e.to_string(), *want, "{input}"),
        }
    }
}

fn rules(input: &str) -> Vec<Rule> {
    let mut block = testkit::block(&["."]);
    testkit::parse_in(&mut block, "acl", input, parse).unwrap_or_else(|e| panic!("{input}: {e}"))
}

fn net(s: &str) -> Network {
    Network::parse(s).unwrap_or_else(|| panic!("bad network {s}"))
}

fn types(t: &[u16]) -> BTreeSet<u16> {
    t.iter().copied().collect()
}

#[test]
fn rules_are_read_in_order_with_defaults() {
    let got = rules(
        "acl example.org Other.NET {\nallow net 192.168.1.0/24 ::1\nblock type A AAAA\n}\nacl\n",
    );
    assert_eq!(
        got,
        vec![
            Rule {
                zones: vec!["example.org.".into(), "other.net.".into()],
                policies: vec![
                    Policy {
                        action: Action::Allow,
                        qtypes: types(&[ANY_TYPE]),
                        sources: vec![net("192.168.1.0/24"), net("::1/128")],
                    },
                    Policy {
                        action: Action::Block,
                        qtypes: types(&[1, 28]),
                        sources: Policy::every_source(),
                    },
                ],
            },
            Rule {
                zones: vec![".".into()],
                policies: vec![],
            },
        ]
    );
}

#[test]
fn star_and_none_mean_every_type() {
    let got = rules("acl {\nfilter type * A\ndrop type None\nblock type MX TXT\n}");
    let p = &got[0].policies;
    assert_eq!(p[0].qtypes, types(&[ANY_TYPE]));
    assert_eq!(p[1].qtypes, types(&[ANY_TYPE]));
    assert_eq!(p[2].qtypes, types(&[15, 16]));
    assert_eq!(p[2].action, Action::Block);
}

#[test]
fn bare_addresses_are_single_hosts() {
    let got = rules("acl {\nblock net 10.1.2.3 2001:db8::5 * nonsense\n}");
    // `*` replaces what came before it and ends the list, as in CoreDNS.
    assert_eq!(got[0].policies[0].sources, Policy::every_source());
    let got = rules("acl {\nblock net 10.1.2.3 2001:db8::5\n}");
    assert_eq!(
        got[0].policies[0].sources,
        vec![net("10.1.2.3/32"), net("2001:db8::5/128")]
    );
}

#[test]
fn zones_default_to_every_key_of_the_block() {
    let mut block = testkit::block(&["example.org.", "example.net."]);
    let got = testkit::parse_in(&mut block, "acl", "acl {\nblock\n}", parse)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got[0].zones, vec!["example.org.", "example.net."]);
}

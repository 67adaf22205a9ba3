//! CoreDNS's hosts setup tables (setup_test.go: TestHostsParse, TestHostsInlineParse,
//! TestHostsParseFallthroughUnsupported) and the option errors of setup.go, with the exact
//! texts of v1.14.7.

use ferrodns_plugin::SetupError;
use ferrodns_plugin_hosts::{Config, DESCRIPTOR, parse};
use ferrodns_plugin_test as testkit;

fn config(text: &str) -> Result<Config, SetupError> {
    testkit::parse_in(&mut testkit::block(&["."]), "hosts", text, parse)
}

/// (input, path, origins, fallthrough zones)
const OK: &[(&str, &str, &[&str], &[&str])] = &[
    ("hosts\n", "/etc/hosts", &["."], &[]),
    ("hosts /tmp", "/tmp", &["."], &[]),
    (
        "hosts /etc/hosts miek.nl.",
        "/etc/hosts",
        &["miek.nl."],
        &[],
    ),
    (
        "hosts /etc/hosts miek.nl. pun.gent.",
        "/etc/hosts",
        &["miek.nl.", "pun.gent."],
        &[],
    ),
    ("hosts {\n fallthrough\n }", "/etc/hosts", &["."], &["."]),
    ("hosts /tmp {\n fallthrough\n }", "/tmp", &["."], &["."]),
    (
        "hosts /etc/hosts miek.nl. {\n fallthrough\n }",
        "/etc/hosts",
        &["miek.nl."],
        &["."],
    ),
    (
        "hosts /etc/hosts miek.nl 10.0.0.9/8 {\n fallthrough\n }",
        "/etc/hosts",
        &["miek.nl.", "10.in-addr.arpa."],
        &["."],
    ),
    (
        "hosts {\n fallthrough example.org 10.0.0.0/8\n }",
        "/etc/hosts",
        &["."],
        &["example.org.", "10.in-addr.arpa."],
    ),
];

#[test]
fn parse_ok_table() {
    for (input, path, origins, fall) in OK {
        let cfg = config(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(cfg.path, *path, "{input}");
        assert_eq!(cfg.origins, *origins, "{input}");
        assert_eq!(cfg.fall.zones, *fall, "{input}");
    }
}

const ERRORS: &[(&str, &str)] = &[
    (
        "hosts /etc/hosts {\n fallthrough\n }\n hosts /etc/hosts {\n fallthrough\n }",
        "plugin/hosts: this plugin can only be used once per Server Block",
    ),
    (
        "hosts nonexistent_hosts_file example.org {\n fallthrough\n 10.0.0.1 example.org\n }",
        "plugin/hosts: Testfile:4 - Error during parsing: unknown property '10.0.0.1'",
    ),
    (
        "hosts {\n fallthrough_unsupported\n }",
        "plugin/hosts: Testfile:4 - Error during parsing: fallthrough_unsupported requires fallthrough",
    ),
    (
        "hosts {\n fallthrough\n fallthrough_unsupported example.org\n }",
        "plugin/hosts: Testfile:4 - Error during parsing: Wrong argument count or unexpected line ending after 'example.org'",
    ),
    (
        "hosts {\n ttl\n }",
        "plugin/hosts: Testfile:3 - Error during parsing: ttl needs a time in second",
    ),
    (
        "hosts {\n ttl abc\n }",
        "plugin/hosts: Testfile:3 - Error during parsing: ttl needs a number of second",
    ),
    (
        "hosts {\n ttl 0\n }",
        "plugin/hosts: Testfile:3 - Error during parsing: ttl provided is invalid",
    ),
    (
        "hosts {\n ttl 65536\n }",
        "plugin/hosts: Testfile:3 - Error during parsing: ttl provided is invalid",
    ),
    (
        "hosts {\n reload\n }",
        "plugin/hosts: Testfile:3 - Error during parsing: reload needs a duration (zero seconds to disable)",
    ),
    (
        "hosts {\n reload 1s 2s\n }",
        "plugin/hosts: Testfile:3 - Error during parsing: reload needs a duration (zero seconds to disable)",
    ),
    (
        "hosts {\n reload x\n }",
        "plugin/hosts: Testfile:3 - Error during parsing: invalid duration for reload 'x'",
    ),
    (
        "hosts {\n reload -1s\n }",
        "plugin/hosts: Testfile:3 - Error during parsing: invalid negative duration for reload '-1s'",
    ),
    (
        "hosts /etc/hosts/nothing",
        "plugin/hosts: Testfile:2 - Error during parsing: unable to access hosts file '/etc/hosts/nothing': stat /etc/hosts/nothing: not a directory",
    ),
];

#[test]
fn parse_error_table() {
    for (input, want) in ERRORS {
        let got = testkit::setup(&DESCRIPTOR, input).err();
        assert_eq!(
            got.map(|e| e.to_string()).as_deref(),
            Some(*want),
            "{input}"
        );
    }
}

#[test]
fn inline_lines() {
    let cfg = config(
        "hosts highly_unlikely_to_exist_hosts_file example.org {\n 10.0.0.1 example.org\n fallthrough\n }",
    )
    .expect("ok");
    assert_eq!(cfg.inline, ["10.0.0.1 example.org"]);
    assert_eq!(cfg.fall.zones, ["."]);
    let cfg = config(
        "hosts highly_unlikely_to_exist_hosts_file example.org {\n 10.0.0.1 example.org\n }",
    )
    .expect("ok");
    assert_eq!(cfg.inline, ["10.0.0.1 example.org"]);
    assert!(cfg.fall.zones.is_empty());
}

#[test]
fn options() {
    let cfg = config(
        "hosts {\n ttl +20\n reload 0\n no_reverse\n fallthrough\n fallthrough_unsupported\n }",
    )
    .expect("ok");
    assert_eq!(cfg.ttl, 20);
    assert!(cfg.reload.is_zero());
    assert!(!cfg.reverse);
    assert!(cfg.fall_unsupported);
    let cfg =
        config("hosts {\n fallthrough_unsupported\n fallthrough example.org\n }").expect("ok");
    assert!(cfg.fall_unsupported);
    let cfg = config("hosts").expect("ok");
    assert_eq!(cfg.ttl, 3600);
    assert_eq!(cfg.reload.as_secs(), 5);
    assert!(cfg.reverse);
}

//! Reading the `loop` directive: arguments, once per block, the zone of the probe.

use ferrodns_plugin::{BlockSettings, Setup, Shared};
use ferrodns_plugin_loop::{DESCRIPTOR, Loop, parse};
use ferrodns_plugin_test as testkit;

#[test]
fn accepted() {
    let block = testkit::setup(&DESCRIPTOR, "loop").expect("loop");
    assert_eq!(block.plugins.len(), 1);
    assert_eq!(block.plugins[0].name(), "loop");
}

#[test]
fn setup_registers_the_probe_hook() {
    let shared = Shared::default();
    testkit::setup_with(&DESCRIPTOR, "loop", &shared).expect("loop");
    assert_eq!(shared.lifecycles().len(), 1);
}

#[test]
fn rejected() {
    let bad = [
        (
            "loop argument",
            "plugin/loop: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'argument'",
        ),
        (
            "loop {\n}",
            "plugin/loop: Testfile:2 - Error during parsing: Unexpected token '{', expecting argument",
        ),
        (
            "loop\nloop",
            "plugin/loop: this plugin can only be used once per Server Block",
        ),
    ];
    for (input, want) in bad {
        let err = testkit::setup(&DESCRIPTOR, input).expect_err(input);
        assert_eq!(err.to_string(), want, "{input}");
    }
}

fn parse_with_zones(zones: &[&str]) -> Loop {
    testkit::parse_in(&mut testkit::block(zones), "loop", "loop", parse).expect("parse")
}

fn random_labels(name: &str, zone: &str) -> (u64, u64) {
    let rest = if zone == "." {
        name.to_string()
    } else {
        name.strip_suffix(zone)
            .unwrap_or_else(|| panic!("{name} is not in {zone}"))
            .to_string()
    };
    let labels: Vec<&str> = rest.trim_end_matches('.').split('.').collect();
    assert_eq!(labels.len(), 2, "{name}");
    let n = |s: &str| -> u64 {
        assert!(s.bytes().all(|b| b.is_ascii_digit()), "{name}");
        s.parse().expect("number")
    };
    (n(labels[0]), n(labels[1]))
}

#[test]
fn zone_is_the_first_key() {
    let l = parse_with_zones(&["example.org.", "example.net."]);
    assert_eq!(l.zone(), "example.org.");
    let (a, b) = random_labels(l.probe_name(), "example.org.");
    assert!(a < 1 << 62 && b < 1 << 62);
    assert!(l.probe_name().ends_with(".example.org."));

    let l = parse_with_zones(&["."]);
    assert_eq!(l.zone(), ".");
    random_labels(l.probe_name(), ".");
    assert!(!l.probe_name().ends_with(".."), "{}", l.probe_name());

    // No keys at all (as CoreDNS's test with an empty key list): the root.
    let l = parse_with_zones(&[]);
    assert_eq!(l.zone(), ".");
}

#[test]
fn probe_names_differ() {
    let a = Loop::new(".");
    let b = Loop::new(".");
    assert_ne!(a.probe_name(), b.probe_name());
}

#[test]
fn zone_comes_from_the_normalised_key() {
    use ferrodns_plugin::Dispenser;
    use ferrodns_plugin::corefile::{ParseOptions, inspect_keys, parse as parse_corefile};

    for (key, want) in [
        ("Example.ORG:1053", "example.org."),
        ("dns://example.org", "example.org."),
        ("10.0.0.0/8", "10.in-addr.arpa."),
        (".", "."),
    ] {
        let text = format!("{key} {{\n    loop\n}}\n");
        let is_directive = |n: &str| n == "loop";
        let env = |_: &str| None;
        let opts = ParseOptions {
            is_directive: &is_directive,
            env: &env,
        };
        let blocks = parse_corefile("Corefile", text.as_bytes(), &opts).expect("parses");
        let zones = inspect_keys(&blocks[0], "53").expect("keys");
        let tokens = blocks[0].directive("loop").expect("loop").tokens.clone();
        let mut block = BlockSettings {
            zones,
            ..BlockSettings::default()
        };
        let shared = Shared::default();
        let mut c = Setup::new(Dispenser::new("Corefile", tokens), &mut block, &shared);
        let l = parse(&mut c).expect("parse");
        assert_eq!(l.zone(), want, "{key}");
        random_labels(l.probe_name(), want);
    }
}

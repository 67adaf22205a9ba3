//! CoreDNS's loadbalance setup table (setup_test.go TestSetup) with the exact error texts of
//! v1.14.7, plus the `prefer` forms.

use ferrodns_plugin::SetupError;
use ferrodns_plugin_loadbalance::{Config, DESCRIPTOR, Policy, parse};
use ferrodns_plugin_test as testkit;

fn config(text: &str) -> Result<Config, SetupError> {
    testkit::parse_with("loadbalance", text, parse)
}

/// (input, Ok((policy, file, reload secs)) or Err(text))
#[allow(clippy::type_complexity)]
const CASES: &[(&str, Result<(&str, &str, u64), &str>)] = &[
    ("loadbalance", Ok(("round_robin", "", 0))),
    ("loadbalance round_robin", Ok(("round_robin", "", 0))),
    ("loadbalance weighted wfile", Ok(("weighted", "wfile", 30))),
    (
        "loadbalance weighted wf {\n reload 10s\n }",
        Ok(("weighted", "wf", 10)),
    ),
    (
        "loadbalance weighted wf {\n reload 0s\n }",
        Ok(("weighted", "wf", 0)),
    ),
    ("loadbalance fleeb", Err("unknown policy: fleeb")),
    (
        "loadbalance round_robin a",
        Err("Testfile:2 - Error during parsing: unknown property for round_robin"),
    ),
    (
        "loadbalance weighted",
        Err("Testfile:2 - Error during parsing: missing weight file argument"),
    ),
    (
        "loadbalance weighted a b",
        Err("Testfile:2 - Error during parsing: unexpected argument(s)"),
    ),
    (
        "loadbalance weighted wfile {\n susu\n }",
        Err("Testfile:3 - Error during parsing: unknown property 'susu'"),
    ),
    (
        "loadbalance weighted wfile {\n reload a\n }",
        Err("Testfile:3 - Error during parsing: invalid reload duration 'a'"),
    ),
    (
        "loadbalance weighted wfile {\n reload 30s  a\n }",
        Err("Testfile:3 - Error during parsing: unexpected argument"),
    ),
    (
        "loadbalance weighted wfile {\n reload\n }",
        Err("Testfile:3 - Error during parsing: reload duration value is missing"),
    ),
    (
        "loadbalance round_robin {\n prefer 10.0.0.0/8 2001:db8::/32\n }",
        Ok(("round_robin", "", 0)),
    ),
    (
        "loadbalance {\n prefer 10.0.0.1\n }",
        Err(
            "Testfile:3 - Error during parsing: invalid CIDR \"10.0.0.1\": invalid CIDR address: 10.0.0.1",
        ),
    ),
    (
        "loadbalance {\n prefer 10.0.0.0/33\n }",
        Err(
            "Testfile:3 - Error during parsing: invalid CIDR \"10.0.0.0/33\": invalid CIDR address: 10.0.0.0/33",
        ),
    ),
    (
        "loadbalance {\n reload 10s\n }",
        Err("Testfile:3 - Error during parsing: unknown property 'reload'"),
    ),
    (
        "loadbalance weighted wfile {\n prefer 10.0.0.0/8\n }",
        Err("Testfile:3 - Error during parsing: unknown property 'prefer'"),
    ),
];

#[test]
fn setup_table() {
    for (input, want) in CASES {
        match (config(input), want) {
            (Ok(cfg), Ok((policy, file, reload))) => match (&cfg.policy, *policy) {
                (Policy::RoundRobin, "round_robin") => {}
                (Policy::Weighted(w), "weighted") => {
                    assert_eq!(w.file, *file, "{input}");
                    assert_eq!(w.reload.as_secs(), *reload, "{input}");
                }
                (p, _) => panic!("{input}: policy {p:?}"),
            },
            (Err(e), Err(w)) => assert_eq!(e.to_string(), *w, "{input}"),
            (Ok(c), Err(w)) => panic!("{input}: expected {w}, got {c:?}"),
            (Err(e), Ok(_)) => panic!("{input}: unexpected error {e}"),
        }
    }
}

#[test]
fn prefer_subnets_kept_in_order() {
    let cfg = config("loadbalance {\n prefer 10.9.20.7/24 2001:db8::/32\n }").expect("ok");
    let got: Vec<String> = cfg
        .prefer
        .iter()
        .map(|s| format!("{}/{}", s.addr, s.bits))
        .collect();
    assert_eq!(got, ["10.9.20.0/24", "2001:db8::/32"]);
}

#[test]
fn setup_prefixes_plugin_name() {
    let err = testkit::setup(&DESCRIPTOR, "loadbalance fleeb").err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("plugin/loadbalance: unknown policy: fleeb")
    );
    assert!(testkit::setup(&DESCRIPTOR, "loadbalance").is_ok());
}

//! The pprof directive's syntax and errors, as CoreDNS v1.14.7 reports them.

use ferrodns_plugin_pprof::{Config, DEFAULT_ADDR, parse};
use ferrodns_plugin_test as testkit;

fn cfg(input: &str) -> Config {
    testkit::parse_with("pprof", input, parse).unwrap_or_else(|e| panic!("{input}: {e}"))
}

#[test]
fn accepted_forms() {
    let default = Config {
        addr: DEFAULT_ADDR.to_string(),
        block_rate: 0,
    };
    assert_eq!(cfg("pprof"), default);
    assert_eq!(cfg("pprof {\n}"), default);
    assert_eq!(cfg("pprof 1.2.3.4:1234").addr, "1.2.3.4:1234");
    assert_eq!(cfg("pprof :1234").addr, ":1234");
    assert_eq!(cfg("pprof [::1]:6060").addr, "[::1]:6060");
    assert_eq!(cfg("pprof {\n block\n}").block_rate, 1);
    assert_eq!(cfg("pprof :1234 {\n block 20\n}").block_rate, 20);
    // Any integer Atoi reads, as upstream takes it (zero or less turns block profiling off).
    assert_eq!(cfg("pprof {\n block -3\n}").block_rate, -3);
    assert_eq!(cfg("pprof {\n block +7\n}").block_rate, 7);
    // A later `block` line replaces an earlier one.
    assert_eq!(cfg("pprof {\n block 5\n block\n}").block_rate, 1);
    // The port is only checked when listening.
    assert_eq!(cfg("pprof :http").addr, ":http");
}

#[test]
fn errors_carry_coredns_texts() {
    let bad = [
        (
            "pprof :1234 -1",
            "plugin/pprof: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after '-1'",
        ),
        (
            "pprof /foo",
            "plugin/pprof: Testfile:2 - Error during parsing: address /foo: missing port in address",
        ),
        (
            "pprof localhost",
            "plugin/pprof: Testfile:2 - Error during parsing: address localhost: missing port in address",
        ),
        (
            "pprof a:b:c",
            "plugin/pprof: Testfile:2 - Error during parsing: address a:b:c: too many colons in address",
        ),
        (
            "pprof {\n a b\n}",
            "plugin/pprof: Testfile:3 - Error during parsing: unknown property 'a'",
        ),
        (
            "pprof {\n block 20 30\n}",
            "plugin/pprof: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after '30'",
        ),
        (
            "pprof {\n block invalid\n}",
            "plugin/pprof: Testfile:3 - Error during parsing: property 'block' invalid integer value 'invalid'",
        ),
        (
            "pprof {\n block 99999999999999999999\n}",
            "plugin/pprof: Testfile:3 - Error during parsing: property 'block' invalid integer value '99999999999999999999'",
        ),
        (
            "pprof {\n unknown_property\n}",
            "plugin/pprof: Testfile:3 - Error during parsing: unknown property 'unknown_property'",
        ),
        (
            "pprof\npprof",
            "plugin/pprof: this plugin can only be used once per Server Block",
        ),
    ];
    for (input, want) in bad {
        let err = testkit::parse_with("pprof", input, parse).expect_err(input);
        assert_eq!(err.to_string(), want, "{input}");
    }
}

#[test]
fn setup_adds_no_handler_and_one_lifecycle() {
    let block = testkit::setup(&ferrodns_plugin_pprof::DESCRIPTOR, "pprof 127.0.0.1:0")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(block.plugins.is_empty());
}

//! The whoami directive's syntax and errors, as CoreDNS v1.14.7 reports them.

use ferrodns_plugin_test as testkit;
use ferrodns_plugin_whoami::DESCRIPTOR;

#[test]
fn setup_table() {
    // Upstream's two cases, plus the details of its "first occurrence only" argument check.
    let ok = ["whoami", "whoami\nwhoami extra"];
    for input in ok {
        let block = testkit::setup(&DESCRIPTOR, input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(block.plugins.len(), 1, "{input}");
        assert_eq!(block.plugins[0].name(), "whoami");
        assert!(block.listen_hosts.is_empty());
    }
    let bad = [
        (
            "whoami example.org",
            "plugin/whoami: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'example.org'",
        ),
        (
            "whoami {\n}",
            "plugin/whoami: Testfile:2 - Error during parsing: Unexpected token '{', expecting argument",
        ),
    ];
    for (input, want) in bad {
        let err = testkit::setup(&DESCRIPTOR, input).expect_err(input);
        assert_eq!(err.to_string(), want, "{input}");
    }
}

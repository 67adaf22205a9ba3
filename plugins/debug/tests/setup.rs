//! The debug directive's syntax and errors, as CoreDNS v1.14.7 reports them.

use ferrodns_plugin_debug::DESCRIPTOR;
use ferrodns_plugin_test as testkit;

#[test]
fn debug_sets_the_block_flag_and_adds_no_handler() {
    for input in ["debug", "debug\ndebug"] {
        let block = testkit::setup(&DESCRIPTOR, input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert!(block.debug, "{input}");
        assert!(block.plugins.is_empty(), "{input}");
    }
    let block = testkit::setup(&DESCRIPTOR, "").expect("no debug line");
    assert!(!block.debug);
}

#[test]
fn arguments_and_blocks_are_errors() {
    let bad = [
        (
            "debug off",
            "plugin/debug: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'off'",
        ),
        (
            "debug {\n}",
            "plugin/debug: Testfile:2 - Error during parsing: Unexpected token '{', expecting argument",
        ),
        (
            // Every line is checked, not only the first.
            "debug\ndebug x",
            "plugin/debug: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'x'",
        ),
    ];
    for (input, want) in bad {
        let err = testkit::setup(&DESCRIPTOR, input).expect_err(input);
        assert_eq!(err.to_string(), want, "{input}");
    }
}

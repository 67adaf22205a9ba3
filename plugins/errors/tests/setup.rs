//! The setup tables of CoreDNS's errors plugin (setup_test.go: TestErrorsParse,
//! TestProperLogCallbackIsSet, TestShowFirstOption, TestErrorsParseLargeRegex), in our words,
//! with the exact error texts of CoreDNS v1.14.7.

use ferrodns_plugin::{BlockSettings, SetupError, Shared};
use ferrodns_plugin_errors::{Config, DESCRIPTOR, Level, parse};
use ferrodns_plugin_test as testkit;

/// Parse the directive text as a block's `errors` lines; the config and the block settings.
fn config(text: &str) -> (Result<Config, SetupError>, BlockSettings) {
    let mut block = BlockSettings::default();
    let result = testkit::parse_in(&mut block, "errors", text, parse);
    (result, block)
}

/// (input, error text or None, number of patterns, stacktrace)
const PARSE: &[(&str, Option<&str>, usize, bool)] = &[
    ("errors", None, 0, false),
    ("errors stdout", None, 0, false),
    (
        "errors errors.txt",
        Some("plugin/errors: Testfile:2 - Error during parsing: invalid log file: errors.txt"),
        0,
        false,
    ),
    (
        "errors visible",
        Some("plugin/errors: Testfile:2 - Error during parsing: invalid log file: visible"),
        0,
        false,
    ),
    (
        "errors { log visible }",
        Some(
            "plugin/errors: Testfile:2 - Syntax error: Unexpected token 'log', expecting 'Unknown field log'",
        ),
        0,
        false,
    ),
    (
        "errors\n  errors ",
        Some("plugin/errors: this plugin can only be used once per Server Block"),
        0,
        false,
    ),
    (
        "errors a b",
        Some(
            "plugin/errors: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'b'",
        ),
        0,
        false,
    ),
    (
        "errors {\n  consolidate\n}",
        Some(
            "plugin/errors: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'consolidate'",
        ),
        0,
        false,
    ),
    (
        "errors {\n  consolidate 1m\n}",
        Some(
            "plugin/errors: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after '1m'",
        ),
        0,
        false,
    ),
    (
        "errors {\n  consolidate 1m .* extra\n}",
        Some(
            "plugin/errors: Testfile:3 - Error during parsing: unknown option in consolidate: extra",
        ),
        0,
        false,
    ),
    (
        "errors {\n  consolidate abc .*\n}",
        Some("plugin/errors: Testfile:3 - Error during parsing: time: invalid duration \"abc\""),
        0,
        false,
    ),
    (
        "errors {\n  consolidate 1 .*\n}",
        Some(
            "plugin/errors: Testfile:3 - Error during parsing: time: missing unit in duration \"1\"",
        ),
        0,
        false,
    ),
    (
        "errors {\n  consolidate 1m ())\n}",
        Some(
            "plugin/errors: Testfile:3 - Error during parsing: error parsing regexp: unexpected ): `())`",
        ),
        0,
        false,
    ),
    ("errors {\n  stacktrace\n}", None, 0, true),
    (
        "errors {\n  stacktrace\n  consolidate 1m ^exact$\n}",
        None,
        1,
        true,
    ),
    ("errors {\n  consolidate 1m ^exact$\n}", None, 1, false),
    ("errors {\n  consolidate 1m error\n}", None, 1, false),
    (
        "errors {\n  consolidate 1m \"format error\"\n}",
        None,
        1,
        false,
    ),
    (
        "errors {\n  consolidate 1m error1\n  consolidate 5s error2\n}",
        None,
        2,
        false,
    ),
    (
        "errors {\n  consolidate 1m error show_first\n}",
        None,
        1,
        false,
    ),
    (
        "errors {\n  consolidate 1m error warning show_first\n}",
        None,
        1,
        false,
    ),
    (
        "errors {\n  consolidate 1m error invalid_option\n}",
        Some(
            "plugin/errors: Testfile:3 - Error during parsing: unknown option in consolidate: invalid_option",
        ),
        0,
        false,
    ),
    (
        "errors {\n  consolidate 1m error warning error\n}",
        Some(
            "plugin/errors: Testfile:3 - Error during parsing: multiple log levels specified in consolidate",
        ),
        0,
        false,
    ),
    (
        "errors {\n  consolidate 1m error info debug\n}",
        Some(
            "plugin/errors: Testfile:3 - Error during parsing: multiple log levels specified in consolidate",
        ),
        0,
        false,
    ),
    (
        "errors {\n  consolidate 1m error show_first warning\n}",
        Some(
            "plugin/errors: Testfile:3 - Error during parsing: log level must come before show_first in consolidate",
        ),
        0,
        false,
    ),
    (
        "errors {\n  consolidate 1m error show_first info\n}",
        Some(
            "plugin/errors: Testfile:3 - Error during parsing: log level must come before show_first in consolidate",
        ),
        0,
        false,
    ),
    // Our additions, checked against CoreDNS v1.14.7.
    ("errors { stacktrace }", None, 0, true),
    (
        "errors stdout {\n  stacktrace\n  bogus\n}",
        Some(
            "plugin/errors: Testfile:4 - Syntax error: Unexpected token 'bogus', expecting 'Unknown field bogus'",
        ),
        0,
        true,
    ),
    (
        "errors {\n  consolidate 1x .*\n}",
        Some(
            "plugin/errors: Testfile:3 - Error during parsing: time: unknown unit \"x\" in duration \"1x\"",
        ),
        0,
        false,
    ),
    (
        "errors {\n  consolidate -+1s .*\n}",
        Some("plugin/errors: Testfile:3 - Error during parsing: time: invalid duration \"-+1s\""),
        0,
        false,
    ),
    ("errors {\n  consolidate -1s .*\n}", None, 1, false),
    (
        "errors {\n  consolidate 1m a{1001}\n}",
        Some(
            "plugin/errors: Testfile:3 - Error during parsing: error parsing regexp: invalid repeat count: `{1001}`",
        ),
        0,
        false,
    ),
    (
        "errors {\n  consolidate 1m \"a**\"\n}",
        Some(
            "plugin/errors: Testfile:3 - Error during parsing: error parsing regexp: invalid nested repetition operator: `**`",
        ),
        0,
        false,
    ),
    (
        "errors {\n  consolidate 1m x show_first show_first\n}",
        None,
        1,
        false,
    ),
    (
        "errors {\n  consolidate 1m x a b c\n}",
        Some(
            "plugin/errors: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'c'",
        ),
        0,
        false,
    ),
];

#[test]
fn errors_parse_table() {
    for &(input, want_err, patterns, stacktrace) in PARSE {
        let setup = testkit::setup(&DESCRIPTOR, input);
        match (want_err, &setup) {
            (Some(want), Err(e)) => assert_eq!(e.to_string(), want, "{input}"),
            (None, Ok(block)) => {
                assert_eq!(block.plugins.len(), 1, "{input}");
                assert_eq!(block.plugins[0].name(), "errors");
            }
            _ => panic!("{input}: unexpected outcome {setup:?}"),
        }
        let (result, block) = config(input);
        assert_eq!(block.stacktrace, stacktrace, "{input}: stacktrace");
        if let Ok(block) = &setup {
            assert_eq!(
                block.stacktrace, stacktrace,
                "{input}: stacktrace via setup"
            );
        }
        match result {
            Ok(cfg) => {
                assert!(want_err.is_none(), "{input}");
                assert_eq!(cfg.patterns.len(), patterns, "{input}");
            }
            Err(e) => {
                let want = want_err.unwrap_or_else(|| panic!("{input}: {e}"));
                assert_eq!(format!("plugin/errors: {e}"), want, "{input}");
            }
        }
    }
}

#[test]
fn log_levels() {
    let cases = [
        ("consolidate 1m .* warning", Level::Warning),
        ("consolidate 1m .* error", Level::Error),
        ("consolidate 1m .* info", Level::Info),
        ("consolidate 1m .* debug", Level::Debug),
        ("consolidate 1m .*", Level::Error),
    ];
    for (line, want) in cases {
        let (cfg, _) = config(&format!("errors {{\n  {line}\n}}"));
        let cfg = cfg.unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(cfg.patterns[0].level, want, "{line}");
        assert!(!cfg.patterns[0].show_first, "{line}");
    }
}

#[test]
fn show_first_option() {
    let cases = [
        ("consolidate 1m .* show_first", true, Level::Error),
        ("consolidate 1m .* warning show_first", true, Level::Warning),
        ("consolidate 1m .* error show_first", true, Level::Error),
        ("consolidate 1m .*", false, Level::Error),
        ("consolidate 1m .* info", false, Level::Info),
    ];
    for (line, show_first, level) in cases {
        let (cfg, _) = config(&format!("errors {{\n  {line}\n}}"));
        let cfg = cfg.unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(cfg.patterns.len(), 1);
        assert_eq!(cfg.patterns[0].show_first, show_first, "{line}");
        assert_eq!(cfg.patterns[0].level, level, "{line}");
    }
}

#[test]
fn pattern_details() {
    let (cfg, _) = config(
        "errors {\n  consolidate 5m \".* i/o timeout$\" warning\n  consolidate 30s \"^Failed to .+\"\n}",
    );
    let cfg = cfg.expect("config");
    assert_eq!(cfg.patterns[0].pattern, ".* i/o timeout$");
    assert_eq!(cfg.patterns[0].period.to_string(), "5m0s");
    assert_eq!(cfg.patterns[1].pattern, "^Failed to .+");
    assert_eq!(cfg.patterns[1].period.to_string(), "30s");
    assert!(cfg.patterns[1].regex.is_match("Failed to connect"));
}

#[test]
fn large_regex() {
    let ok = "a".repeat(10000);
    assert!(
        testkit::setup(
            &DESCRIPTOR,
            &format!("errors {{\n  consolidate 1m {ok}\n}}")
        )
        .is_ok()
    );
    let big = "a".repeat(10001);
    let err = testkit::setup(
        &DESCRIPTOR,
        &format!("errors {{\n  consolidate 1m {big}\n}}"),
    )
    .expect_err("too long");
    assert_eq!(
        err.to_string(),
        "plugin/errors: Testfile:3 - Error during parsing: regex pattern too long: 10001 > 10000"
    );
}

#[test]
fn registers_a_shutdown_hook() {
    let shared = Shared::default();
    testkit::setup_with(&DESCRIPTOR, "errors", &shared).expect("setup");
    assert_eq!(shared.lifecycles().len(), 1);
}

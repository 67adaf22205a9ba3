//! The setup table of CoreDNS's log plugin (setup_test.go), in our words, plus the exact error
//! texts of CoreDNS v1.14.7.

use std::collections::BTreeSet;

use ferrodns_plugin::SetupError;
use ferrodns_plugin_log::{
    COMBINED_LOG_FORMAT, COMMON_LOG_FORMAT, Class, DEFAULT_LOG_FORMAT, DESCRIPTOR, Rule, parse,
};
use ferrodns_plugin_test as testkit;

/// Parse the directive text as a block's `log` lines and read them into rules.
fn rules(text: &str) -> Result<Vec<Rule>, SetupError> {
    parse(&mut testkit::dispenser("log", text)?)
}

fn rule(scope: &str, format: &str, classes: &[Class]) -> Rule {
    Rule {
        name_scope: scope.to_string(),
        format: format.to_string(),
        classes: classes.iter().copied().collect::<BTreeSet<_>>(),
    }
}

#[test]
fn parse_table() {
    use Class::*;
    let cases: Vec<(&str, Vec<Rule>)> = vec![
        ("log", vec![rule(".", DEFAULT_LOG_FORMAT, &[All])]),
        (
            "log example.org",
            vec![rule("example.org.", DEFAULT_LOG_FORMAT, &[All])],
        ),
        (
            "log example.org. {common}",
            vec![rule("example.org.", COMMON_LOG_FORMAT, &[All])],
        ),
        (
            "log example.org {combined}",
            vec![rule("example.org.", COMBINED_LOG_FORMAT, &[All])],
        ),
        (
            "log example.org.\nlog example.net {combined}",
            vec![
                rule("example.org.", DEFAULT_LOG_FORMAT, &[All]),
                rule("example.net.", COMBINED_LOG_FORMAT, &[All]),
            ],
        ),
        (
            "log example.org {host}\n  log example.org {when}",
            vec![
                rule("example.org.", "{host}", &[All]),
                rule("example.org.", "{when}", &[All]),
            ],
        ),
        (
            "log example.org example.net",
            vec![
                rule("example.org.", DEFAULT_LOG_FORMAT, &[All]),
                rule("example.net.", DEFAULT_LOG_FORMAT, &[All]),
            ],
        ),
        (
            "log example.org example.net {host}",
            vec![
                rule("example.org.", "{host}", &[All]),
                rule("example.net.", "{host}", &[All]),
            ],
        ),
        (
            "log example.org example.net {when} {\n  class denial\n}",
            vec![
                rule("example.org.", "{when}", &[Denial]),
                rule("example.net.", "{when}", &[Denial]),
            ],
        ),
        (
            "log example.org {\n  class all\n}",
            vec![rule("example.org.", COMMON_LOG_FORMAT, &[All])],
        ),
        (
            "log example.org {\n  class denial\n}",
            vec![rule("example.org.", COMMON_LOG_FORMAT, &[Denial])],
        ),
        (
            "log {\n  class denial\n}",
            vec![rule(".", COMMON_LOG_FORMAT, &[Denial])],
        ),
        (
            "log {\n  class denial error\n}",
            vec![rule(".", COMMON_LOG_FORMAT, &[Denial, Error])],
        ),
        (
            "log {\n  class denial\n  class error\n}",
            vec![rule(".", COMMON_LOG_FORMAT, &[Denial, Error])],
        ),
        (
            "log example.org \"{combined} {/forward/upstream}\"",
            vec![rule(
                "example.org.",
                &format!("{COMBINED_LOG_FORMAT} {{/forward/upstream}}"),
                &[All],
            )],
        ),
        (
            "log example.org \"{common} {/forward/upstream}\"",
            vec![rule(
                "example.org.",
                &format!("{COMMON_LOG_FORMAT} {{/forward/upstream}}"),
                &[All],
            )],
        ),
        (
            "log example.org \"{when} {combined} {/forward/upstream}\"",
            vec![rule(
                "example.org.",
                &format!("{{when}} {COMBINED_LOG_FORMAT} {{/forward/upstream}}"),
                &[All],
            )],
        ),
        (
            "log example.org \"{when} {common} {/forward/upstream}\"",
            vec![rule(
                "example.org.",
                &format!("{{when}} {COMMON_LOG_FORMAT} {{/forward/upstream}}"),
                &[All],
            )],
        ),
        // Our additions: a lone argument is a name even with a brace; the block's classes
        // belong to its own line only; several lines keep their order.
        (
            "log {common}",
            vec![rule("{common}.", DEFAULT_LOG_FORMAT, &[All])],
        ),
        (
            "log a {\n class success\n}\nlog b",
            vec![
                rule("a.", DEFAULT_LOG_FORMAT, &[Success]),
                rule("b.", DEFAULT_LOG_FORMAT, &[All]),
            ],
        ),
        (
            "log a b c",
            vec![
                rule("a.", DEFAULT_LOG_FORMAT, &[All]),
                rule("b.", DEFAULT_LOG_FORMAT, &[All]),
                rule("c.", DEFAULT_LOG_FORMAT, &[All]),
            ],
        ),
        (
            "log . {\n class all denial\n}",
            vec![rule(".", DEFAULT_LOG_FORMAT, &[All, Denial])],
        ),
    ];
    for (input, want) in cases {
        let got = rules(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(got, want, "{input}");
        let block = testkit::setup(&DESCRIPTOR, input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(block.plugins.len(), 1, "{input}");
        assert_eq!(block.plugins[0].name(), "log");
    }
}

#[test]
fn error_table() {
    // Texts as CoreDNS v1.14.7 prints them (file name aside).
    let cases = [
        (
            "log {\n  class abracadabra\n}",
            "plugin/log: invalid Class: abracadabra",
        ),
        (
            "log {\n  class\n}",
            "plugin/log: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'class'",
        ),
        (
            "log {\n  unknown\n}",
            "plugin/log: Testfile:3 - Error during parsing: unknown property 'unknown'",
        ),
        (
            "log { unknown }",
            "plugin/log: Testfile:2 - Error during parsing: unknown property 'unknown'",
        ),
        (
            "log a {\n class all\n}\nlog b c {x} {\n class bogus\n}",
            "plugin/log: invalid Class: bogus",
        ),
    ];
    for (input, want) in cases {
        let err = testkit::setup(&DESCRIPTOR, input).expect_err(input);
        assert_eq!(err.to_string(), want, "{input}");
    }
}

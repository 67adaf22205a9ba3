//! CoreDNS's any setup tests (setup_test.go), with the exact error texts of v1.14.7.

use ferrodns_plugin_any::DESCRIPTOR;
use ferrodns_plugin_test as testkit;

const CASES: &[(&str, Option<&str>)] = &[
    ("any", None),
    (
        "any {\n}",
        Some(
            "plugin/any: Testfile:2 - Error during parsing: Unexpected token '{', expecting argument",
        ),
    ),
    (
        "any example.org",
        Some(
            "plugin/any: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'example.org'",
        ),
    ),
    (
        "any {\nfoo\n}",
        Some(
            "plugin/any: Testfile:2 - Error during parsing: Unexpected token '{', expecting argument",
        ),
    ),
];

#[test]
fn setup_table() {
    for (input, want) in CASES {
        let got = testkit::setup(&DESCRIPTOR, input);
        match (got, want) {
            (Ok(block), None) => assert_eq!(block.plugins.len(), 1, "{input}"),
            (Err(e), Some(w)) => assert_eq!(e.to_string(), *w, "{input}"),
            (Ok(_), Some(w)) => panic!("{input}: expected error {w}"),
            (Err(e), None) => panic!("{input}: unexpected error {e}"),
        }
    }
}

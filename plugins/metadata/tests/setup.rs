//! The metadata directive's syntax and errors, as CoreDNS v1.14.7 reports them.

use ferrodns_plugin_metadata::DESCRIPTOR;
use ferrodns_plugin_test as testkit;

#[test]
fn accepted() {
    for input in ["metadata", "metadata {\n}", "metadata example.org"] {
        let block = testkit::setup(&DESCRIPTOR, input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(block.plugins.len(), 1, "{input}");
        assert_eq!(block.plugins[0].name(), "metadata");
    }
}

#[test]
fn zones_default_to_the_blocks_and_are_normalised() {
    let zones = |input: &str| {
        let mut block = testkit::block(&["example.org."]);
        testkit::parse_in(&mut block, "metadata", input, |c| {
            c.next();
            let args = c.remaining_args();
            Ok(ferrodns_pkg::names::origins(&args, &c.zone_names()))
        })
        .expect("parse")
    };
    assert_eq!(zones("metadata"), vec!["example.org."]);
    assert_eq!(
        zones("metadata A.example.NET 10.0.0.0/24"),
        vec!["a.example.net.", "0.0.10.in-addr.arpa."]
    );
}

#[test]
fn rejected() {
    let bad = [
        (
            "metadata {\nfoo\n}",
            "plugin/metadata: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'foo'",
        ),
        (
            "metadata\nmetadata",
            "plugin/metadata: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'metadata'",
        ),
    ];
    for (input, want) in bad {
        let err = testkit::setup(&DESCRIPTOR, input).expect_err(input);
        assert_eq!(err.to_string(), want, "{input}");
    }
}

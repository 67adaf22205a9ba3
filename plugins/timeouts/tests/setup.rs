//! The timeouts directive's syntax, values and errors, as CoreDNS v1.14.7 reports them.

use std::time::Duration;

use ferrodns_plugin::ConnTimeouts;
use ferrodns_plugin_test as testkit;
use ferrodns_plugin_timeouts::DESCRIPTOR;

fn secs(n: u64) -> Option<Duration> {
    Some(Duration::from_secs(n))
}

#[test]
fn values_accepted() {
    let ok = [
        (
            "timeouts {\nread 10s\nwrite 20s\nidle 60s\n}",
            ConnTimeouts {
                read: secs(10),
                write: secs(20),
                idle: secs(60),
                max_queries: None,
            },
        ),
        (
            "timeouts {\nread 1m\n}",
            ConnTimeouts {
                read: secs(60),
                ..ConnTimeouts::default()
            },
        ),
        (
            // A bare number is seconds; the bounds are inclusive.
            "timeouts {\nidle 30\nread 1\nwrite 24h\n}",
            ConnTimeouts {
                read: secs(1),
                write: secs(86400),
                idle: secs(30),
                max_queries: None,
            },
        ),
        (
            "timeouts {\nmaxtcpqueries 128\n}",
            ConnTimeouts {
                max_queries: Some(128),
                ..ConnTimeouts::default()
            },
        ),
        (
            "timeouts {\nmaxtcpqueries -1\n}",
            ConnTimeouts {
                max_queries: Some(-1),
                ..ConnTimeouts::default()
            },
        ),
        (
            // Several lines: each value replaces the one before.
            "timeouts {\nread 5s\nread 7s\n}\ntimeouts {\nidle 2m\n}",
            ConnTimeouts {
                read: secs(7),
                idle: secs(120),
                ..ConnTimeouts::default()
            },
        ),
    ];
    for (input, want) in ok {
        let block = testkit::setup(&DESCRIPTOR, input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(block.timeouts, want, "{input}");
        assert!(block.plugins.is_empty(), "no handler");
    }
}

#[test]
fn errors_as_coredns() {
    let p = "plugin/timeouts: ";
    let bad = [
        (
            "timeouts",
            format!(
                "{p}{p}Testfile:2 - Error during parsing: timeouts block with no timeouts specified"
            ),
        ),
        (
            "timeouts {\n}",
            format!(
                "{p}{p}Testfile:3 - Error during parsing: timeouts block with no timeouts specified"
            ),
        ),
        (
            "timeouts 5s",
            format!(
                "{p}{p}Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after '5s'"
            ),
        ),
        (
            "timeouts {\nread\n}",
            format!(
                "{p}Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'read'"
            ),
        ),
        (
            "timeouts {\nread 1s 2s\n}",
            format!(
                "{p}Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after '2s'"
            ),
        ),
        (
            "timeouts {\nread abc\n}",
            format!("{p}Testfile:3 - Error during parsing: failed to parse duration 'abc'"),
        ),
        (
            "timeouts {\nread 0\n}",
            format!(
                "{p}Testfile:3 - Error during parsing: timeout provided '0s' needs to be between 1 second and 24 hours"
            ),
        ),
        (
            "timeouts {\nidle 500ms\n}",
            format!(
                "{p}Testfile:3 - Error during parsing: timeout provided '500ms' needs to be between 1 second and 24 hours"
            ),
        ),
        (
            "timeouts {\nwrite 25h\n}",
            format!(
                "{p}Testfile:3 - Error during parsing: timeout provided '25h0m0s' needs to be between 1 second and 24 hours"
            ),
        ),
        (
            "timeouts {\nwrite -5\n}",
            format!(
                "{p}Testfile:3 - Error during parsing: timeout provided '-5s' needs to be between 1 second and 24 hours"
            ),
        ),
        (
            // The value is checked before the option's name.
            "timeouts {\nfoo 5s\n}",
            format!("{p}Testfile:3 - Error during parsing: unknown option: 'foo'"),
        ),
        (
            "timeouts {\nfoo bar\n}",
            format!("{p}Testfile:3 - Error during parsing: failed to parse duration 'bar'"),
        ),
        (
            "timeouts {\nmaxtcpqueries 0\n}",
            format!(
                "{p}Testfile:3 - Error during parsing: maxtcpqueries provided '0' needs to be -1 (unlimited) or a positive integer"
            ),
        ),
        (
            "timeouts {\nmaxtcpqueries -2\n}",
            format!(
                "{p}Testfile:3 - Error during parsing: maxtcpqueries provided '-2' needs to be -1 (unlimited) or a positive integer"
            ),
        ),
        (
            "timeouts {\nmaxtcpqueries many\n}",
            format!(
                "{p}Testfile:3 - Error during parsing: invalid value for maxtcpqueries 'many': strconv.Atoi: parsing \"many\": invalid syntax"
            ),
        ),
    ];
    for (input, want) in bad {
        let err = testkit::setup(&DESCRIPTOR, input).expect_err(input);
        assert_eq!(err.to_string(), want, "{input}");
    }
}

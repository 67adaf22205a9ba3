//! The health directive's syntax and errors, as CoreDNS v1.14.7 reports them.

use std::time::Duration;

use ferrodns_plugin::{SetupError, Shared};
use ferrodns_plugin_health::{Config, DESCRIPTOR, NAME, PATH, parse};
use ferrodns_plugin_test as testkit;

fn parse_text(text: &str) -> Result<Config, SetupError> {
    testkit::parse_with(NAME, text, parse)
}

fn ok(addr: &str, lameduck_ms: u64) -> Result<Config, String> {
    Ok(Config {
        addr: addr.to_string(),
        lameduck: Duration::from_millis(lameduck_ms),
    })
}

#[test]
fn syntax_table() {
    let cases: &[(&str, Result<Config, String>)] = &[
        ("health", ok(":8080", 0)),
        ("health localhost:1234", ok("localhost:1234", 0)),
        ("health localhost:1234 {\n lameduck 4s\n}", ok("localhost:1234", 4000)),
        ("health {\n lameduck 1m30s\n}", ok(":8080", 90_000)),
        ("health {\n lameduck 250ms\n}", ok(":8080", 250)),
        // Go parses a negative duration; it means no lameduck.
        ("health {\n lameduck -1s\n}", ok(":8080", 0)),
        // The port is only looked at when listening.
        ("health bla:a", ok("bla:a", 0)),
        ("health [::1]:8080", ok("[::1]:8080", 0)),
        // Not once per block: the last address and lameduck win.
        (
            "health :1\nhealth :2 {\n lameduck 1s\n}",
            ok(":2", 1000),
        ),
        ("health :1 {\n lameduck 1s\n}\nhealth", ok(":1", 1000)),
        (
            "health localhost",
            Err("plugin/health: address localhost: missing port in address".into()),
        ),
        (
            "health bla bla",
            Err("plugin/health: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'bla'".into()),
        ),
        (
            "health [::1",
            Err("plugin/health: address [::1: missing ']' in address".into()),
        ),
        (
            "health [::1]",
            Err("plugin/health: address [::1]: missing port in address".into()),
        ),
        (
            "health a:b:c",
            Err("plugin/health: address a:b:c: too many colons in address".into()),
        ),
        (
            "health [::1]x:1",
            Err("plugin/health: address [::1]x:1: missing port in address".into()),
        ),
        (
            "health \"\"",
            Err("plugin/health: missing port in address".into()),
        ),
        (
            "health {\n lameduck\n}",
            Err("plugin/health: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'lameduck'".into()),
        ),
        (
            "health {\n lameduck 1s 2s\n}",
            Err("plugin/health: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after '2s'".into()),
        ),
        (
            "health localhost:1234 {\n lameduck a\n}",
            Err("plugin/health: unable to parse lameduck duration value: 'a' : time: invalid duration \"a\"".into()),
        ),
        (
            "health {\n lameduck 5\n}",
            Err("plugin/health: unable to parse lameduck duration value: '5' : time: missing unit in duration \"5\"".into()),
        ),
        (
            "health {\n lameduck 1x\n}",
            Err("plugin/health: unable to parse lameduck duration value: '1x' : time: unknown unit \"x\" in duration \"1x\"".into()),
        ),
        (
            "health localhost:1234 {\n lamedudk 4\n}",
            Err("plugin/health: Testfile:3 - Error during parsing: unknown property 'lamedudk'".into()),
        ),
    ];
    for (input, want) in cases {
        let got = parse_text(input).map_err(|e| e.to_string());
        assert_eq!(&got, want, "{input}");
    }
}

#[test]
fn setup_routes_health_and_adds_no_handler() {
    let shared = Shared::default();
    let block = testkit::setup_with(&DESCRIPTOR, "health 127.0.0.1:18080", &shared).unwrap();
    assert!(block.plugins.is_empty(), "health is not a handler");
    let routes = shared.http.routes();
    let paths = routes.get("127.0.0.1:18080").expect("route on the address");
    let page = paths.get(PATH).expect("/health routed");
    let resp = page.handle();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"OK");
    assert_eq!(resp.content_type, "text/plain; charset=utf-8");
    assert_eq!(shared.lifecycles().len(), 1);
}

#[test]
fn families_are_registered_at_process_start() {
    let text = testkit::startup_metrics(&DESCRIPTOR);
    assert!(
        text.contains("# TYPE coredns_health_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("# HELP coredns_health_request_duration_seconds Histogram of the time (in seconds) each request took."),
        "{text}"
    );
    for le in ["0.00025", "0.0025", "0.025", "0.25", "2.5", "+Inf"] {
        assert!(
            text.contains(&format!(
                "coredns_health_request_duration_seconds_bucket{{le=\"{le}\"}} 0"
            )),
            "bucket {le}: {text}"
        );
    }
    assert!(
        text.contains("# TYPE coredns_health_request_failures counter"),
        "{text}"
    );
    assert!(
        text.contains("coredns_health_request_failures_total 0"),
        "{text}"
    );
}

//! The ready directive's syntax and errors, as CoreDNS v1.14.7 reports them.

use ferrodns_plugin::{SetupError, Shared};
use ferrodns_plugin_ready::{Config, DESCRIPTOR, Monitor, NAME, PATH, parse};
use ferrodns_plugin_test as testkit;

fn parse_text(text: &str) -> Result<Config, SetupError> {
    testkit::parse_with(NAME, text, parse)
}

fn ok(addr: &str, monitor: Monitor) -> Result<Config, String> {
    Ok(Config {
        addr: addr.to_string(),
        monitor,
    })
}

#[test]
fn syntax_table() {
    use Monitor::*;
    let cases: &[(&str, Result<Config, String>)] = &[
        ("ready", ok(":8181", UntilReady)),
        ("ready localhost:1234", ok("localhost:1234", UntilReady)),
        ("ready {\n monitor until-ready\n}", ok(":8181", UntilReady)),
        ("ready {\n monitor continuously\n}", ok(":8181", Continuously)),
        (
            "ready localhost:1234 {\n monitor continuously\n}",
            ok("localhost:1234", Continuously),
        ),
        (
            "ready {\n monitor continuously\n monitor until-ready\n}",
            ok(":8181", UntilReady),
        ),
        ("ready [::1]:8181", ok("[::1]:8181", UntilReady)),
        (
            "ready localhost",
            Err("plugin/ready: address localhost: missing port in address".into()),
        ),
        (
            "ready a b",
            Err("plugin/ready: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'b'".into()),
        ),
        (
            "ready\nready",
            Err("plugin/ready: this plugin can only be used once per Server Block".into()),
        ),
        (
            "ready {\n monitor\n}",
            Err("plugin/ready: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'monitor'".into()),
        ),
        (
            "ready {\n monitor a b\n}",
            Err("plugin/ready: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'b'".into()),
        ),
        (
            "ready localhost:1234 {\n monitor 404\n}",
            Err("plugin/ready: Testfile:3 - Error during parsing: monitor type '404' not supported".into()),
        ),
        (
            "ready {\n foo\n}",
            Err("plugin/ready: Testfile:3 - Error during parsing: unknown property 'foo'".into()),
        ),
    ];
    for (input, want) in cases {
        let got = parse_text(input).map_err(|e| e.to_string());
        assert_eq!(&got, want, "{input}");
    }
}

#[test]
fn setup_routes_ready_and_adds_no_handler() {
    let shared = Shared::default();
    let block = testkit::setup_with(&DESCRIPTOR, "ready 127.0.0.1:18181", &shared).unwrap();
    assert!(block.plugins.is_empty(), "ready is not a handler");
    let routes = shared.http.routes();
    let page = routes
        .get("127.0.0.1:18181")
        .and_then(|p| p.get(PATH))
        .expect("/ready routed");
    let resp = page.handle();
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"OK"[..]));
}

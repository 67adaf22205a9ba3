//! The setup table of CoreDNS's prometheus (metrics) plugin, in our words.

use ferrodns_plugin::Shared;
use ferrodns_plugin_prometheus::DESCRIPTOR;
use ferrodns_plugin_test as testkit;

#[test]
fn setup_table() {
    let cases: &[(&str, Option<&str>, Option<&str>)] = &[
        ("prometheus", None, Some("localhost:9153")),
        ("prometheus localhost:53", None, Some("localhost:53")),
        ("prometheus :9153", None, Some(":9153")),
        ("prometheus [::1]:9153", None, Some("[::1]:9153")),
        (
            "prometheus localhost",
            Some("plugin/prometheus: address localhost: missing port in address"),
            None,
        ),
        (
            "prometheus a b",
            Some(
                "plugin/prometheus: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'b'",
            ),
            None,
        ),
        (
            "prometheus\nprometheus",
            Some("plugin/prometheus: this plugin can only be used once per Server Block"),
            None,
        ),
        (
            "prometheus {\n runtime_metrics\n}",
            None,
            Some("localhost:9153"),
        ),
        (
            "prometheus {\n runtime_metrics x\n}",
            Some(
                "plugin/prometheus: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'x'",
            ),
            None,
        ),
        (
            "prometheus {\n foo\n}",
            Some("plugin/prometheus: Testfile:3 - Error during parsing: unknown option: foo"),
            None,
        ),
    ];
    for (input, err, addr) in cases {
        let shared = Shared::default();
        let got = testkit::setup_with(&DESCRIPTOR, input, &shared);
        match (got, err) {
            (Ok(block), None) => {
                assert_eq!(block.plugins.len(), 1, "{input}");
                let routes = shared.http.routes();
                let want = addr.unwrap();
                assert!(
                    routes.get(want).is_some_and(|p| p.contains_key("/metrics")),
                    "{input}: {:?}",
                    routes.keys().collect::<Vec<_>>()
                );
            }
            (Err(e), Some(want)) => assert_eq!(&e.to_string(), want, "{input}"),
            (got, want) => panic!("{input}: got {got:?}, want error {want:?}"),
        }
    }
}

#[test]
fn address_and_block_errors() {
    // Addresses are read as Go's net.SplitHostPort reads them; block errors carry file:line.
    let cases = [
        (
            "prometheus [::1",
            "plugin/prometheus: address [::1: missing ']' in address",
        ),
        (
            "prometheus [::1]",
            "plugin/prometheus: address [::1]: missing port in address",
        ),
        (
            "prometheus a:b:c",
            "plugin/prometheus: address a:b:c: too many colons in address",
        ),
        (
            "prometheus \"\"",
            "plugin/prometheus: missing port in address",
        ),
        (
            "prometheus {\n tls cert.yaml\n}",
            "plugin/prometheus: Testfile:3 - Error during parsing: tls for the metrics endpoint is not supported by ferrodns yet",
        ),
        (
            "prometheus :9153 {\n runtime_metrics\n bogus 1\n}",
            "plugin/prometheus: Testfile:4 - Error during parsing: unknown option: bogus",
        ),
        (
            "\n\nprometheus a b c",
            "plugin/prometheus: Testfile:4 - Error during parsing: Wrong argument count or unexpected line ending after 'c'",
        ),
        (
            "prometheus :9153 {\n runtime_metrics\n}\nprometheus :9154",
            "plugin/prometheus: this plugin can only be used once per Server Block",
        ),
    ];
    for (input, want) in cases {
        let err = testkit::setup(&DESCRIPTOR, input).expect_err(input);
        assert_eq!(err.to_string(), want, "{input}");
    }
}

#[test]
fn parse_reads_the_address() {
    use ferrodns_plugin_prometheus::{Config, DEFAULT_ADDR, NAME, parse};
    let read = |text: &str| testkit::parse_with(NAME, text, parse).map_err(|e| e.to_string());
    assert_eq!(
        read("prometheus"),
        Ok(Config {
            addr: DEFAULT_ADDR.to_string()
        })
    );
    assert_eq!(DEFAULT_ADDR, "localhost:9153");
    assert_eq!(
        read("prometheus 0.0.0.0:9153 {\n runtime_metrics\n}"),
        Ok(Config {
            addr: "0.0.0.0:9153".to_string()
        })
    );
    // The port is only looked at when listening.
    assert_eq!(
        read("prometheus localhost:http"),
        Ok(Config {
            addr: "localhost:http".to_string()
        })
    );
}

#[test]
fn setup_adds_the_counting_handler_and_no_hook() {
    let shared = Shared::default();
    let block = testkit::setup_with(&DESCRIPTOR, "prometheus :9253", &shared).unwrap();
    assert_eq!(block.plugins.len(), 1);
    assert_eq!(block.plugins[0].name(), "prometheus");
    assert!(shared.lifecycles().is_empty());
    // Two blocks naming one address share its route.
    testkit::setup_with(&DESCRIPTOR, "prometheus :9253", &shared).unwrap();
    let routes = shared.http.routes();
    assert_eq!(routes.len(), 1, "{:?}", routes.keys().collect::<Vec<_>>());
    assert!(routes[":9253"].contains_key("/metrics"));
}

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

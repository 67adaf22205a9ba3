//! Setup: options, defaults and CoreDNS's error texts.

use ferrodns_plugin_k8s_external::{Config, DESCRIPTOR};
use ferrodns_plugin_test as testkit;

fn err(text: &str) -> String {
    testkit::setup(&DESCRIPTOR, text)
        .expect_err("an error")
        .to_string()
}

#[test]
fn options_are_read() {
    let settings = testkit::setup(
        &DESCRIPTOR,
        "k8s_external example.org example.com {\n apex zone\n ttl 30\n headless\n fallthrough a.example\n}",
    )
    .expect("setup");
    assert_eq!(settings.plugins[0].name(), "k8s_external");
    let d = Config::default();
    assert_eq!((d.apex.as_str(), d.ttl, d.headless), ("dns", 5, false));
}

#[test]
fn errors_read_as_coredns_writes_them() {
    assert_eq!(
        err("k8s_external {\n ttl\n}"),
        "plugin/k8s_external: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'ttl'"
    );
    assert_eq!(
        err("k8s_external {\n ttl x\n}"),
        "plugin/k8s_external: strconv.Atoi: parsing \"x\": invalid syntax"
    );
    assert_eq!(
        err("k8s_external {\n ttl 3601\n}"),
        "plugin/k8s_external: Testfile:3 - Error during parsing: ttl must be in range [0, 3600]: 3601"
    );
    assert_eq!(
        err("k8s_external {\n apex\n}"),
        "plugin/k8s_external: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'apex'"
    );
    assert_eq!(
        err("k8s_external {\n colour blue\n}"),
        "plugin/k8s_external: Testfile:3 - Error during parsing: unknown property 'colour'"
    );
}

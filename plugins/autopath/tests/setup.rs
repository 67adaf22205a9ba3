//! Setup: the directive's forms and CoreDNS's error texts.

use ferrodns_plugin_autopath::DESCRIPTOR;
use ferrodns_plugin_test::{self as testkit, TempDir};

#[test]
fn no_argument_is_an_error_without_a_location() {
    let err = testkit::setup(&DESCRIPTOR, "autopath").expect_err("no resolv-conf");
    assert_eq!(err.to_string(), "plugin/autopath: no resolv-conf specified");
}

#[test]
fn a_missing_file_is_reported_as_go_does() {
    let err =
        testkit::setup(&DESCRIPTOR, "autopath /nonexistent/resolv.conf").expect_err("missing");
    assert_eq!(
        err.to_string(),
        "plugin/autopath: failed to parse \"/nonexistent/resolv.conf\": open /nonexistent/resolv.conf: no such file or directory"
    );
}

#[test]
fn a_directory_reads_as_an_empty_file() {
    let dir = TempDir::new("autopath-dir");
    let text = format!("autopath {}", dir.path().display());
    let settings = testkit::setup(&DESCRIPTOR, &text).expect("a directory is accepted");
    assert_eq!(settings.plugins.len(), 1);
}

#[test]
fn plugin_and_zone_forms_are_accepted() {
    let settings = testkit::setup(&DESCRIPTOR, "autopath @kubernetes").expect("plugin form");
    assert_eq!(settings.plugins[0].name(), "autopath");
    testkit::setup(&DESCRIPTOR, "autopath example.org 10.0.0.0/8 @kubernetes").expect("zones");
}

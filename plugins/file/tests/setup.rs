//! CoreDNS's file setup tables (setup_test.go: TestFileParse, TestParseReload) and the errors of
//! setup.go and file.go's Parse, with the texts of CoreDNS v1.14.7.

use std::time::Duration;

use ferrodns_plugin::SetupError;
use ferrodns_plugin_file::{Config, DESCRIPTOR, parse};
use ferrodns_plugin_test as testkit;

const ZONE: &str = "$TTL 300\n@ IN SOA ns.miek.nl. h.miek.nl. 7 1 1 1 1\n@ IN NS ns\nns IN A 192.0.2.1\nwww IN A 192.0.2.2\n";

fn config(text: &str) -> Result<Config, SetupError> {
    testkit::parse_in(&mut testkit::block(&["miek.nl."]), "file", text, parse)
}

#[test]
fn file_parse_table() {
    let t = testkit::TempDir::new("parse");
    let f = t.write("db.miek.nl", ZONE);
    // (input, zone names, fallthrough zones)
    let ok: Vec<(String, Vec<&str>, Vec<&str>)> = vec![
        (format!("file {f} miek.nl."), vec!["miek.nl."], vec![]),
        (format!("file {f}"), vec!["miek.nl."], vec![]),
        (
            format!("file {f} 10.0.0.0/8"),
            vec!["10.in-addr.arpa."],
            vec![],
        ),
        (
            format!("file {f} example.org. {{\n fallthrough\n }}"),
            vec!["example.org."],
            vec!["."],
        ),
        (
            format!("file {f} example.org. {{\n fallthrough www.example.org\n }}"),
            vec!["example.org."],
            vec!["www.example.org."],
        ),
        (
            format!("file {f} a.org b.org"),
            vec!["a.org.", "b.org."],
            vec![],
        ),
    ];
    for (input, names, fall) in ok {
        let cfg = config(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
        let got: Vec<&str> = cfg.zones.iter().map(|z| z.origin.as_str()).collect();
        assert_eq!(got, names, "{input}");
        assert_eq!(cfg.fall.zones, fall, "{input}");
    }
    let errors: Vec<(String, String)> = vec![
        (
            format!("file {f} miek.nl {{\n transfer from 127.0.0.1\n }}"),
            "plugin/file: Testfile:3 - Error during parsing: unknown property 'transfer'".into(),
        ),
        (
            "file".into(),
            "plugin/file: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'file'".into(),
        ),
        (
            format!("file {f} example.net. {{\n no_reload\n }}"),
            "plugin/file: Testfile:3 - Error during parsing: unknown property 'no_reload'".into(),
        ),
        (
            format!("file {f} {{\n reload\n }}"),
            "plugin/file: reload duration value is expected".into(),
        ),
        (
            format!("file {f} {{\n reload 5\n }}"),
            "plugin/file: plugin/file: time: missing unit in duration \"5\"".into(),
        ),
        (
            format!("file {}/nonexistent {{\n reload 0\n }}", t.path().display()),
            format!(
                "plugin/file: plugin/file: open {}/nonexistent: no such file or directory",
                t.path().display()
            ),
        ),
    ];
    for (input, want) in errors {
        let got = testkit::setup(&DESCRIPTOR, &input)
            .err()
            .map(|e| e.to_string());
        assert_eq!(got.as_deref(), Some(want.as_str()), "{input}");
    }
}

#[test]
fn parse_reload() {
    let t = testkit::TempDir::new("reload");
    let f = t.write("db", ZONE);
    let cases = [
        (
            format!("file {f} example.org."),
            Duration::from_secs(60),
            false,
        ),
        (
            format!("file {f} example.org. {{\n reload 5s\n }}"),
            Duration::from_secs(5),
            false,
        ),
        (
            format!("file {f} example.org. {{\n reload 0\n reload_by_mtime\n }}"),
            Duration::ZERO,
            true,
        ),
    ];
    for (input, reload, by_mtime) in cases {
        let cfg = config(&input).expect("ok");
        assert_eq!(cfg.zones[0].reload, reload, "{input}");
        assert_eq!(cfg.zones[0].by_mtime, by_mtime, "{input}");
    }
}

#[test]
fn zone_file_errors() {
    let t = testkit::TempDir::new("errors");
    let no_soa = t.write("nosoa", "$TTL 300\nwww.miek.nl. IN A 192.0.2.1\n");
    let err = testkit::setup(&DESCRIPTOR, &format!("file {no_soa} miek.nl."))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err,
        Some(format!(
            "plugin/file: file \"{no_soa}\" has no SOA record for origin miek.nl."
        ))
    );
    let zero = t.write("zero", "miek.nl. 300 IN SOA ns. h. 0 1 1 1 1\n");
    let err = testkit::setup(&DESCRIPTOR, &format!("file {zero} miek.nl."))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err,
        Some(format!(
            "plugin/file: no change in SOA serial for origin miek.nl. in file {zero}, with 0 SOA serial"
        ))
    );
    let bad = t.write(
        "bad",
        "miek.nl. 300 IN SOA ns. h. 1 1 1 1 1\nwww IN A 1.2.3.x\n",
    );
    let err = testkit::setup(&DESCRIPTOR, &format!("file {bad} miek.nl."))
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.starts_with(&format!(
            "plugin/file: failed to parse file \"{bad}\" for origin miek.nl. with error "
        ))),
        "{err:?}"
    );
}

//! The reload directive's syntax and errors: the interval and jitter arguments, their bounds and
//! defaults, and the one checker per instance.

use std::time::Duration;

use ferrodns_plugin::{SetupError, Shared};
use ferrodns_plugin_reload::{Config, DEFAULT_INTERVAL, DEFAULT_JITTER, DESCRIPTOR, NAME, parse};
use ferrodns_plugin_test as testkit;

fn parse_text(text: &str) -> Result<Config, SetupError> {
    testkit::parse_with(NAME, text, parse)
}

#[test]
fn setup_registers_one_hook_per_instance() {
    let shared = Shared::default();
    testkit::setup_with(&DESCRIPTOR, "reload 5s", &shared).unwrap();
    testkit::setup_with(&DESCRIPTOR, "reload 8s", &shared).unwrap();
    assert_eq!(shared.lifecycles().len(), 1);
}

#[test]
fn each_instance_gets_its_own_hook() {
    let (first, second) = (Shared::default(), Shared::default());
    testkit::setup_with(&DESCRIPTOR, "reload 5s", &first).unwrap();
    testkit::setup_with(&DESCRIPTOR, "reload 5s", &second).unwrap();
    assert_eq!(first.lifecycles().len(), 1);
    assert_eq!(second.lifecycles().len(), 1);
}

#[test]
fn setup_adds_no_handler() {
    let block = testkit::setup(&DESCRIPTOR, "reload 5s").unwrap();
    assert!(block.plugins.is_empty(), "reload is not a handler");
}

#[test]
fn defaults_and_arguments() {
    assert_eq!(
        parse_text("reload").unwrap(),
        Config {
            interval: DEFAULT_INTERVAL,
            jitter: DEFAULT_JITTER
        }
    );
    assert_eq!(
        parse_text("reload 10s").unwrap(),
        Config {
            interval: Duration::from_secs(10),
            jitter: Duration::from_secs(5)
        }
    );
    assert_eq!(
        parse_text("reload 3s 0").unwrap(),
        Config {
            interval: Duration::from_secs(3),
            jitter: Duration::ZERO
        }
    );
}

#[test]
fn accepted_forms() {
    let ok = |i: u64, j: u64| {
        Ok::<_, String>(Config {
            interval: Duration::from_millis(i),
            jitter: Duration::from_millis(j),
        })
    };
    let cases: &[(&str, Result<Config, String>)] = &[
        ("reload", ok(30_000, 15_000)),
        // The smallest interval and jitter allowed.
        ("reload 2s", ok(2_000, 1_000)),
        ("reload 2s 1s", ok(2_000, 1_000)),
        // A jitter over half the interval is cut to half the interval.
        ("reload 10s 30s", ok(10_000, 5_000)),
        ("reload 10s 5s", ok(10_000, 5_000)),
        ("reload 10s 4s", ok(10_000, 4_000)),
        ("reload 1m 0s", ok(60_000, 0)),
        ("reload 1m30s 2500ms", ok(90_000, 2_500)),
        ("reload 2000ms", ok(2_000, 1_000)),
        // Go durations: a sign, fractions.
        ("reload +3s", ok(3_000, 1_500)),
        ("reload 2.5s 1.5s", ok(2_500, 1_250)),
        // Only the first line of the block is read, as in CoreDNS.
        ("reload 4s\nreload 1s", ok(4_000, 2_000)),
        ("reload\nreload 1 2 3", ok(30_000, 15_000)),
    ];
    for (input, want) in cases {
        assert_eq!(
            &parse_text(input).map_err(|e| e.to_string()),
            want,
            "{input}"
        );
    }
}

#[test]
fn coredns_errors() {
    let e = |t: &str| parse_text(t).unwrap_err().to_string();
    assert_eq!(
        e("reload 1s"),
        "plugin/reload: interval value must be greater or equal to 2s"
    );
    assert_eq!(
        e("reload -5s"),
        "plugin/reload: interval value must be greater or equal to 2s"
    );
    assert_eq!(
        e("reload 10s 500ms"),
        "plugin/reload: jitter value must be 0 or greater or equal to 1s"
    );
    assert_eq!(
        e("reload 10s x"),
        "plugin/reload: time: invalid duration \"x\""
    );
    assert!(
        e("reload 1 2 3").contains("Wrong argument count"),
        "{}",
        e("reload 1 2 3")
    );
}

#[test]
fn error_texts() {
    // The bounds and duration errors carry no position, as in CoreDNS; only the argument count
    // error names the file and line.
    let cases = [
        (
            "reload 1 2 3",
            "plugin/reload: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after '3'",
        ),
        (
            "reload 10s 5s 1s",
            "plugin/reload: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after '1s'",
        ),
        (
            "\n\nreload 1s 1s 1s",
            "plugin/reload: Testfile:4 - Error during parsing: Wrong argument count or unexpected line ending after '1s'",
        ),
        (
            "reload 1999ms",
            "plugin/reload: interval value must be greater or equal to 2s",
        ),
        (
            "reload 0",
            "plugin/reload: interval value must be greater or equal to 2s",
        ),
        (
            "reload -1m",
            "plugin/reload: interval value must be greater or equal to 2s",
        ),
        (
            "reload 10s -1s",
            "plugin/reload: jitter value must be 0 or greater or equal to 1s",
        ),
        (
            "reload 10s 999ms",
            "plugin/reload: jitter value must be 0 or greater or equal to 1s",
        ),
        (
            "reload 5",
            "plugin/reload: time: missing unit in duration \"5\"",
        ),
        (
            "reload 5x",
            "plugin/reload: time: unknown unit \"x\" in duration \"5x\"",
        ),
        ("reload x", "plugin/reload: time: invalid duration \"x\""),
        (
            "reload --5s",
            "plugin/reload: time: invalid duration \"--5s\"",
        ),
        (
            "reload 10s 2",
            "plugin/reload: time: missing unit in duration \"2\"",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            parse_text(input).map_err(|e| e.to_string()),
            Err(want.to_string()),
            "{input}"
        );
    }
}

#[test]
fn setup_reports_the_same_errors() {
    let err = testkit::setup(&DESCRIPTOR, "reload 1s").unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin/reload: interval value must be greater or equal to 2s"
    );
    let err = testkit::setup(&DESCRIPTOR, "reload 1 2 3").unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin/reload: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after '3'"
    );
}

#[test]
fn failure_counter_is_registered_at_process_start() {
    let text = testkit::startup_metrics(&DESCRIPTOR);
    assert!(
        text.contains("# TYPE coredns_reload_failed counter"),
        "{text}"
    );
    assert!(text.contains("coredns_reload_failed_total 0"), "{text}");
    // The version family has no sample before the first reload attempt, so it is not shown.
    assert!(
        !text.contains("coredns_reload_version_info"),
        "no version before the first attempt: {text}"
    );
}

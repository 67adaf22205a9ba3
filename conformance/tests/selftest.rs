//! The harness must catch differences: every case in `conformance/selftest/` is deliberately
//! wrong and has to fail, with a diff that contains what the case says it must.
//!
//! Needs the reference CoreDNS (`$FERRODNS_COREDNS`, else the cache `cargo xtask conformance`
//! builds it into) and the ferrodns binary of this build profile (built by `cargo test
//! --workspace`). Without them the test says so and passes, except under CI (`$CI` set), where
//! it fails.

use std::path::PathBuf;

use ferrodns_conformance::{case, runner, selftest_check};

#[allow(dead_code)]
#[path = "../../xtask/src/coredns.rs"]
mod coredns;

fn binaries() -> Result<(PathBuf, PathBuf), String> {
    let coredns = std::env::var_os("FERRODNS_COREDNS")
        .map(PathBuf::from)
        .unwrap_or_else(|| coredns::cache_dir().join("bin/coredns"));
    // This test runs from target/<profile>/deps/; the binary of the same profile is beside.
    let ferrodns = std::env::var_os("FERRODNS_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.join("ferrodns"))
        })
        .ok_or("cannot locate the ferrodns binary")?;
    for (what, p) in [("reference CoreDNS", &coredns), ("ferrodns", &ferrodns)] {
        if !p.is_file() {
            return Err(format!(
                "{what} not found at {} (run `cargo xtask conformance` once, or `cargo build`)",
                p.display()
            ));
        }
    }
    Ok((coredns, ferrodns))
}

/// The two binaries; without them the test is skipped with a message, except in CI (`CI` set),
/// where a missing prerequisite is a failure.
fn binaries_or_skip() -> Option<(PathBuf, PathBuf)> {
    match binaries() {
        Ok(b) => Some(b),
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: {why}");
            None
        }
        Err(why) => panic!("{why}"),
    }
}

#[test]
fn deliberately_wrong_cases_fail_with_readable_diffs() {
    let Some((coredns, ferrodns)) = binaries_or_skip() else {
        return;
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("selftest");
    let cases = case::load_dir(&dir).expect("selftest cases load");
    assert!(cases.len() >= 5, "selftest cases missing");
    let settings = runner::Settings {
        coredns,
        ferrodns,
        jobs: 3,
        progress: false,
        selftest: true,
        verbose: false,
    };
    let results = runner::run_all(&cases, &settings).expect("harness runs");
    let mut report = Vec::new();
    let (passed, failed, _) = runner::report(&results, &mut report).unwrap();
    // Shown with `cargo test -- --nocapture`: what a person reads when a case fails.
    println!("{}", String::from_utf8_lossy(&report));
    assert_eq!((passed, failed), (0, cases.len()));
    let bad = selftest_check(&cases, &results);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn selftest_fields_are_refused_among_real_cases() {
    let Some((coredns, ferrodns)) = binaries_or_skip() else {
        return;
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("selftest");
    let cases = case::load_dir(&dir).expect("selftest cases load");
    let settings = runner::Settings {
        coredns,
        ferrodns,
        jobs: 1,
        progress: false,
        selftest: false,
        verbose: false,
    };
    let one = &cases[..1];
    let results = runner::run_all(one, &settings).expect("harness runs");
    assert_eq!(
        results[0].verdict,
        runner::Verdict::Fail(vec![
            "selftest_* fields are only allowed in conformance/selftest/".to_string()
        ])
    );
}

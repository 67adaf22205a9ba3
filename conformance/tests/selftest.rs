//! The harness must catch differences: every case in `conformance/selftest/` is deliberately
//! wrong and has to fail, with a diff that contains what the case says it must.
//!
//! Needs the reference CoreDNS and the ferrodns binary of this build profile. Both are looked
//! for where the project's tools put them: CoreDNS at `$FERRODNS_COREDNS`, else in the cache
//! `cargo xtask conformance` and `cargo xtask ci` fill (`~/.cache/ferrodns/coredns-<version>`,
//! or under `$FERRODNS_CACHE`); ferrodns at `$FERRODNS_BIN`, else in the target directory this
//! test was built in (`cargo build -p ferrodns` puts it there). The test never skips: a missing
//! binary is a failure that says how to get it.

use std::path::{Path, PathBuf};

use ferrodns_conformance::{case, runner, selftest_check};

#[allow(dead_code)]
#[path = "../../xtask/src/coredns.rs"]
mod coredns;

/// The reference CoreDNS: `$FERRODNS_COREDNS`, else the cache `cargo xtask` builds it into.
fn find_coredns() -> Result<PathBuf, String> {
    let get = format!(
        "`cargo xtask conformance` (or `cargo xtask ci`) builds CoreDNS {v} once per machine \
         with `go install` into that cache; or set FERRODNS_COREDNS to a CoreDNS {v} binary",
        v = coredns::VERSION
    );
    if let Some(p) = std::env::var_os("FERRODNS_COREDNS").map(PathBuf::from) {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "the reference CoreDNS is not at {} (FERRODNS_COREDNS); without that variable \
                 it is looked for at {}: {get}",
                p.display(),
                coredns::cache_dir().join("bin/coredns").display()
            ))
        };
    }
    let p = coredns::cache_dir().join("bin/coredns");
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "the reference CoreDNS is not at {} (its cache; FERRODNS_COREDNS is not set): {get}",
            p.display()
        ))
    }
}

/// The ferrodns binary: `$FERRODNS_BIN`, else the one of this test's profile in the target
/// directory this test runs from (`target/<profile>/deps/`), else in the workspace's `target/`.
fn find_ferrodns() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("locating this test: {e}"))?;
    // target/<profile>/deps/selftest-<hash>: the profile directory is two levels up.
    let profile_dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf);
    let profile = profile_dir
        .as_deref()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_string();
    let build = if profile == "release" {
        "cargo build --release -p ferrodns".to_string()
    } else if profile == "debug" {
        "cargo build -p ferrodns".to_string()
    } else {
        format!("cargo build --profile {profile} -p ferrodns")
    };
    if let Some(p) = std::env::var_os("FERRODNS_BIN").map(PathBuf::from) {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "ferrodns is not at {} (FERRODNS_BIN); unset it to use the binary `{build}` \
                 builds, or point it at one",
                p.display()
            ))
        };
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest
        .parent()
        .unwrap_or(manifest)
        .join("target")
        .join(&profile);
    let mut dirs: Vec<PathBuf> = profile_dir.into_iter().collect();
    if !dirs.contains(&workspace) {
        dirs.push(workspace);
    }
    let mut looked = Vec::new();
    for dir in dirs {
        let p = dir.join("ferrodns");
        if p.is_file() {
            return Ok(p);
        }
        looked.push(p.display().to_string());
    }
    Err(format!(
        "ferrodns ({profile} build) is not at {}: `{build}` builds it (`cargo test --workspace` \
         and `cargo xtask ci` do too); or set FERRODNS_BIN to a ferrodns binary",
        looked.join(" nor ")
    ))
}

/// Both binaries; a missing one fails the test (in CI and everywhere else) with how to get it.
fn binaries() -> (PathBuf, PathBuf) {
    match (find_coredns(), find_ferrodns()) {
        (Ok(c), Ok(f)) => (c, f),
        (c, f) => {
            let why: Vec<String> = [c.err(), f.err()].into_iter().flatten().collect();
            panic!(
                "missing prerequisite{}:\n- {}",
                if why.len() > 1 { "s" } else { "" },
                why.join("\n- ")
            );
        }
    }
}

#[test]
fn deliberately_wrong_cases_fail_with_readable_diffs() {
    let (coredns, ferrodns) = binaries();
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
        kube: None,
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
    let (coredns, ferrodns) = binaries();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("selftest");
    let cases = case::load_dir(&dir).expect("selftest cases load");
    let settings = runner::Settings {
        coredns,
        ferrodns,
        jobs: 1,
        progress: false,
        selftest: false,
        verbose: false,
        kube: None,
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

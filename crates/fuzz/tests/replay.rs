//! The committed fuzz corpus, replayed: every input cargo-fuzz kept under `fuzz/corpus/<target>/`
//! (seeds, and what the fuzzing runs found worth keeping after `cargo fuzz cmin`) goes through
//! its target once more. A target that panics on any of them fails the test, so a fixed finding
//! stays fixed without nightly or libFuzzer.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_has_a_corpus_and_survives_it() {
    for (target, run) in ferrodns_fuzz::TARGETS {
        let files = corpus(target);
        assert!(!files.is_empty(), "no corpus for fuzz target {target}");
        for f in &files {
            let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("fuzz target {target} fails on {}: {msg}", f.display());
            }
        }
        eprintln!("{target}: {} inputs replayed", files.len());
    }
}

#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    let manifest = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/Cargo.toml"),
    )
    .expect("fuzz/Cargo.toml");
    for (target, _) in ferrodns_fuzz::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/Cargo.toml lacks the binary {target}"
        );
    }
}

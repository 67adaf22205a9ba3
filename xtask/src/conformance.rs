//! `cargo xtask conformance [--selftest] [HARNESS ARGS...]`: make sure the reference CoreDNS is
//! built, build ferrodns and the harness in release mode, and run the conformance cases
//! (`conformance/cases`, or with `--selftest` the deliberately wrong cases of
//! `conformance/selftest`). Other arguments go to the harness (`--jobs N`, `--verbose`,
//! case filters such as `parser/` or `edns/badvers`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Run the task. Exits with the harness's status when it fails, so that its closing
/// `N passed, M failed` line stays the last line printed.
pub fn run(args: &[String]) -> Result<()> {
    let root = super::root();
    let coredns = crate::coredns::ensure()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(&cargo)
        .args(["build", "--release", "--workspace"])
        .current_dir(&root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building ferrodns and the conformance harness failed ({status})");
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => root.join(PathBuf::from(t)),
        None => root.join("target"),
    };
    let release = target.join("release");
    let status = Command::new(release.join("ferrodns-conformance"))
        .arg("--coredns")
        .arg(&coredns)
        .arg("--ferrodns")
        .arg(release.join("ferrodns"))
        .args(args)
        .current_dir(&root)
        .status()
        .context("running the conformance harness")?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

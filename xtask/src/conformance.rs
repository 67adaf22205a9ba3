//! `cargo xtask conformance [--selftest] [HARNESS ARGS...]`: make sure the reference CoreDNS is
//! built, build ferrodns and the harness in release mode, and run the conformance cases
//! (`conformance/cases`, or with `--selftest` the deliberately wrong cases of
//! `conformance/selftest`). Other arguments go to the harness (`--jobs N`, `--verbose`,
//! case filters such as `parser/` or `edns/badvers`). When a selected case needs a Kubernetes
//! API server (the harness says, `--needs-kube`), kube-apiserver and kine are built first (once
//! per machine, `kube.rs`) and passed to the harness.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Run the task. Exits with the harness's status when it fails, so that its closing
/// `N passed, M failed` line stays the last line printed.
pub fn run(args: &[String]) -> Result<()> {
    let root = super::root();
    let coredns = crate::coredns::ensure()?;
    let cargo = crate::cargo();
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
    let harness_cmd = |args: &[String]| {
        let mut cmd = Command::new(release.join("ferrodns-conformance"));
        cmd.arg("--coredns")
            .arg(&coredns)
            .arg("--ferrodns")
            .arg(release.join("ferrodns"))
            .args(args)
            .current_dir(&root);
        cmd
    };
    // The harness says whether a case it would run needs an API server (same selection).
    let mut ask = args.to_vec();
    ask.push("--needs-kube".to_string());
    let out = harness_cmd(&ask)
        .output()
        .context("asking the conformance harness about kubernetes cases")?;
    if !out.status.success() {
        bail!(
            "the conformance harness failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut harness = harness_cmd(&[]);
    if String::from_utf8_lossy(&out.stdout).trim() == "yes" {
        let bins = crate::kube::ensure()?;
        harness
            .arg("--kube-apiserver")
            .arg(&bins.apiserver)
            .arg("--kine")
            .arg(&bins.kine);
    }
    let status = harness
        .args(args)
        .status()
        .context("running the conformance harness")?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

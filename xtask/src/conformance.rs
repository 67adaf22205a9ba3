//! `cargo xtask conformance [--selftest] [HARNESS ARGS...]`: make sure the reference CoreDNS is
//! built, build ferrodns and the harness in release mode, and run the conformance cases
//! (`conformance/cases`, or with `--selftest` the deliberately wrong cases of
//! `conformance/selftest`). Other arguments go to the harness (`--jobs N`, `--verbose`,
//! case filters such as `parser/` or `edns/badvers`). When a selected case needs a Kubernetes
//! API server, kube-apiserver and kine are built first (once per machine, `kube.rs`) and passed
//! to the harness.

use std::path::{Path, PathBuf};
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
    let mut harness = Command::new(release.join("ferrodns-conformance"));
    harness
        .arg("--coredns")
        .arg(&coredns)
        .arg("--ferrodns")
        .arg(release.join("ferrodns"));
    if needs_kube(&root, args)? {
        let bins = crate::kube::ensure()?;
        harness
            .arg("--kube-apiserver")
            .arg(&bins.apiserver)
            .arg("--kine")
            .arg(&bins.kine);
    }
    let status = harness
        .args(args)
        .current_dir(&root)
        .status()
        .context("running the conformance harness")?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

/// Whether a case the harness will run (by its directory and filters, as the harness selects
/// them) declares Kubernetes objects or names an API server in its Corefile.
fn needs_kube(root: &Path, args: &[String]) -> Result<bool> {
    let mut dir = root.join("conformance/cases");
    let mut filters = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--selftest" => dir = root.join("conformance/selftest"),
            "--cases" => dir = PathBuf::from(it.next().context("--cases needs a dir")?),
            "--jobs" | "--coredns" | "--ferrodns" | "--kube-apiserver" | "--kine" => {
                it.next();
            }
            f if !f.starts_with('-') => filters.push(f),
            _ => {}
        }
    }
    let mut files = Vec::new();
    collect_toml(&dir, &mut files)?;
    for f in files {
        let id = f
            .strip_prefix(&dir)
            .unwrap_or(&f)
            .with_extension("")
            .to_string_lossy()
            .replace('\\', "/");
        if !filters.is_empty() && !filters.iter().any(|flt| id.contains(flt)) {
            continue;
        }
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        if text.lines().any(|l| {
            let l = l.trim();
            l == "[[kube]]" || l == "[[query.kube]]" || l.contains("{KUBE")
        }) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn collect_toml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = entry?.path();
        if p.is_dir() {
            collect_toml(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
    Ok(())
}

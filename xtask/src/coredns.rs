//! The reference CoreDNS: pinned here, built once per machine with `go install` into a cache
//! outside the clone, and reused from there.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The CoreDNS release ferrodns is compared with. Change it here only.
pub const VERSION: &str = "v1.14.7";

/// `~/.cache/ferrodns` (or `$FERRODNS_CACHE`): what is built once per machine, outside the
/// clone.
pub fn cache_root() -> PathBuf {
    std::env::var_os("FERRODNS_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ferrodns")))
        .unwrap_or_else(|| PathBuf::from("/tmp/ferrodns-cache"))
}

/// `~/.cache/ferrodns/coredns-<version>` (or `$FERRODNS_CACHE/coredns-<version>`).
pub fn cache_dir() -> PathBuf {
    cache_root().join(format!("coredns-{VERSION}"))
}

/// The path of the reference binary, building it first when it is missing.
pub fn ensure() -> Result<PathBuf> {
    let dir = cache_dir();
    let bin = dir.join("bin/coredns");
    if is_reference(&bin) {
        return Ok(bin);
    }
    println!(
        "coredns: building the reference CoreDNS {VERSION} into {} (once per machine)",
        dir.display()
    );
    std::fs::create_dir_all(dir.join("bin"))?;
    go_install(
        &format!("github.com/coredns/coredns@{VERSION}"),
        &[],
        &dir.join("bin"),
    )?;
    if !is_reference(&bin) {
        bail!(
            "{} is not CoreDNS {VERSION} after go install",
            bin.display()
        );
    }
    Ok(bin)
}

fn is_reference(bin: &Path) -> bool {
    let want = format!("CoreDNS-{}", VERSION.trim_start_matches('v'));
    version_output(bin, "-version").contains(&want)
}

/// `go install PACKAGE@VERSION` (with `flags` before it) into `gobin`, resolving modules as
/// the pinned builds need (`GOFLAGS=-mod=mod`).
pub fn go_install(package: &str, flags: &[&str], gobin: &Path) -> Result<()> {
    let status = Command::new("go")
        .arg("install")
        .args(flags)
        .arg(package)
        .env("GOBIN", gobin)
        .env("GOFLAGS", "-mod=mod")
        .status()
        .context("running `go install` (is Go on PATH?)")?;
    if !status.success() {
        bail!("go install {package} failed ({status})");
    }
    Ok(())
}

/// What `bin arg` prints on stdout and stderr; empty when it does not run.
pub fn version_output(bin: &Path, arg: &str) -> String {
    Command::new(bin)
        .arg(arg)
        .output()
        .map(|o| {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            text
        })
        .unwrap_or_default()
}

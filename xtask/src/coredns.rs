//! The reference CoreDNS: pinned here, built once per machine with `go install` into a cache
//! outside the clone, and reused from there.

use std::path::PathBuf;
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
    let status = Command::new("go")
        .args(["install", &format!("github.com/coredns/coredns@{VERSION}")])
        .env("GOBIN", dir.join("bin"))
        .env("GOFLAGS", "-mod=mod")
        .status()
        .context("running `go install` (is Go on PATH?)")?;
    if !status.success() {
        bail!("go install github.com/coredns/coredns@{VERSION} failed ({status})");
    }
    if !is_reference(&bin) {
        bail!(
            "{} is not CoreDNS {VERSION} after go install",
            bin.display()
        );
    }
    Ok(bin)
}

fn is_reference(bin: &std::path::Path) -> bool {
    let want = format!("CoreDNS-{}", VERSION.trim_start_matches('v'));
    Command::new(bin)
        .arg("-version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&want))
        .unwrap_or(false)
}

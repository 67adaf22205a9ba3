//! `cargo xtask <task>`: the project's own tooling.
//!
//! - `gen [--check]`: write the plugin registry of the `ferrodns` binary from `plugin.cfg`
//!   (or, with `--check`, fail when what is committed is stale).
//! - `build --plugin-cfg FILE [--out PATH]`: a binary with the project's plugins and those of
//!   another plugin.cfg, without changing the checkout.
//! - `plugin-example`: the example plugin's tests, a binary built with it, and a query to it
//!   (a step of `ci`).
//! - `test`: the workspace's tests (release profile), two test binaries at a time.
//! - `ci`: everything CI runs, on a fresh machine: system packages, the reference CoreDNS,
//!   formatting, lints, generated code, every test and the conformance suite.
//! - `conformance`: compare ferrodns with the reference CoreDNS, case by case.
//! - `bench`: ferrodns side by side with the kernel floor, Unbound, dnsmasq and CoreDNS.
//! - `reliability`: the fault tests, a soak with a flapping upstream, reloads and malformed
//!   traffic, and `docs/reliability.md`.
//! - `kube-apiserver [--dir DIR]`: a real Kubernetes API server (kube-apiserver on kine) on
//!   loopback, built once per machine; prints a kubeconfig for it and runs until Ctrl-C.

mod bench;
mod ci;
mod conformance;
mod coredns;
mod gen_registry;
mod kube;
mod plugin_build;
mod plugin_cfg;
mod plugin_example;
mod reliability;
mod test_runner;

use anyhow::{Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, r)) => (t.as_str(), r),
        None => ("help", &[][..]),
    };
    match task {
        "gen" => gen_registry::run(rest),
        "build" => plugin_build::run(rest),
        "plugin-example" => plugin_example::check(&root()),
        "ci" => ci::run(rest),
        "test" => test_runner::run(&root(), &[]),
        "conformance" => conformance::run(rest),
        "bench" => bench::run(rest),
        "reliability" => reliability::run(rest),
        "kube-apiserver" => kube::run(rest),
        "help" | "-h" | "--help" => {
            println!(
                "usage: cargo xtask <gen [--check] | build --plugin-cfg FILE [--out PATH] | plugin-example | test | ci | conformance [--selftest] | bench [--help] | reliability [--help] | kube-apiserver [--dir DIR]>"
            );
            Ok(())
        }
        other => bail!("unknown task {other:?}; try `cargo xtask help`"),
    }
}

/// The cargo that runs xtask (`$CARGO`), or `cargo` from the PATH.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// The workspace root (the parent of this crate's directory).
pub fn root() -> std::path::PathBuf {
    let here = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(|p| p.to_path_buf()).unwrap_or(here)
}

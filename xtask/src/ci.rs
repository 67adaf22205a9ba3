//! `cargo xtask ci`: what CI runs, from a fresh clone on a fresh machine of this kind.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Debian packages the tests need, by the command that shows each is there.
const PACKAGES: &[(&str, &str)] = &[
    ("dig", "bind9-dnsutils"),
    ("ip", "iproute2"),
    ("iptables", "iptables"),
    // node-cache's tests read its nftables table back and the node's connection tracking.
    ("nft", "nftables"),
    ("conntrack", "conntrack"),
];

pub fn step(name: &str, cmd: &mut Command) -> Result<()> {
    let started = Instant::now();
    println!("==> {name}");
    let status = cmd.status().with_context(|| format!("starting {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    println!("==> {name}: ok in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Install the Debian packages of `list` (command that shows it is there, package) that are
/// missing.
pub fn install_packages(list: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = list
        .iter()
        .filter(|(cmd, _)| !have(cmd))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        println!("==> system packages: present");
        return Ok(());
    }
    step(
        "apt-get update",
        Command::new("apt-get").args(["update", "-q"]),
    )?;
    step(
        &format!("apt-get install {}", missing.join(" ")),
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Free space a run needs, in GiB: one from a fresh clone peaked at 10.3 GiB written (the release
/// build, the release test binaries, the example plugin and the custom build), plus a margin.
const DISK_NEEDED_GIB: u64 = 12;

/// Free space, in GiB, on the file system that holds `path`, as `df` reports it.
fn free_gib(path: &std::path::Path) -> Result<u64> {
    let out = Command::new("df")
        .arg("-Pk")
        .arg(path)
        .output()
        .context("running df")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // POSIX layout: a header line, then `fs blocks used available capacity mount`.
    let kib: u64 = text
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|f| f.parse().ok())
        .with_context(|| format!("reading df's answer for {}: {text}", path.display()))?;
    Ok(kib / (1024 * 1024))
}

/// Run the task.
pub fn run(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask ci");
    }
    let started = Instant::now();
    let root = super::root();
    // A full disk otherwise shows up many minutes in, as the linker dying with a bus error. A
    // checkout that has built before needs less, so there it is only a warning.
    let free = free_gib(&root)?;
    println!(
        "==> free disk: {free} GiB (a run from a fresh clone needs about {DISK_NEEDED_GIB} GiB)"
    );
    if free < DISK_NEEDED_GIB {
        let what = format!(
            "only {free} GiB free under {}: the build and test binaries need about \
             {DISK_NEEDED_GIB} GiB",
            root.display()
        );
        if !root.join("target/release").exists() {
            bail!(what);
        }
        println!("==> warning: {what}, less what target/ already holds");
    }
    install_packages(PACKAGES)?;
    let coredns = crate::coredns::ensure()?;
    println!("==> reference CoreDNS: {}", coredns.display());
    // The kubernetes conformance cases run against a real API server: built once per machine
    // (about 5 minutes) and cached beside CoreDNS.
    let kube = crate::kube::ensure()?;
    println!(
        "==> Kubernetes API server: {} (on {})",
        kube.apiserver.display(),
        kube.kine.display()
    );
    let cargo = crate::cargo();
    let in_root = |args: &[&str]| {
        let mut c = Command::new(&cargo);
        c.args(args)
            .current_dir(&root)
            .env("FERRODNS_COREDNS", &coredns);
        c
    };
    // This very program, for the tasks that are xtask's own.
    let xtask = std::env::current_exe().context("locating the xtask binary")?;
    let own = |args: &[&str]| {
        let mut c = Command::new(&xtask);
        c.args(args)
            .current_dir(&root)
            .env("FERRODNS_COREDNS", &coredns);
        c
    };
    let xtask_manifest = root.join("xtask/Cargo.toml");
    let xtask_manifest = xtask_manifest.to_string_lossy();
    step(
        "cargo fmt --check",
        &mut in_root(&["fmt", "--all", "--", "--check"]),
    )?;
    step(
        "cargo fmt --check (xtask)",
        &mut in_root(&["fmt", "--manifest-path", &xtask_manifest, "--", "--check"]),
    )?;
    step("cargo xtask gen --check", &mut own(&["gen", "--check"]))?;
    step(
        "cargo clippy",
        &mut in_root(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "cargo clippy (xtask)",
        &mut in_root(&[
            "clippy",
            "--manifest-path",
            &xtask_manifest,
            "--target-dir",
            "target/xtask",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "cargo test (xtask)",
        &mut in_root(&[
            "test",
            "--manifest-path",
            &xtask_manifest,
            "--target-dir",
            "target/xtask",
        ]),
    )?;
    // The plugin API and the crates it needs package as they would be published (their
    // dependencies all have versions).
    step(
        "cargo package (plugin API crates)",
        &mut in_root(&[
            "package",
            "--no-verify",
            "--allow-dirty",
            "-p",
            "ferrodns-go",
            "-p",
            "ferrodns-corefile",
            "-p",
            "ferrodns-plugin",
            "-p",
            "ferrodns-pkg",
            "-p",
            "ferrodns-plugin-test",
        ]),
    )?;
    step(
        "cargo build --release",
        &mut in_root(&["build", "--release", "--workspace"]),
    )?;
    // `cargo test --workspace --release`, with two test binaries running at a time.
    let tests_started = Instant::now();
    println!("==> cargo test");
    crate::test_runner::run(
        &root,
        &[
            ("FERRODNS_COREDNS", coredns.as_path()),
            ("FERRODNS_KUBE_APISERVER", kube.apiserver.as_path()),
            ("FERRODNS_KINE", kube.kine.as_path()),
        ],
    )?;
    println!(
        "==> cargo test: ok in {:.1}s",
        tests_started.elapsed().as_secs_f64()
    );
    // The short soak: one cycle of the flapping upstream, a reload, malformed traffic.
    step(
        "cargo xtask reliability (short soak)",
        &mut own(&[
            "reliability",
            "--duration",
            "30s",
            "--rate",
            "5000",
            "--no-tests",
            "--out",
            "-",
        ]),
    )?;
    step("cargo xtask conformance", &mut own(&["conformance"]))?;
    // Last: the example plugin's crates build outside the workspace and would only slow the
    // steps above down.
    crate::plugin_example::check(&root)?;
    println!(
        "==> all CI steps passed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::free_gib;

    #[test]
    fn free_space_is_read_from_df() {
        let dir = std::env::temp_dir();
        let gib = free_gib(&dir).expect("df answers for the temp dir");
        // A second reading, in df's own GiB units.
        let out = std::process::Command::new("df")
            .args(["--output=avail", "-B1G"])
            .arg(&dir)
            .output()
            .expect("df runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let other: u64 = text.lines().nth(1).unwrap().trim().parse().unwrap();
        // `-B1G` rounds up, our division rounds down; the disk may move a little between the two.
        assert!(gib.abs_diff(other) <= 1, "{gib} GiB against df's {other}");
        assert!(free_gib(std::path::Path::new("/no/such/dir/for/df")).is_err());
    }
}

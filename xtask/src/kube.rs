//! A real Kubernetes API server on loopback, for the tests of a `kubernetes` plugin and for a
//! developer to point CoreDNS or ferrodns at: `kube-apiserver` backed by kine (an etcd API on
//! SQLite). Both are pinned here, built once per machine into a cache outside the clone (as the
//! reference CoreDNS is, see `coredns.rs`) and reused from there.
//!
//! The build: `go install` cannot build `k8s.io/kubernetes/cmd/kube-apiserver`, because the module's go.mod replaces its
//! `k8s.io/*` staging modules with `./staging/src/...` directories that a module download leaves
//! out. A copy of the module with those replacements dropped, and the staging modules required at
//! their published versions instead, builds.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ferrodns_kube_testenv::{ApiServer, Bins, TOKEN};

/// The Kubernetes release whose API server the tests run. Change it here only.
pub const VERSION: &str = "v1.34.2";
/// The version the staging modules (`k8s.io/api`, `k8s.io/client-go`, ...) are published at
/// for [`VERSION`]: v1.X.Y is v0.X.Y.
const STAGING_VERSION: &str = "v0.34.2";
/// The kine release that stores the API server's objects in SQLite.
pub const KINE_VERSION: &str = "v0.17.5";
/// `~/.cache/ferrodns/kubernetes-<version>` (or `$FERRODNS_CACHE/kubernetes-<version>`).
pub fn cache_dir() -> PathBuf {
    crate::coredns::cache_root().join(format!("kubernetes-{VERSION}"))
}

/// The paths of `kube-apiserver` and `kine`, building whichever is missing first.
pub fn ensure() -> Result<Bins> {
    let dir = cache_dir();
    let bins = Bins {
        apiserver: dir.join("bin/kube-apiserver"),
        kine: dir.join("bin/kine"),
    };
    if is_apiserver(&bins.apiserver) && is_kine(&bins.kine) {
        return Ok(bins);
    }
    fs::create_dir_all(dir.join("bin"))
        .with_context(|| format!("creating {}", dir.join("bin").display()))?;
    // Two processes that find the binaries missing (tests run in parallel) build them once:
    // the second waits here and then finds them.
    let lock = File::create(dir.join("build.lock"))?;
    lock.lock().context("locking the kubernetes build")?;
    if !is_apiserver(&bins.apiserver) {
        build_apiserver(&dir, &bins.apiserver)?;
    }
    if !is_kine(&bins.kine) {
        build_kine(&dir, &bins.kine)?;
    }
    Ok(bins)
}

fn build_apiserver(dir: &Path, bin: &Path) -> Result<()> {
    println!(
        "kube: building kube-apiserver {VERSION} into {} (once per machine, about 4 minutes)",
        dir.display()
    );
    let started = Instant::now();
    let module = format!("k8s.io/kubernetes@{VERSION}");
    let out = Command::new("go")
        .args(["mod", "download", "-json", &module])
        .output()
        .context("running `go mod download` (is Go on PATH?)")?;
    if !out.status.success() {
        bail!(
            "go mod download {module} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let info: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading `go mod download -json`")?;
    let Some(module_dir) = info["Dir"].as_str() else {
        bail!("no Dir in the output of go mod download {module}");
    };
    let module_dir = Path::new(module_dir);

    // A writable copy without vendor/ (symlinks into the missing staging directories) and
    // without the workspace files that name them; go.mod rewritten.
    let src = dir.join("src");
    if src.exists() {
        fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))?;
    }
    copy_tree(
        module_dir,
        &src,
        &["vendor", "go.work", "go.work.sum", "go.mod"],
    )?;
    let go_mod = fs::read_to_string(module_dir.join("go.mod"))?;
    fs::write(src.join("go.mod"), published_staging(&go_mod))?;

    // The version the release build stamps in (hack/lib/version.sh); `--version` prints it,
    // and without it the binary calls itself v0.0.0-master.
    let (major, minor) = {
        let mut parts = VERSION.trim_start_matches('v').split('.');
        (parts.next().unwrap_or("1"), parts.next().unwrap_or("0"))
    };
    let mut ldflags = Vec::new();
    for package in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        for (key, value) in [
            ("gitVersion", VERSION),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
        ] {
            ldflags.push(format!("-X {package}.{key}={value}"));
        }
    }
    let tmp = bin.with_extension("tmp");
    let status = Command::new("go")
        .args(["build", "-ldflags", &ldflags.join(" "), "-o"])
        .arg(&tmp)
        .arg("./cmd/kube-apiserver")
        .current_dir(&src)
        .env("GOFLAGS", "-mod=mod -buildvcs=false")
        .status()
        .context("running `go build`")?;
    if !status.success() {
        bail!(
            "go build ./cmd/kube-apiserver in {} failed ({status})",
            src.display()
        );
    }
    fs::rename(&tmp, bin)?;
    fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))?;
    if !is_apiserver(bin) {
        bail!(
            "{} does not say it is kube-apiserver {VERSION}",
            bin.display()
        );
    }
    println!(
        "kube: built kube-apiserver {VERSION} in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// go.mod of k8s.io/kubernetes with the `./staging/...` replacements removed and each
/// staging module (required as exactly `v0.0.0`) required at its published version instead.
fn published_staging(go_mod: &str) -> String {
    let mut out = String::with_capacity(go_mod.len());
    for line in go_mod.lines() {
        if line.contains("=> ./staging/") {
            continue;
        }
        let words: Vec<&str> = line
            .trim()
            .trim_start_matches("require ")
            .split_whitespace()
            .collect();
        if words.len() >= 2 && words[0].starts_with("k8s.io/") && words[1] == "v0.0.0" {
            // The module path holds no space: the first " v0.0.0" is the version.
            out.push_str(&line.replacen(" v0.0.0", &format!(" {STAGING_VERSION}"), 1));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn build_kine(dir: &Path, bin: &Path) -> Result<()> {
    println!(
        "kube: building kine {KINE_VERSION} into {} (once per machine, about 2 minutes)",
        dir.display()
    );
    let started = Instant::now();
    crate::coredns::go_install(
        &format!("github.com/k3s-io/kine@{KINE_VERSION}"),
        &[
            "-ldflags",
            &format!("-X github.com/k3s-io/kine/pkg/version.Version={KINE_VERSION}"),
        ],
        &dir.join("bin"),
    )?;
    if !is_kine(bin) {
        bail!(
            "{} does not run as kine {KINE_VERSION} after go install",
            bin.display()
        );
    }
    println!(
        "kube: built kine {KINE_VERSION} in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Copy the directory `from` to `to` (which must not exist), symbolic links as links, leaving
/// out the entries of `from` itself named in `skip`.
fn copy_tree(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        if skip.iter().any(|s| entry.file_name() == *s) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&src, &dst, &[])?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
        } else {
            fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(())
}

/// `kube-apiserver --version` prints `Kubernetes v1.34.2`.
fn is_apiserver(bin: &Path) -> bool {
    crate::coredns::version_output(bin, "--version")
        .split_whitespace()
        .any(|w| w == VERSION)
}

/// `kine --version` prints `kine version v0.17.5 (HEAD)`: the binary starts and is this release.
fn is_kine(bin: &Path) -> bool {
    crate::coredns::version_output(bin, "--version")
        .split_whitespace()
        .any(|w| w == KINE_VERSION)
}

/// Start an API server (see `ferrodns-kube-testenv`) with the cached binaries, building them
/// first when missing.
pub fn start(dir: &Path) -> Result<ApiServer> {
    ApiServer::start(&ensure()?, dir, ferrodns_kube_testenv::READY_LIMIT)
}

/// `cargo xtask kube-apiserver [--dir DIR]`: an API server for a developer, until SIGINT or
/// SIGTERM.
pub fn run(args: &[String]) -> Result<()> {
    let mut dir = crate::root().join("target/kube-apiserver");
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => dir = PathBuf::from(args.next().context("--dir needs a directory")?),
            "-h" | "--help" => {
                println!(
                    "usage: cargo xtask kube-apiserver [--dir DIR]\n\n\
                     Builds kube-apiserver {VERSION} and kine {KINE_VERSION} into {} once per machine,\n\
                     runs them on loopback with their state and logs in DIR (default target/kube-apiserver),\n\
                     prints the path of a kubeconfig for them (bearer token {TOKEN:?}) and `ready`,\n\
                     and stops them on Ctrl-C or SIGTERM.",
                    cache_dir().display()
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?}; try `cargo xtask kube-apiserver --help`"),
        }
    }
    ensure()?;

    // The signals are taken with sigwait, not a handler: blocked from here on in this (the only)
    // thread. The children start with an empty mask (std resets it), so a Ctrl-C in the
    // terminal reaches them too. SIGCHLD wakes the wait when one of them exits.
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGCHLD] {
        signals.add(s);
    }
    signals
        .thread_block()
        .context("blocking SIGINT and SIGTERM")?;

    let started = Instant::now();
    let mut server = start(&dir)?;
    println!(
        "kube: {} ready in {:.1}s; logs in {}",
        server.url(),
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    println!("kubeconfig: {}", server.kubeconfig().display());
    println!("ready");
    loop {
        let signal = signals.wait().context("waiting for a signal")?;
        if signal != Signal::SIGCHLD {
            println!("kube: {signal}, stopping");
            return Ok(());
        }
        server.alive()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_mod_requires_published_staging_modules() {
        let go_mod = "module k8s.io/kubernetes

require (
\tk8s.io/api v0.0.0
\tk8s.io/utils v0.0.0-20250604170112-4c0f3b243397
\tk8s.io/kms v0.0.0 // indirect
)

require k8s.io/metrics v0.0.0

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/kms => ./staging/src/k8s.io/kms
)

replace k8s.io/metrics => ./staging/src/k8s.io/metrics
";
        let want = "module k8s.io/kubernetes

require (
\tk8s.io/api v0.34.2
\tk8s.io/utils v0.0.0-20250604170112-4c0f3b243397
\tk8s.io/kms v0.34.2 // indirect
)

require k8s.io/metrics v0.34.2

replace (
)

";
        assert_eq!(published_staging(go_mod), want);
    }
}

//! `cargo xtask test`: the workspace's tests, built by one `cargo test --no-run` and run two
//! binaries at a time.
//!
//! `cargo test` runs its test binaries one after another. Many of the slow ones (node-cache's
//! end-to-end worlds, the reload tests) spend their time waiting on processes and sockets, so
//! on CI's two cores they leave a core idle for minutes. Here the binaries that load the
//! machine on purpose (a flood, load at 20k q/s during rollouts and reloads) run first, each
//! alone, so that the latencies they assert are measured as before; then the others run two at
//! a time, the slowest first. (Beside another binary, a rollout under load saw queries over
//! its 1 s limit.)
//!
//! Each binary runs as `cargo test` runs it: from its package's directory, with
//! `CARGO_MANIFEST_DIR` set. Its output is printed whole when it ends, so two binaries never
//! interleave their lines. Every binary runs even after a failure, and the failures are listed
//! at the end. The doc tests run last, through `cargo test --doc`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Binaries that load the machine on purpose: each runs alone.
const ALONE: &[&str] = &["flood", "reload_under_load", "rollout"];

/// Seconds each slow binary took in CI, to start the slowest first. Others count as quick.
const SLOW: &[(&str, u32)] = &[("e2e_modes", 95), ("e2e", 49), ("behaviour", 5)];

/// One test binary.
struct Binary {
    exe: PathBuf,
    package: String,
    target: String,
    dir: PathBuf,
}

impl Binary {
    fn alone(&self) -> bool {
        ALONE.contains(&self.target.as_str())
    }
    fn expected(&self) -> u32 {
        SLOW.iter()
            .find(|(name, _)| *name == self.target)
            .map(|(_, s)| *s)
            .unwrap_or(0)
    }
    fn name(&self) -> String {
        format!("{} {}", self.package, self.target)
    }
}

/// Build every test binary of the workspace with `cargo_args` (after `cargo test`), and list
/// them.
fn build(root: &Path, cargo_args: &[&str]) -> Result<Vec<Binary>> {
    let cargo = crate::cargo();
    let mut child = Command::new(&cargo)
        .arg("test")
        .args(cargo_args)
        .args(["--no-run", "--message-format=json-render-diagnostics"])
        .current_dir(root)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo test --no-run")?;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    let mut binaries = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's messages")?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" || msg["profile"]["test"] != true {
            continue;
        }
        let Some(exe) = msg["executable"].as_str() else {
            continue;
        };
        let manifest = PathBuf::from(msg["manifest_path"].as_str().unwrap_or_default());
        let package = manifest
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        binaries.push(Binary {
            exe: PathBuf::from(exe),
            package,
            target: msg["target"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            dir: manifest.parent().map(Path::to_path_buf).unwrap_or_default(),
        });
    }
    let status = child.wait().context("waiting for cargo test --no-run")?;
    if !status.success() {
        bail!("cargo test --no-run failed ({status})");
    }
    Ok(binaries)
}

/// Run one binary; whether it passed. Its output is printed in one piece.
fn run_one(job: &Binary, env: &[(&str, &Path)], n: usize, total: usize) -> bool {
    let started = Instant::now();
    let out = Command::new(&job.exe)
        .current_dir(&job.dir)
        .env("CARGO_MANIFEST_DIR", &job.dir)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output();
    let secs = started.elapsed().as_secs_f64();
    match out {
        Ok(out) => {
            let text = format!(
                "==> [{n}/{total}] {} ({}): {} in {secs:.1}s\n{}{}",
                job.name(),
                job.exe.display(),
                if out.status.success() { "ok" } else { "FAILED" },
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            print!("{text}");
            out.status.success()
        }
        Err(e) => {
            println!("==> [{n}/{total}] {}: cannot start: {e}", job.name());
            false
        }
    }
}

/// Run `binaries`: those that must run alone one after another, then the others `lanes` at a
/// time, the slowest first. The names of those that failed.
fn run_all(binaries: Vec<Binary>, lanes: usize, env: &[(&str, &Path)]) -> Vec<String> {
    let total = binaries.len();
    let (alone, mut shared): (Vec<Binary>, Vec<Binary>) =
        binaries.into_iter().partition(Binary::alone);
    // Slowest first; among equals, cargo's order.
    shared.sort_by_key(|b| std::cmp::Reverse(b.expected()));
    let done = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    let record = |job: &Binary, ok: bool| {
        if !ok {
            failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(job.name());
        }
    };
    for job in &alone {
        let n = done.fetch_add(1, Ordering::SeqCst) + 1;
        record(job, run_one(job, env, n, total));
    }
    let queue = Mutex::new(VecDeque::from(shared));
    std::thread::scope(|s| {
        for _ in 0..lanes {
            s.spawn(|| {
                loop {
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                    let Some(job) = job else { break };
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    record(&job, run_one(&job, env, n, total));
                }
            });
        }
    });
    failed.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Build and run the workspace's tests (release profile, as CI runs them), then the doc tests,
/// with `env` added to their environment.
pub fn run(root: &Path, env: &[(&str, &Path)]) -> Result<()> {
    let args = ["--workspace", "--release"];
    let binaries = build(root, &args)?;
    println!(
        "==> {} test binaries: {} alone, then the others two at a time",
        binaries.len(),
        binaries.iter().filter(|b| b.alone()).count()
    );
    let failed = run_all(binaries, 2, env);
    let cargo = crate::cargo();
    let doc = Command::new(&cargo)
        .arg("test")
        .args(args)
        .arg("--doc")
        .current_dir(root)
        .envs(env.iter().copied())
        .status()
        .context("starting cargo test --doc")?;
    if !failed.is_empty() {
        bail!(
            "{} test binaries failed: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    if !doc.success() {
        bail!("the doc tests failed ({doc})");
    }
    Ok(())
}

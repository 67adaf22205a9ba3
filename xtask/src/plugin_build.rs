//! `cargo xtask build --plugin-cfg FILE [--out PATH]`: a `ferrodns` binary with the project's
//! plugins and those of another `plugin.cfg`, built without changing the checkout.
//!
//! The lines of FILE are merged into the project's `plugin.cfg` (see
//! [`plugin_cfg::merge`]); a crate of its own, under `target/plugin-build/`, holds the merged
//! registry and a `main` that runs `ferrodns::app::main` with it. That crate depends on the
//! project's crates by path; when a plugin comes from a registry or a repository, it patches
//! `ferrodns-plugin` and its companions on crates.io to this checkout (so a plugin that asks
//! for `ferrodns-plugin = "0.1"` gets the API it is built into). It starts from the project's `Cargo.lock` and profiles, and builds into the project's
//! `target/`, so only what is new compiles. The binary is `target/release/ferrodns-custom`, or
//! is copied to `--out`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::gen_registry::rust_source;
use crate::plugin_cfg::{self, Entry, Source};

/// The binary's name in `target/release/`.
pub const BINARY: &str = "ferrodns-custom";

/// The project's crates a plugin may depend on from crates.io, patched to this checkout.
const API_CRATES: &[(&str, &str)] = &[
    ("ferrodns-plugin", "crates/plugin"),
    ("ferrodns-corefile", "crates/corefile"),
    ("ferrodns-go", "crates/go"),
    ("ferrodns-pkg", "crates/pkg"),
    ("ferrodns-plugin-test", "crates/plugin-test"),
];

fn usage() -> &'static str {
    "usage: cargo xtask build --plugin-cfg FILE [--out PATH]"
}

/// Run the task.
pub fn run(args: &[String]) -> Result<()> {
    let mut cfg: Option<PathBuf> = None;
    let mut out: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--plugin-cfg" => cfg = it.next().map(PathBuf::from),
            "--out" => out = it.next().map(PathBuf::from),
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n{}", usage()),
        }
    }
    let Some(cfg) = cfg else {
        bail!("{}", usage());
    };
    let binary = build(&cfg)?;
    match out {
        Some(dest) => {
            fs::copy(&binary, &dest)
                .with_context(|| format!("copying {} to {}", binary.display(), dest.display()))?;
            println!("build: wrote {}", dest.display());
        }
        None => println!("build: wrote {}", binary.display()),
    }
    Ok(())
}

/// Generate the crate for the project's plugins plus those of `cfg`, build it, and return the
/// binary's path.
pub fn build(cfg: &Path) -> Result<PathBuf> {
    let root = crate::root();
    let project_text = fs::read_to_string(root.join("plugin.cfg")).context("reading plugin.cfg")?;
    let project = plugin_cfg::parse(&project_text, "plugin.cfg", &root, &root, false)?;
    let extra_text =
        fs::read_to_string(cfg).with_context(|| format!("reading {}", cfg.display()))?;
    let base = cfg
        .canonicalize()
        .with_context(|| format!("locating {}", cfg.display()))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.clone());
    let label = cfg.display().to_string();
    let extra = plugin_cfg::parse(&extra_text, &label, &base, &root, true)?;
    let merged = plugin_cfg::merge(&project, &extra)?;
    let added: Vec<&str> = merged
        .iter()
        .filter(|e| !project.contains(e))
        .map(|e| e.name.as_str())
        .collect();
    println!(
        "build: {} plugins, {} from {label}: {}",
        merged.len(),
        added.len(),
        added.join(", ")
    );

    let dir = root.join("target/plugin-build");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::write(dir.join("Cargo.toml"), manifest(&root, &merged)?)?;
    fs::write(dir.join("plugins_gen.rs"), rust_source(&merged))?;
    fs::write(dir.join("main.rs"), MAIN)?;
    // Start from the project's resolution, so that the shared crates are the versions the
    // project is tested with and already built in target/.
    fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).context("copying Cargo.lock")?;

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args(["build", "--release", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(root.join("target"))
        // From the project's root, so that its .cargo/config.toml (flags, allocator
        // settings) applies as to the project's own build.
        .current_dir(&root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of {} failed ({status})", dir.display());
    }
    Ok(root.join("target/release").join(BINARY))
}

/// The generated crate's manifest.
fn manifest(root: &Path, entries: &[Entry]) -> Result<String> {
    let path = |rel: &str| root.join(rel).to_string_lossy().into_owned();
    let mut s = String::from(
        "# @generated by `cargo xtask build --plugin-cfg`; rewritten on every build.\n\
         [package]\nname = \"ferrodns-custom\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [[bin]]\nname = \"ferrodns-custom\"\npath = \"main.rs\"\n\n\
         # A workspace of its own, not a member of the project's.\n[workspace]\n\n[dependencies]\n",
    );
    s.push_str(&format!(
        "ferrodns = {{ path = {:?} }}\n",
        path("crates/ferrodns")
    ));
    s.push_str(&format!(
        "ferrodns-plugin = {{ path = {:?} }}\n",
        path("crates/plugin")
    ));
    s.push_str(&format!("tikv-jemallocator = {}\n", allocator(root)?));
    let mut seen = vec!["ferrodns".to_string(), "ferrodns-plugin".to_string()];
    for e in entries {
        let Some(k) = &e.krate else { continue };
        if seen.contains(k) {
            continue;
        }
        seen.push(k.clone());
        if let Some(dep) = e.dependency(root, false) {
            s.push_str(&dep);
            s.push('\n');
        }
    }
    // Only a crate from a registry or a repository can ask for the API from crates.io; a path
    // crate names this checkout's (and Cargo warns about every patch nobody uses).
    if entries
        .iter()
        .any(|e| matches!(e.source, Source::Registry(_) | Source::Git { .. }))
    {
        s.push_str("\n[patch.crates-io]\n");
        for (name, dir) in API_CRATES {
            s.push_str(&format!("{name} = {{ path = {:?} }}\n", path(dir)));
        }
    }
    s.push('\n');
    s.push_str(&profiles(root)?);
    Ok(s)
}

/// The allocator dependency exactly as the `ferrodns` crate declares it.
fn allocator(root: &Path) -> Result<String> {
    let text = fs::read_to_string(root.join("crates/ferrodns/Cargo.toml"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("tikv-jemallocator ="))
        .map(|v| v.trim().to_string())
        .context("crates/ferrodns/Cargo.toml has no tikv-jemallocator dependency")
}

/// The `[profile.*]` sections of the project's manifest: the same settings, so the crates the
/// project already built are reused.
fn profiles(root: &Path) -> Result<String> {
    let text = fs::read_to_string(root.join("Cargo.toml"))?;
    let mut out = String::new();
    let mut on = false;
    for line in text.lines() {
        if line.starts_with('[') {
            on = line.starts_with("[profile.");
        }
        if on {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

const MAIN: &str = "// @generated by `cargo xtask build --plugin-cfg`: the ferrodns command with the merged\n\
// plugin.cfg's plugins.\n\n\
mod plugins_gen;\n\n\
#[global_allocator]\n\
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;\n\n\
fn main() -> std::process::ExitCode {\n    ferrodns::app::main(plugins_gen::registry())\n}\n";

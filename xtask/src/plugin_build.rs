//! `cargo xtask build --plugin-cfg FILE [--out PATH]`: a `ferrodns` binary with the project's
//! plugins and those of another `plugin.cfg`, built without changing the checkout.
//!
//! The lines of FILE are merged into the project's `plugin.cfg` (see
//! [`plugin_cfg::merge`]); a crate of its own, under `target/plugin-build/`, holds the merged
//! registry and a `main` that runs `ferrodns::app::main` with it. That crate depends on the
//! project's crates by path; when a plugin comes from a registry or a repository, it patches
//! `ferrodns-plugin` and its companions on crates.io to this checkout (so a plugin that asks
//! for `ferrodns-plugin = "0.1"` gets the API it is built into). It starts from the project's
//! `Cargo.lock` and profiles, and builds into the project's `target/` with the crates.io
//! dependencies pinned to the workspace's features ([`pin_features`]), so those the project has
//! built are reused. The project's own crates compile once more: Cargo names a path crate's
//! artifacts by its path relative to the workspace root, and this crate's root is another. The
//! binary is `target/release/ferrodns-custom`, or is copied to `--out`.

use std::collections::{BTreeMap, BTreeSet};
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
    fs::write(dir.join("plugins_gen.rs"), rust_source(&merged))?;
    fs::write(dir.join("main.rs"), MAIN)?;
    // Start from the project's resolution, so that the shared crates are the versions the
    // project is tested with and already built in target/.
    fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).context("copying Cargo.lock")?;
    let pins = pin_features(&root, &dir, &merged)?;
    if !pins.is_empty() {
        println!(
            "build: {} crates pinned to the features the project's workspace builds them with",
            pins.len()
        );
    }

    let cargo = crate::cargo();
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

/// A crates.io package: name and version.
type Package = (String, String);

/// Features the project's workspace builds a crate with, for crates that the generated crate
/// alone would build with fewer.
///
/// Cargo unifies a crate's features over every package of the build. The project's workspace
/// has members the generated crate does not (node-cache, the test tools), and they turn on a
/// few more features of shared crates (futures-util's `default`, nix's `mount`, ...). A crate
/// built with other features is another artifact, and so is everything that depends on it: the
/// whole server and every plugin would compile a second time. Naming those crates as
/// dependencies of the generated crate with the workspace's features makes the two builds
/// agree, and what `cargo build --release` compiled is reused. The code never uses them.
fn pin_features(
    root: &Path,
    dir: &Path,
    entries: &[Entry],
) -> Result<BTreeMap<Package, BTreeSet<String>>> {
    let workspace = target_features(root, &root.join("Cargo.toml"), true)?;
    let mut pins: BTreeMap<Package, BTreeSet<String>> = BTreeMap::new();
    // A pin can turn on features of the pinned crate's own dependencies: look again until the
    // two agree (in practice, the second look finds nothing new).
    for _ in 0..4 {
        fs::write(dir.join("Cargo.toml"), manifest(root, entries, &pins)?)?;
        let ours = target_features(root, &dir.join("Cargo.toml"), false)?;
        let mut changed = false;
        for (package, features) in ours {
            let Some(want) = workspace.get(&package) else {
                continue;
            };
            // Only more features can be asked for; a crate the generated build needs with
            // features the workspace lacks compiles anew, as it must.
            if *want != features && want.is_superset(&features) {
                pins.insert(package, want.clone());
                changed = true;
            }
        }
        if !changed {
            return Ok(pins);
        }
    }
    Ok(pins)
}

/// The features of each crates.io package in the build of `manifest`, for the target only:
/// packages that build scripts and proc macros use are built for the host with features of
/// their own, and are left out.
fn target_features(
    root: &Path,
    manifest: &Path,
    workspace: bool,
) -> Result<BTreeMap<Package, BTreeSet<String>>> {
    let cargo = crate::cargo();
    let mut cmd = Command::new(cargo);
    cmd.args(["tree", "--quiet", "-e", "normal", "--prefix", "depth"])
        .args(["--format", "{p}|{f}", "--manifest-path"])
        .arg(manifest)
        .current_dir(root);
    if workspace {
        cmd.arg("--workspace");
    }
    let out = cmd.output().context("running cargo tree")?;
    if !out.status.success() {
        bail!(
            "cargo tree --manifest-path {} failed: {}",
            manifest.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(parse_tree(&String::from_utf8_lossy(&out.stdout)))
}

/// Read `cargo tree --prefix depth --format '{p}|{f}'`.
fn parse_tree(text: &str) -> BTreeMap<Package, BTreeSet<String>> {
    let mut found: BTreeMap<Package, BTreeSet<String>> = BTreeMap::new();
    // The depth of the proc macro whose dependencies are being listed, if any.
    let mut host_below: Option<usize> = None;
    for line in text.lines() {
        let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let Ok(depth) = line[..digits].parse::<usize>() else {
            continue;
        };
        let line = line[digits..].trim_end_matches(" (*)");
        if let Some(d) = host_below {
            if depth > d {
                continue;
            }
            host_below = None;
        }
        let Some((package, features)) = line.split_once('|') else {
            continue;
        };
        if package.ends_with(" (proc-macro)") {
            host_below = Some(depth);
            continue;
        }
        // A crates.io package is `name vX.Y.Z`; path and git ones carry their source after.
        let mut words = package.split(' ');
        let (Some(name), Some(version), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let Some(version) = version.strip_prefix('v') else {
            continue;
        };
        found
            .entry((name.to_string(), version.to_string()))
            .or_default()
            .extend(
                features
                    .split(',')
                    .filter(|f| !f.is_empty())
                    .map(String::from),
            );
    }
    found
}

/// The generated crate's manifest.
fn manifest(
    root: &Path,
    entries: &[Entry],
    pins: &BTreeMap<Package, BTreeSet<String>>,
) -> Result<String> {
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
    if !pins.is_empty() {
        s.push_str(
            "# Not used by the code: the features the project's workspace builds these crates\n\
             # with, so that its artifacts in target/ are reused (see `pin_features`).\n",
        );
    }
    for ((name, version), features) in pins {
        let key: String = format!("pin-{name}-{version}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let features: Vec<String> = features.iter().map(|f| format!("{f:?}")).collect();
        s.push_str(&format!(
            "{key} = {{ package = {name:?}, version = \"={version}\", default-features = false, features = [{}] }}\n",
            features.join(", ")
        ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_keeps_target_crates_and_leaves_out_what_proc_macros_use() {
        let text = "0ferrodns v0.1.0 (/src/crates/ferrodns)|\n\
                    1thiserror v2.0.21|default,std\n\
                    2thiserror-impl v2.0.21 (proc-macro)|\n\
                    3proc-macro2 v1.0.107|default,proc-macro\n\
                    3syn v2.0.1|default,full\n\
                    4proc-macro2 v1.0.107|default,proc-macro (*)\n\
                    1nix v0.31.3|feature,socket\n\
                    1kube v5.0.0 (https://example.invalid/kube#abc)|client\n\
                    1memchr v2.7.6|\n";
        let found = parse_tree(text);
        let p = |n: &str, v: &str| (n.to_string(), v.to_string());
        let names: Vec<&Package> = found.keys().collect();
        assert_eq!(
            names,
            [
                &p("memchr", "2.7.6"),
                &p("nix", "0.31.3"),
                &p("thiserror", "2.0.21")
            ]
        );
        let nix: Vec<&str> = found[&p("nix", "0.31.3")]
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(nix, ["feature", "socket"]);
        assert!(found[&p("memchr", "2.7.6")].is_empty());
    }
}

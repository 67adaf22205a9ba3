//! `plugin.cfg`: the plugins of a binary, one `<directive>:<crate>` line each, in chain order.
//!
//! The crate may carry where it comes from, as a Cargo dependency would:
//! - `name:crate` — a workspace plugin (`plugins/<dir>`), or a crate already a dependency;
//! - `name:crate@0.3` — a version from crates.io;
//! - `name:crate=../path` — a local path, relative to the directory of the `plugin.cfg` it is in;
//! - `name:crate=git+https://host/repo` — a git repository, optionally with `#<rev>`,
//!   `?branch=<b>` or `?tag=<t>` after the URL.
//!
//! In the extra file of `cargo xtask build --plugin-cfg`, a line may also be a bare directive
//! of the project's (`forward`): an anchor that places the new lines around it.

use std::fs;
use std::path::{Component, Path, PathBuf};

use anyhow::{Result, bail};

/// Where a plugin crate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory holding the crate: a workspace plugin or a local path (absolute).
    Path(PathBuf),
    /// A version requirement on crates.io.
    Registry(String),
    /// A git repository and, optionally, which commit: `("rev" | "branch" | "tag", value)`.
    Git {
        /// The repository's URL.
        url: String,
        /// The commit, branch or tag.
        reference: Option<(&'static str, String)>,
    },
    /// No source: a crate that is already a dependency of the binary's crate.
    Any,
}

/// One plugin line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where the line is, `file:line`, for messages.
    pub at: String,
    /// The directive.
    pub name: String,
    /// The crate (package) name; `None` for an anchor.
    pub krate: Option<String>,
    /// Where the crate comes from.
    pub source: Source,
}

impl Entry {
    /// The crate as a Rust path (`my-crate` -> `my_crate`).
    pub fn lib(&self) -> Option<String> {
        self.krate.as_ref().map(|k| k.replace('-', "_"))
    }

    /// The crate's dependency line for a manifest in `from`, with a path relative to it when
    /// `relative` (for the committed manifest), else absolute.
    pub fn dependency(&self, from: &Path, relative: bool) -> Option<String> {
        let krate = self.krate.as_ref()?;
        let value = match &self.source {
            Source::Path(p) => {
                let shown = if relative {
                    relative_path(from, p)
                } else {
                    p.clone()
                };
                format!("{{ path = {:?} }}", shown.to_string_lossy())
            }
            Source::Registry(v) => format!("{v:?}"),
            Source::Git { url, reference } => match reference {
                Some((kind, value)) => format!("{{ git = {url:?}, {kind} = {value:?} }}"),
                None => format!("{{ git = {url:?} }}"),
            },
            Source::Any => "\"*\"".to_string(),
        };
        Some(format!("{krate} = {value}"))
    }
}

/// Read a `plugin.cfg`. `label` names it in messages, `base` is the directory that relative
/// paths start from, `root` the project (for workspace plugins); `anchors` allows bare
/// directives (the extra file of a build).
pub fn parse(
    text: &str,
    label: &str,
    base: &Path,
    root: &Path,
    anchors: bool,
) -> Result<Vec<Entry>> {
    let mut out: Vec<Entry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{label}:{}", i + 1);
        let (name, spec) = match line.split_once(':') {
            Some((n, s)) => (n.trim(), Some(s.trim())),
            None if anchors => (line, None),
            None => bail!("{at}: expected <directive>:<crate>, got {line:?}"),
        };
        if !valid_name(name) || spec.is_some_and(str::is_empty) {
            bail!("{at}: expected <directive>:<crate>, got {line:?}");
        }
        if out.iter().any(|e| e.name == name) {
            bail!("{at}: directive {name:?} listed twice");
        }
        let Some(spec) = spec else {
            out.push(Entry {
                at,
                name: name.to_string(),
                krate: None,
                source: Source::Any,
            });
            continue;
        };
        let (krate, source) = if let Some((k, v)) = spec.split_once('@') {
            if v.trim().is_empty() {
                bail!("{at}: no version after '@' in {line:?}");
            }
            (k.trim(), Source::Registry(v.trim().to_string()))
        } else if let Some((k, v)) = spec.split_once('=') {
            let (k, v) = (k.trim(), v.trim());
            match v.strip_prefix("git+") {
                Some(url) => (k, git(url, &at)?),
                None => (k, Source::Path(local(k, v, base, &at)?)),
            }
        } else {
            match workspace_plugin(root, spec) {
                Some(dir) => (spec, Source::Path(dir)),
                None => (spec, Source::Any),
            }
        };
        if !valid_name(krate) {
            bail!("{at}: {krate:?} is not a crate name");
        }
        out.push(Entry {
            at,
            name: name.to_string(),
            krate: Some(krate.to_string()),
            source,
        });
    }
    Ok(out)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `URL`, `URL#rev`, `URL?branch=b` or `URL?tag=t`.
fn git(spec: &str, at: &str) -> Result<Source> {
    let (url, reference) = if let Some((u, rev)) = spec.split_once('#') {
        (u, Some(("rev", rev.to_string())))
    } else if let Some((u, query)) = spec.split_once('?') {
        match query.split_once('=') {
            Some(("branch", b)) => (u, Some(("branch", b.to_string()))),
            Some(("tag", t)) => (u, Some(("tag", t.to_string()))),
            _ => bail!(
                "{at}: after a git URL, expected #<rev>, ?branch=<b> or ?tag=<t>, got ?{query}"
            ),
        }
    } else {
        (spec, None)
    };
    if url.is_empty() || reference.as_ref().is_some_and(|(_, v)| v.is_empty()) {
        bail!("{at}: incomplete git source {spec:?}");
    }
    Ok(Source::Git {
        url: url.to_string(),
        reference,
    })
}

/// A local crate directory, checked: it must hold a `Cargo.toml` of the named package.
fn local(krate: &str, path: &str, base: &Path, at: &str) -> Result<PathBuf> {
    let joined = base.join(path);
    let Ok(dir) = joined.canonicalize() else {
        bail!(
            "{at}: {path}: no such directory (paths are relative to the plugin.cfg they are in: {})",
            joined.display()
        );
    };
    let manifest = dir.join("Cargo.toml");
    let Ok(text) = fs::read_to_string(&manifest) else {
        bail!("{at}: {path}: no Cargo.toml in {}", dir.display());
    };
    match package_name(&text) {
        Some(n) if n == krate => Ok(dir),
        Some(n) => bail!(
            "{at}: {} is the package {n:?}, not {krate:?}",
            manifest.display()
        ),
        None => bail!("{at}: {} has no [package] name", manifest.display()),
    }
}

/// The `name` of a manifest's `[package]` section.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
            continue;
        }
        if in_package && let Some(v) = line.strip_prefix("name") {
            let v = v.trim_start().strip_prefix('=')?.trim();
            return Some(v.trim_matches('"').to_string());
        }
    }
    None
}

/// `plugins/<dir>` of a workspace plugin crate: the crate name after `ferrodns-plugin-`, or
/// the directive spelled with underscores (`plugins/k8s_external` holds
/// `ferrodns-plugin-k8s-external`).
fn workspace_plugin(root: &Path, krate: &str) -> Option<PathBuf> {
    let suffix = krate.strip_prefix("ferrodns-plugin-")?;
    [suffix.to_string(), suffix.replace('-', "_")]
        .into_iter()
        .map(|d| root.join("plugins").join(d))
        .find(|dir| {
            fs::read_to_string(dir.join("Cargo.toml"))
                .ok()
                .and_then(|text| package_name(&text))
                .is_some_and(|name| name == krate)
        })
}

/// `to` as a path from the directory `from` (both absolute).
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let a: Vec<Component> = from.components().collect();
    let b: Vec<Component> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c);
    }
    out
}

/// The project's plugins with the lines of an extra file merged in. A bare directive of the
/// project's is an anchor; written with a crate, it also replaces that directive's crate in
/// place. A new directive goes just before the next anchor below it in the extra file, or at
/// the end of the chain when none follows.
pub fn merge(project: &[Entry], extra: &[Entry]) -> Result<Vec<Entry>> {
    let mut out: Vec<Entry> = project.to_vec();
    // Walk the extra lines from the last: each new one goes just before what was placed (or
    // anchored) after it.
    let mut at = out.len();
    for e in extra.iter().rev() {
        match out.iter().position(|p| p.name == e.name) {
            Some(i) => {
                if e.krate.is_some() {
                    out[i] = e.clone();
                }
                at = i;
            }
            None if e.krate.is_none() => bail!(
                "{}: {:?} is not a directive of the project's plugin.cfg; a new plugin needs its crate (<directive>:<crate>)",
                e.at,
                e.name
            ),
            None => {
                out.insert(at, e.clone());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        crate::root()
    }

    #[test]
    fn parses_sources_and_rejects_bad_lines() {
        let r = root();
        let e = parse(
            "# c\nfoo:foo-crate@0.3\nbar:ferrodns-plugin=crates/plugin\nbaz:baz\ncache:ferrodns-plugin-cache\ng:g=git+https://h/r?tag=v1\n",
            "plugin.cfg",
            &r,
            &r,
            false,
        )
        .unwrap();
        assert_eq!(e[0].source, Source::Registry("0.3".into()));
        assert_eq!(e[1].source, Source::Path(r.join("crates/plugin")));
        assert_eq!(e[2].source, Source::Any);
        assert_eq!(e[3].source, Source::Path(r.join("plugins/cache")));
        assert_eq!(
            e[4].dependency(&r, true).unwrap(),
            "g = { git = \"https://h/r\", tag = \"v1\" }"
        );
        assert_eq!(
            e[1].dependency(&r.join("crates/ferrodns"), true).unwrap(),
            "ferrodns-plugin = { path = \"../plugin\" }"
        );
        for (bad, why) in [
            ("a:x\na:y\n", "plugin.cfg:2: directive \"a\" listed twice"),
            ("\nnocolon\n", "plugin.cfg:2: expected <directive>:<crate>"),
            (
                "a:x=no/such/dir\n",
                "plugin.cfg:1: no/such/dir: no such directory",
            ),
            (
                "a:x=crates/plugin\n",
                "is the package \"ferrodns-plugin\", not \"x\"",
            ),
            ("a:x@\n", "plugin.cfg:1: no version"),
        ] {
            let err = parse(bad, "plugin.cfg", &r, &r, false)
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn merge_places_new_lines_before_their_anchor_or_at_the_end() {
        let r = root();
        let project = parse("a:ca\nb:cb\nc:cc\n", "plugin.cfg", &r, &r, false).unwrap();
        let extra = parse("x:cx\ny:cy\nb\nz:cz\nc:other\n", "extra.cfg", &r, &r, true).unwrap();
        let merged = merge(&project, &extra).unwrap();
        let names: Vec<&str> = merged.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "x", "y", "b", "z", "c"]);
        assert_eq!(merged[5].krate.as_deref(), Some("other"));
        let tail = merge(&project, &parse("w:cw\n", "e", &r, &r, true).unwrap()).unwrap();
        assert_eq!(tail.last().unwrap().name, "w");
        let unknown = parse("nope\n", "extra.cfg", &r, &r, true).unwrap();
        assert!(
            merge(&project, &unknown)
                .unwrap_err()
                .to_string()
                .starts_with("extra.cfg:1:")
        );
    }
}

//! Polling a mounted ConfigMap directory for changes (§3.5), as kube-dns's file sync does.
//!
//! One load lists the entries directly in the directory (no recursion) in byte order of their
//! names, skips directories (as `lstat` sees them) and names starting with `.` (the ConfigMap
//! volume's `..data` and `..<timestamp>` entries), reads every other entry following symlinks
//! (the keys are `key -> ..data/key` links), requires UTF-8, and hashes
//! `name\0content\0...` with SHA-256. The hex digest is the *version*; a directory without
//! files has the version `""`. A version different from the last one seen is a change.
//!
//! Like upstream, the directory itself is checked with `lstat`: a symlink to a directory is
//! refused (`config path "..." is not a directory`).
//!
//! [`DirWatcher::poll`] is one check; node-cache's sync loop in `corefile` calls it on every
//! tick of `ticker` (10 s in production). The reads are small synchronous file reads done on
//! the runtime's worker thread.

use ferrodns_go::os::io_error;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tracing::error;

/// The default period of both directory pollers (kube-dns's `ConfigPeriod` and node-cache's
/// `DefaultConfigSyncPeriod`).
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(10);

/// The content of a directory at one load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirSnapshot {
    /// Hex SHA-256 over `name\0content\0...` in name order; `""` when there are no files.
    pub version: String,
    /// File name → content.
    pub data: BTreeMap<String, String>,
}

/// Why a directory could not be loaded. The text is Go's (`lstat <path>: no such file or
/// directory`, `non-utf8 data in <path>`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SyncDirError(pub String);

fn child_path(dir: &Path, name: &std::ffi::OsStr) -> PathBuf {
    dir.join(name)
}

/// Load a directory once (see the module doc).
pub fn load(dir: &Path) -> Result<DirSnapshot, SyncDirError> {
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| SyncDirError(io_error("lstat", dir.display(), &e)))?;
    if !meta.is_dir() {
        return Err(SyncDirError(format!(
            "config path {} is not a directory",
            crate::kubedns::go_quote(&dir.to_string_lossy())
        )));
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| SyncDirError(io_error("open", dir.display(), &e)))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| SyncDirError(io_error("readdirent", dir.display(), &e)))?;
        names.push(entry.file_name());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));

    let mut hasher = Sha256::new();
    let mut data = BTreeMap::new();
    for name in names {
        let path = child_path(dir, &name);
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| SyncDirError(io_error("lstat", path.display(), &e)))?;
        if meta.is_dir() || name.as_bytes().starts_with(b".") {
            continue;
        }
        let mut bytes = Vec::new();
        let mut file = std::fs::File::open(&path)
            .map_err(|e| SyncDirError(io_error("open", path.display(), &e)))?;
        file.read_to_end(&mut bytes)
            .map_err(|e| SyncDirError(io_error("read", path.display(), &e)))?;
        let Ok(text) = String::from_utf8(bytes) else {
            return Err(SyncDirError(format!("non-utf8 data in {}", path.display())));
        };
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
        hasher.update(text.as_bytes());
        hasher.update([0u8]);
        data.insert(name.to_string_lossy().into_owned(), text);
    }
    let mut version = String::new();
    if !data.is_empty() {
        for b in hasher.finalize() {
            let _ = write!(version, "{b:02x}");
        }
    }
    Ok(DirSnapshot { version, data })
}

/// One watched directory: remembers the last version seen.
#[derive(Debug, Clone)]
pub struct DirWatcher {
    dir: PathBuf,
    last_version: String,
}

impl DirWatcher {
    /// A watcher that has seen nothing yet (last version `""`, as upstream: an empty directory
    /// at first sight is not a change; a non-empty one is).
    pub fn new(dir: impl Into<PathBuf>) -> DirWatcher {
        DirWatcher {
            dir: dir.into(),
            last_version: String::new(),
        }
    }

    /// The watched directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last version seen.
    pub fn version(&self) -> &str {
        &self.last_version
    }

    /// The synchronous first read: load, remember the version, return the content whether or
    /// not it changed. The caller logs the error (`Failed to sync ...`).
    pub fn once(&mut self) -> Result<DirSnapshot, SyncDirError> {
        let snap = load(&self.dir)?;
        self.last_version.clone_from(&snap.version);
        Ok(snap)
    }

    /// One periodic check: `Some` when the version differs from the last one seen. A load
    /// error is logged (`Error loading config from <dir>: <err>`) and is not a change.
    pub fn poll(&mut self) -> Option<DirSnapshot> {
        match load(&self.dir) {
            Ok(snap) if snap.version != self.last_version => {
                self.last_version.clone_from(&snap.version);
                Some(snap)
            }
            Ok(_) => None,
            Err(e) => {
                error!(target: "node-cache", "Error loading config from {}: {}", self.dir.display(), e);
                None
            }
        }
    }
}

/// An interval whose first tick is one period away and that does not burst after a stall.
pub(crate) fn ticker(period: Duration) -> tokio::time::Interval {
    let period = period.max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

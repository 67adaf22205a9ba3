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
//! tick of `ticker` (10 s in production) and, unlike upstream, as soon as [`DirEvents`]
//! (inotify) shows a change, so a ConfigMap update is applied within a fraction of a second
//! instead of up to a period later. The reads are small synchronous file reads done on the
//! runtime's worker thread.

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

/// How long the directory is left to settle after a change is seen before it is read: a
/// ConfigMap update is a burst of events (a new timestamped directory, the `..data` link swapped
/// in, the old directory removed), and a plain file being rewritten may be read half-written.
const SETTLE: Duration = Duration::from_millis(100);

/// File-system events for one directory (inotify, through the `notify` crate): upstream only
/// polls, so a ConfigMap change waits up to a period (10 s) before it is applied; with these it
/// is read as soon as it lands. The poll stays, for a directory whose events cannot be watched
/// (inotify limits, the directory replaced as a whole).
pub struct DirEvents {
    _watcher: notify::RecommendedWatcher,
    seen: tokio::sync::mpsc::Receiver<()>,
    /// A change was seen and the directory is settling: kept across a cancelled
    /// [`DirEvents::changed`], so that the change is not forgotten.
    pending: bool,
}

impl DirEvents {
    /// Watch `dir` (not recursively); `None`, with the reason logged at debug level, when it
    /// cannot be watched.
    pub fn watch(dir: &Path) -> Option<DirEvents> {
        use notify::Watcher as _;
        let (tx, seen) = tokio::sync::mpsc::channel(1);
        let handler = move |event: notify::Result<notify::Event>| {
            // Only the fact of a change matters: the read compares content. A full channel
            // already holds one, and an event for a watcher that is gone is dropped.
            // Reads (ours among them: each check opens the directory and its files) are not
            // changes.
            if let Ok(e) = event
                && !matches!(
                    e.kind,
                    notify::EventKind::Access(_)
                        | notify::EventKind::Modify(notify::event::ModifyKind::Metadata(
                            notify::event::MetadataKind::AccessTime
                        ))
                )
            {
                let _ = tx.try_send(());
            }
        };
        let watched = notify::recommended_watcher(handler).and_then(|mut w| {
            w.watch(dir, notify::RecursiveMode::NonRecursive)?;
            Ok(w)
        });
        match watched {
            Ok(w) => Some(DirEvents {
                _watcher: w,
                seen,
                pending: false,
            }),
            Err(e) => {
                tracing::debug!(target: "node-cache", "not watching {} for events, polling only: {e}", dir.display());
                None
            }
        }
    }

    /// Wait for a change to be seen and the directory to settle (no event for [`SETTLE`]).
    /// Cancel-safe: dropped while the directory settles, the next call goes on settling.
    pub async fn changed(&mut self) {
        if !self.pending {
            if self.seen.recv().await.is_none() {
                return std::future::pending().await;
            }
            self.pending = true;
        }
        while let Ok(Some(())) = tokio::time::timeout(SETTLE, self.seen.recv()).await {}
        self.pending = false;
    }
}

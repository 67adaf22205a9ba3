//! The directory poller on real temporary directories (ConfigMap-style `..data` symlink swaps
//! included) and `ConfigSync` end to end: startup writes, re-rendering on kube-dns and template
//! changes, invalid kube-dns content ignored, stop.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrodns_node_cache::corefile::{ConfigOptions, ConfigSync, RenderParams};
use ferrodns_node_cache::syncdir::{self, DirWatcher};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

const IPTABLES: &[u8] = include_bytes!("fixtures/iptables.Corefile.base");

static N: AtomicUsize = AtomicUsize::new(0);

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "nc-sync-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn hex_sha256(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn load_lists_plain_files_in_name_order() {
    // Every test logs through its own subscriber: tracing caches interest per callsite
    // across threads, so a test thread without one can hide another's events.
    let _logs = Logs::default();
    let _guard = _logs.install();
    let dir = temp_dir("load");
    std::fs::write(dir.join("b"), "B").unwrap();
    std::fs::write(dir.join("a"), "A").unwrap();
    std::fs::write(dir.join(".hidden"), "H").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/c"), "C").unwrap();
    std::os::unix::fs::symlink(dir.join("a"), dir.join("link")).unwrap();
    let snap = syncdir::load(&dir).unwrap();
    assert_eq!(snap.data.keys().collect::<Vec<_>>(), vec!["a", "b", "link"]);
    assert_eq!(snap.data["link"], "A");
    assert_eq!(
        snap.version,
        hex_sha256(&[b"a\0A\0", b"b\0B\0", b"link\0A\0"])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_errors_read_as_go() {
    // Every test logs through its own subscriber: tracing caches interest per callsite
    // across threads, so a test thread without one can hide another's events.
    let _logs = Logs::default();
    let _guard = _logs.install();
    let dir = temp_dir("errors");
    // Empty: no files, version "".
    let snap = syncdir::load(&dir).unwrap();
    assert_eq!(snap.version, "");
    assert!(snap.data.is_empty());

    let missing = dir.join("missing");
    assert_eq!(
        syncdir::load(&missing).unwrap_err().to_string(),
        format!("lstat {}: no such file or directory", missing.display())
    );
    let file = dir.join("file");
    std::fs::write(&file, "x").unwrap();
    assert_eq!(
        syncdir::load(&file).unwrap_err().to_string(),
        format!("config path \"{}\" is not a directory", file.display())
    );
    std::fs::remove_file(&file).unwrap();
    std::fs::File::create(dir.join("bin"))
        .unwrap()
        .write_all(&[0xff, 0xfe])
        .unwrap();
    assert_eq!(
        syncdir::load(&dir).unwrap_err().to_string(),
        format!("non-utf8 data in {}", dir.join("bin").display())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Lay out a directory as the kubelet does for a ConfigMap volume: `..<ts>/key` files,
/// `..data -> ..<ts>`, `key -> ..data/key`; a new version is swapped in by renaming a new
/// `..data` link over the old one.
fn configmap_version(dir: &Path, ts: &str, files: &[(&str, &str)]) {
    let versioned = dir.join(format!("..{ts}"));
    std::fs::create_dir(&versioned).unwrap();
    for (k, v) in files {
        std::fs::write(versioned.join(k), v).unwrap();
        let link = dir.join(k);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{k}"), &link).unwrap();
        }
    }
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{ts}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

#[test]
fn configmap_symlink_swap_is_a_change() {
    // Every test logs through its own subscriber: tracing caches interest per callsite
    // across threads, so a test thread without one can hide another's events.
    let _logs = Logs::default();
    let _guard = _logs.install();
    let dir = temp_dir("swap");
    configmap_version(
        &dir,
        "2026_11_22_05_00_00.1",
        &[("stubDomains", r#"{"a.b":["1.1.1.1"]}"#)],
    );
    let mut w = DirWatcher::new(&dir);
    let first = w.once().unwrap();
    assert_eq!(first.data.len(), 1);
    assert_eq!(first.data["stubDomains"], r#"{"a.b":["1.1.1.1"]}"#);
    assert_eq!(w.poll(), None);

    configmap_version(
        &dir,
        "2026_11_22_05_01_00.2",
        &[("stubDomains", r#"{"a.b":["2.2.2.2"]}"#)],
    );
    let second = w.poll().expect("change seen");
    assert_eq!(second.data["stubDomains"], r#"{"a.b":["2.2.2.2"]}"#);
    assert_ne!(second.version, first.version);
    assert_eq!(w.poll(), None);

    // Back to the first content: a change again (versions are compared, not remembered).
    configmap_version(
        &dir,
        "2026_11_22_05_02_00.3",
        &[("stubDomains", r#"{"a.b":["1.1.1.1"]}"#)],
    );
    assert_eq!(w.poll().map(|s| s.version), Some(first.version));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn first_sight_of_an_empty_directory_is_not_a_change() {
    // Every test logs through its own subscriber: tracing caches interest per callsite
    // across threads, so a test thread without one can hide another's events.
    let _logs = Logs::default();
    let _guard = _logs.install();
    let dir = temp_dir("first");
    let mut w = DirWatcher::new(&dir);
    assert_eq!(w.poll(), None);
    std::fs::write(dir.join("k"), "v").unwrap();
    assert!(w.poll().is_some());
    // A directory that disappears is an error (logged), not a change.
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(w.poll(), None);
}

/// Captured log lines, in the project's `[LEVEL] message` shape.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let w = self.clone();
        let sub = tracing_subscriber::fmt()
            .event_format(ferrodns_server::logging::CoreDnsFormat)
            .with_writer(move || w.clone())
            .finish();
        tracing::subscriber::set_default(sub)
    }
}

struct Layout {
    root: PathBuf,
    coredns: PathBuf,
    kubedns: PathBuf,
    out: PathBuf,
}

fn layout(name: &str) -> Layout {
    let root = temp_dir(name);
    let coredns = root.join("coredns");
    let kubedns = root.join("kube-dns");
    std::fs::create_dir(&coredns).unwrap();
    std::fs::write(coredns.join("Corefile.base"), IPTABLES).unwrap();
    let out = root.join("Corefile");
    Layout {
        root,
        coredns,
        kubedns,
        out,
    }
}

fn options(l: &Layout, kubedns: Option<PathBuf>) -> ConfigOptions {
    let mut o = ConfigOptions::new(
        &l.out,
        RenderParams {
            cluster_dns: "10.96.0.11".to_string(),
            local_ip: "169.254.20.10,10.96.0.10".to_string(),
            port: "53".to_string(),
            prometheus_listen_address: Some(":9253".to_string()),
        },
    );
    o.base_corefile = l.coredns.join("Corefile.base");
    o.kubedns_dir = kubedns;
    o.default_kubedns_dir = l.root.join("no-default-kube-dns");
    o.kubedns_period = Duration::from_millis(30);
    o.base_period = Duration::from_millis(30);
    o
}

async fn wait_for(path: &Path, what: impl Fn(&str) -> bool) -> String {
    for _ in 0..300 {
        if let Ok(s) = std::fs::read_to_string(path)
            && what(&s)
        {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "timed out; file is:\n{}",
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

#[tokio::test]
async fn config_sync_end_to_end() {
    let logs = Logs::default();
    let _guard = logs.install();
    let l = layout("e2e");
    std::fs::create_dir(&l.kubedns).unwrap();
    configmap_version(
        &l.kubedns,
        "1",
        &[(
            "stubDomains",
            r#"{"consul.local": ["10.150.0.1"], "acme.example": ["1.2.3.4", "[fd00::53]:5353"]}"#,
        )],
    );
    let errors = Arc::new(AtomicUsize::new(0));
    let e = errors.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let sync = ConfigSync::start(
        options(&l, Some(l.kubedns.clone())),
        Arc::new(move |_: &str| {
            e.fetch_add(1, Ordering::SeqCst);
        }),
        stop_rx,
    );
    // Both startup writes are done when start returns: the kube-dns one is the file now.
    assert_eq!(
        std::fs::read_to_string(&l.out).unwrap(),
        include_str!("fixtures/expected/iptables-stubs.Corefile")
    );
    let text = logs.text();
    assert!(text.contains(
        "[INFO] Updated Corefile with 0 custom stubdomains and upstream servers /etc/resolv.conf\n"
    ));
    assert!(text.contains(
        "[INFO] Updated Corefile with 2 custom stubdomains and upstream servers /etc/resolv.conf\n"
    ));
    assert!(text.contains(&format!(
        "[INFO] Using config file:\n{}",
        include_str!("fixtures/expected/iptables-stubs.Corefile")
    )));

    // A kube-dns change: upstreams added.
    configmap_version(
        &l.kubedns,
        "2",
        &[
            (
                "stubDomains",
                r#"{"consul.local": ["10.150.0.1"], "acme.example": ["1.2.3.4", "[fd00::53]:5353"]}"#,
            ),
            ("upstreamNameservers", r#"["8.8.8.8", "8.8.4.4:53"]"#),
        ],
    );
    let s = wait_for(&l.out, |s| s.contains("forward . 8.8.8.8 8.8.4.4:53\n")).await;
    assert!(s.contains("\nconsul.local:53 {\n"));
    let text = logs.text();
    assert!(
        text.contains(
            "[WARNING] Did not find TCP upstream block to replace, assuming upstreams already use UDP.\n"
        ),
        "{text}"
    );

    // Invalid kube-dns content is logged and ignored; the file keeps the last good config.
    configmap_version(
        &l.kubedns,
        "3",
        &[
            ("stubDomains", r#"{"consul.local": ["10.150.0.1"]"#),
            ("upstreamNameservers", r#"["8.8.8.8", "8.8.4.4:53"]"#),
        ],
    );
    let logs2 = logs.clone();
    for _ in 0..300 {
        if logs2
            .text()
            .contains("Invalid configuration for stubDomains, ignoring update")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let text = logs.text();
    assert!(
        text.contains("[ERROR] Invalid JSON \"{\\\"consul.local\\\": [\\\"10.150.0.1\\\"]\": unexpected end of JSON input\n"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&l.out).unwrap(), s);

    // A template change re-renders with the last good kube-dns config.
    let new_template = String::from_utf8(IPTABLES.to_vec())
        .unwrap()
        .replace("cache 30\n", "cache 60\n");
    std::fs::write(l.coredns.join("Corefile.base"), new_template).unwrap();
    let s = wait_for(&l.out, |s| s.contains("    cache 60\n")).await;
    assert!(s.contains("forward . 8.8.8.8 8.8.4.4:53\n"));
    assert!(s.contains("\nacme.example:53 {\n"));
    // Stub blocks keep their own `cache 30`.
    assert!(s.contains("\nconsul.local:53 {\n    errors\n    cache 30\n"));
    assert_eq!(errors.load(Ordering::SeqCst), 0);

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), sync.join())
        .await
        .unwrap();
    std::fs::remove_dir_all(&l.root).unwrap();
}

#[tokio::test]
async fn no_kube_dns_directory() {
    let logs = Logs::default();
    let _guard = logs.install();
    let l = layout("nokubedns");
    let (stop_tx, stop_rx) = watch::channel(false);
    let sync = ConfigSync::start(options(&l, None), Arc::new(|_: &str| {}), stop_rx);
    assert_eq!(
        std::fs::read_to_string(&l.out).unwrap(),
        include_str!("fixtures/expected/iptables-empty.Corefile")
    );
    assert!(
        logs.text()
            .contains("[INFO] Skipping kube-dns configmap sync as no directory was specified\n")
    );
    // An explicit directory that does not exist is reported and not watched.
    let logs2 = Logs::default();
    let guard2 = logs2.install();
    let (stop_tx2, stop_rx2) = watch::channel(false);
    let sync2 = ConfigSync::start(
        options(&l, Some(l.kubedns.clone())),
        Arc::new(|_: &str| {}),
        stop_rx2,
    );
    assert!(logs2.text().contains(&format!(
        "[ERROR] Failed to sync kube-dns config directory {}, err: lstat {}: no such file or directory\n",
        l.kubedns.display(),
        l.kubedns.display()
    )));
    drop(guard2);
    // Dropping the stop sender also ends the task.
    drop(stop_tx2);
    tokio::time::timeout(Duration::from_secs(5), sync2.join())
        .await
        .unwrap();
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), sync.join())
        .await
        .unwrap();
    std::fs::remove_dir_all(&l.root).unwrap();
}

#[tokio::test]
async fn default_kube_dns_directory_is_used_when_it_exists() {
    // Every test logs through its own subscriber: tracing caches interest per callsite
    // across threads, so a test thread without one can hide another's events.
    let _logs = Logs::default();
    let _guard = _logs.install();
    let l = layout("default");
    let default = l.root.join("etc-kube-dns");
    std::fs::create_dir(&default).unwrap();
    std::fs::write(default.join("upstreamNameservers"), r#"["1.1.1.1"]"#).unwrap();
    let mut o = options(&l, None);
    o.default_kubedns_dir = default;
    let (stop_tx, stop_rx) = watch::channel(false);
    let sync = ConfigSync::start(o, Arc::new(|_: &str| {}), stop_rx);
    assert!(
        std::fs::read_to_string(&l.out)
            .unwrap()
            .contains("    forward . 1.1.1.1\n")
    );
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), sync.join())
        .await
        .unwrap();
    std::fs::remove_dir_all(&l.root).unwrap();
}

#[tokio::test]
async fn reload_with_signal_sends_sigusr1_to_this_process() {
    let logs = Logs::default();
    let _guard = logs.install();
    let l = layout("signal");
    let mut usr1 =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).unwrap();
    let mut o = options(&l, None);
    o.reload_with_signal = true;
    let (stop_tx, stop_rx) = watch::channel(false);
    let sync = ConfigSync::start(o, Arc::new(|_: &str| {}), stop_rx);
    tokio::time::timeout(Duration::from_secs(5), usr1.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(logs.text().contains(&format!(
        "[INFO] Sending reload signal to PID {}\n",
        std::process::id()
    )));
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), sync.join())
        .await
        .unwrap();
    std::fs::remove_dir_all(&l.root).unwrap();
}

#[tokio::test]
async fn invalid_kube_dns_at_startup_is_reported_and_still_watched() {
    let logs = Logs::default();
    let _guard = logs.install();
    let l = layout("invalid-start");
    std::fs::create_dir(&l.kubedns).unwrap();
    std::fs::write(
        l.kubedns.join("upstreamNameservers"),
        r#"["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"]"#,
    )
    .unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let sync = ConfigSync::start(
        options(&l, Some(l.kubedns.clone())),
        Arc::new(|_: &str| {}),
        stop_rx,
    );
    let text = logs.text();
    assert!(text.contains("[ERROR] Invalid configuration: upstreamNameserver cannot have more than three entries (value was &{TypeMeta:{Kind: APIVersion:} Federations:map[] StubDomains:map[] UpstreamNameservers:[1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4]}), ignoring update\n"), "{text}");
    assert!(text.contains(&format!(
        "[ERROR] Failed to sync kube-dns config directory {}, err: upstreamNameserver cannot have more than three entries\n",
        l.kubedns.display()
    )));
    assert_eq!(
        std::fs::read_to_string(&l.out).unwrap(),
        include_str!("fixtures/expected/iptables-empty.Corefile")
    );
    // Upstream would stop watching here; we keep watching, so a fix is applied.
    std::fs::write(l.kubedns.join("upstreamNameservers"), r#"["1.1.1.1"]"#).unwrap();
    wait_for(&l.out, |s| s.contains("    forward . 1.1.1.1\n")).await;
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), sync.join())
        .await
        .unwrap();
    std::fs::remove_dir_all(&l.root).unwrap();
}

/// A ConfigMap update is applied as soon as it lands (inotify), not a poll period later: here
/// both periods are an hour.
#[tokio::test]
async fn a_configmap_update_is_applied_at_once_not_at_the_next_poll() {
    let logs = Logs::default();
    let _guard = logs.install();
    let l = layout("events");
    std::fs::create_dir(&l.kubedns).unwrap();
    configmap_version(
        &l.kubedns,
        "1",
        &[("stubDomains", r#"{"consul.local": ["10.150.0.1"]}"#)],
    );
    let mut o = options(&l, Some(l.kubedns.clone()));
    o.kubedns_period = Duration::from_secs(3600);
    o.base_period = Duration::from_secs(3600);
    let (stop_tx, stop_rx) = watch::channel(false);
    let sync = ConfigSync::start(o, Arc::new(|_: &str| {}), stop_rx);
    assert!(
        std::fs::read_to_string(&l.out)
            .unwrap()
            .contains("\nconsul.local:53 {\n")
    );

    // The kube-dns ConfigMap: a `..data` swap.
    configmap_version(
        &l.kubedns,
        "2",
        &[
            ("stubDomains", r#"{"consul.local": ["10.150.0.1"]}"#),
            ("upstreamNameservers", r#"["8.8.8.8"]"#),
        ],
    );
    wait_for(&l.out, |s| s.contains("forward . 8.8.8.8\n")).await;

    // The template's directory: a file rewritten in place.
    let base = std::fs::read_to_string(l.coredns.join("Corefile.base")).unwrap();
    std::fs::write(
        l.coredns.join("Corefile.base"),
        format!("{base}\nevents.example:53 {{\n    whoami\n}}\n"),
    )
    .unwrap();
    let s = wait_for(&l.out, |s| s.contains("events.example:53 {")).await;
    assert!(s.contains("forward . 8.8.8.8\n"), "{s}");

    stop_tx.send(true).unwrap();
    sync.join().await;
    std::fs::remove_dir_all(&l.root).unwrap();
}

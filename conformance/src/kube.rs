//! Kubernetes cases: one real API server per case (kube-apiserver on kine, see
//! `ferrodns-kube-testenv`), the case's objects created in it before both DNS servers start,
//! and changes applied between queries, after which the harness waits until each server's
//! answer changes and records how long that took (its watch latency).
//!
//! Objects are TOML tables mirroring the JSON API objects (`apiVersion`, `kind`, `metadata`,
//! `spec`, `status`, ...). One key is the harness's own: `action` (`create`, the default;
//! `patch`, a JSON merge patch; `delete`). A `status` is written through the status
//! subresource, since no kubelet or controller runs.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use ferrodns_kube_testenv::{Action, ApiServer, Bins, Client};
use serde_json::Value;

use crate::case::Case;
use crate::process::TempDir;

/// One object and what to do with it.
#[derive(Debug, Clone)]
pub struct Change {
    /// Create, patch or delete.
    pub action: Action,
    /// The object as JSON, without the `action` key.
    pub object: Value,
}

impl Change {
    /// Read a case's table: the object, and `action` taken out of it.
    pub fn from_table(table: &toml::Table) -> Result<Change> {
        let mut table = table.clone();
        let action = match table.remove("action") {
            None => Action::Create,
            Some(toml::Value::String(s)) => s.parse()?,
            Some(other) => anyhow::bail!("action must be a string, not {other}"),
        };
        let object = serde_json::to_value(&table).context("converting the object to JSON")?;
        ferrodns_kube_testenv::resource_path(&object)?;
        Ok(Change { action, object })
    }

    /// `Service watch/web created` (for notes and errors).
    pub fn describe(&self) -> String {
        let kind = self.object["kind"].as_str().unwrap_or("object");
        let name = self.object["metadata"]["name"].as_str().unwrap_or("?");
        let full = match self.object["metadata"]["namespace"].as_str() {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        };
        let done = match self.action {
            Action::Create => "created",
            Action::Patch => "patched",
            Action::Delete => "deleted",
        };
        format!("{full} {done}")
    }
}

/// Whether a case needs an API server: it has objects, changes, or a Corefile naming one.
pub fn needed(case: &Case) -> bool {
    !case.kube.is_empty()
        || case.query.iter().any(|q| !q.kube.is_empty())
        || case.corefile.contains("{KUBE")
        || case.files.values().any(|f| f.contains("{KUBE"))
}

/// How many kubernetes cases run at once: an API server takes a core to start, and CoreDNS
/// gives up waiting for its first sync after 5 s (`startup_timeout`), which a loaded 2-core
/// machine can exceed.
const AT_ONCE: usize = 2;

static RUNNING: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// A place among the kubernetes cases allowed to run at once; given back on drop.
struct Slot;

impl Slot {
    fn take() -> Slot {
        let (lock, cv) = &RUNNING;
        let mut n = lock.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= AT_ONCE {
            n = cv.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (lock, cv) = &RUNNING;
        let mut n = lock.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        cv.notify_one();
    }
}

/// The API server of one case, its directory removed after it is stopped.
pub struct Cluster {
    // Field order is drop order: the processes die before their directory goes, and the slot
    // is given back last.
    server: ApiServer,
    client: Client,
    /// When the API server was started (seconds since the epoch): no SOA serial of a
    /// kubernetes zone can be older.
    pub started_unix: u64,
    dir: TempDir,
    _slot: Slot,
}

impl Cluster {
    /// Start the API server and create the case's objects, in order.
    pub fn start(bins: &Bins, case: &Case) -> Result<Cluster> {
        let slot = Slot::take();
        let started_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let dir = TempDir::new("kube")?;
        // A case's API server starts within seconds; the limit is for a machine under load.
        let server = ApiServer::start(bins, dir.path(), Duration::from_secs(120))
            .context("starting the case's kube-apiserver")?;
        let client = server.client()?;
        let cluster = Cluster {
            server,
            client,
            started_unix,
            dir,
            _slot: slot,
        };
        let changes = case
            .kube
            .iter()
            .map(Change::from_table)
            .collect::<Result<Vec<_>>>()?;
        cluster.apply(&changes)?;
        Ok(cluster)
    }

    /// Apply changes in order; when the last request was sent (the moment a watch latency is
    /// measured from: the change is made between it and the answer).
    pub fn apply(&self, changes: &[Change]) -> Result<Instant> {
        let mut last = Instant::now();
        for c in changes {
            last = self
                .client
                .apply(c.action, &c.object)
                .with_context(|| c.describe())?;
        }
        Ok(last)
    }

    /// The placeholders of a kubernetes case: `{KUBECONFIG}` (a kubeconfig file with the
    /// server's URL, its certificate not checked, and a bearer token; context
    /// `ferrodns-test`), `{KUBE_URL}` (`https://127.0.0.1:PORT`), `{KUBE_CERTS}` (the
    /// directory with the server's self-signed `apiserver.crt`, which holds its CA too, and a
    /// client certificate `client.crt` / `client.key` it accepts as `system:masters`).
    pub fn vars(&self) -> Vec<(String, String)> {
        let certs: PathBuf = self.dir.path().join("certs");
        vec![
            (
                "KUBECONFIG".into(),
                self.server.kubeconfig().display().to_string(),
            ),
            ("KUBE_URL".into(), self.server.url()),
            ("KUBE_CERTS".into(), certs.display().to_string()),
        ]
    }

    /// The window a kubernetes SOA serial (the Unix time of the last change a server saw) must
    /// lie in: from the API server's start to a second from now.
    pub fn serial_window(&self) -> std::ops::RangeInclusive<u32> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let low = u32::try_from(self.started_unix.saturating_sub(1)).unwrap_or(u32::MAX);
        let high = u32::try_from(now + 1).unwrap_or(u32::MAX);
        low..=high
    }
}

/// How long each server took to answer differently after a change (`None`: it did not within
/// the query's `watch_timeout_ms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// The query (1-based) whose changes were applied.
    pub query: usize,
    /// What changed.
    pub what: String,
    /// CoreDNS's and ferrodns's latencies.
    pub latency: [Option<Duration>; 2],
}

impl Watch {
    /// `watch query 3 (Service watch/web created): coredns 10.5 ms, ferrodns 9.8 ms`.
    pub fn line(&self) -> String {
        let show = |l: Option<Duration>| match l {
            Some(d) => format!("{:.1} ms", d.as_secs_f64() * 1000.0),
            None => "no change".to_string(),
        };
        format!(
            "watch query {} ({}): {} {}, {} {}",
            self.query,
            self.what,
            crate::compare::REF,
            show(self.latency[0]),
            crate::compare::SUT,
            show(self.latency[1])
        )
    }
}

/// Poll until `changed(side)` holds for each side (0 and 1), every 2 ms, for at most
/// `limit`; how long each took from `from`.
pub fn wait_changes(
    from: Instant,
    limit: Duration,
    mut changed: impl FnMut(usize) -> bool,
) -> [Option<Duration>; 2] {
    let mut out = [None, None];
    while out.iter().any(Option::is_none) && from.elapsed() < limit {
        for (side, slot) in out.iter_mut().enumerate() {
            if slot.is_none() && changed(side) {
                *slot = Some(from.elapsed());
            }
        }
        if out.iter().any(Option::is_none) {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_become_objects_with_an_action() {
        let t: toml::Table = toml::from_str(
            r#"
action = "delete"
apiVersion = "v1"
kind = "Service"
metadata = { name = "web", namespace = "watch" }
spec = { ports = [{ port = 80 }] }
"#,
        )
        .unwrap();
        let c = Change::from_table(&t).unwrap();
        assert_eq!(c.action, Action::Delete);
        assert!(c.object.get("action").is_none());
        assert_eq!(c.object["spec"]["ports"][0]["port"], 80);
        assert_eq!(c.describe(), "Service watch/web deleted");
        let bad: toml::Table = toml::from_str("action = \"replace\"\nkind = \"Pod\"").unwrap();
        assert!(Change::from_table(&bad).is_err());
    }

    #[test]
    fn latencies_per_side() {
        let from = Instant::now();
        let mut calls = 0;
        let l = wait_changes(from, Duration::from_millis(100), |side| {
            calls += 1;
            side == 0
        });
        assert!(l[0].is_some() && l[1].is_none());
        assert!(calls > 2);
    }
}

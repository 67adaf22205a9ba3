//! The Datadog exporter: root spans sent to the agent's trace API (`POST /v0.4/traces`, the
//! payload encoded by `rmp-serde` from the structs below) every two seconds, as dd-trace-go's
//! tracer flushes, over the plugin's hyper client. A payload the agent does not take is
//! dropped with a warning, as dd-trace-go does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::http::{Client, Runtime, parse_url};
use ferrodns_go::fmt::error_chain;

/// How often spans are flushed to the agent.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// A flush is forced when this many traces wait.
pub const MAX_PENDING: usize = 1000;

/// One span in the agent's v0.4 model (field names and types as dd-trace-go sends them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DdSpan {
    /// The operation name (`servedns`).
    pub name: String,
    /// The service name.
    pub service: String,
    /// The resource (the operation name again, as CoreDNS sets none).
    pub resource: String,
    /// The span type (empty).
    #[serde(rename = "type")]
    pub span_type: String,
    /// The trace ID's low 64 bits.
    pub trace_id: u64,
    /// The span's ID.
    pub span_id: u64,
    /// The parent's ID (0 for a root).
    pub parent_id: u64,
    /// Start, in nanoseconds since the Unix epoch.
    pub start: i64,
    /// Duration in nanoseconds.
    pub duration: i64,
    /// 1 for an error, else 0.
    pub error: i32,
    /// String tags.
    pub meta: BTreeMap<String, String>,
    /// Numeric tags.
    pub metrics: BTreeMap<String, f64>,
}

/// The v0.4 payload: an array of traces, each an array of spans (one here).
pub fn encode(spans: &[DdSpan]) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    let traces: Vec<[&DdSpan; 1]> = spans.iter().map(|s| [s]).collect();
    rmp_serde::to_vec_named(&traces)
}

/// Sends root spans to a Datadog agent.
pub struct Exporter {
    addr: String,
    client: Client,
    runtime: Arc<Runtime>,
    pending: Mutex<Vec<DdSpan>>,
    full: Notify,
}

impl Exporter {
    /// An exporter for the agent at `host:port`.
    pub fn new(addr: &str) -> Self {
        let runtime = Arc::new(Runtime::default());
        Exporter {
            addr: addr.to_string(),
            client: Client::new(runtime.clone()),
            runtime,
            pending: Mutex::new(Vec::new()),
            full: Notify::new(),
        }
    }

    /// Queue one span (the root of its trace).
    pub fn push(&self, span: DdSpan) {
        let Ok(mut p) = self.pending.lock() else {
            return;
        };
        p.push(span);
        let full = p.len() >= MAX_PENDING;
        drop(p);
        if full {
            self.full.notify_one();
        }
    }

    /// Flush every [`FLUSH_INTERVAL`] until `stop` changes, then once more.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        self.runtime.start();
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = self.full.notified() => {}
                _ = tick.tick() => {}
            }
            self.flush().await;
        }
        self.flush().await;
    }

    /// Send what is queued now.
    pub async fn flush(&self) {
        let spans = match self.pending.lock() {
            Ok(mut p) if !p.is_empty() => std::mem::take(&mut *p),
            _ => return,
        };
        let n = spans.len();
        let url = format!("http://{}/v0.4/traces", self.addr);
        let body = match encode(&spans) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::warn!(target: "trace", "lost {n} traces: {e}");
                return;
            }
        };
        let result = match parse_url(&url) {
            Ok(u) => self
                .client
                .post(
                    &u,
                    "application/msgpack",
                    &[
                        ("Datadog-Meta-Lang", "rust".into()),
                        ("Datadog-Client-Computed-Top-Level", "t".into()),
                        (
                            "Datadog-Meta-Tracer-Version",
                            env!("CARGO_PKG_VERSION").into(),
                        ),
                        ("X-Datadog-Trace-Count", n.to_string()),
                    ],
                    body,
                )
                .await
                .map_err(|e| error_chain(&e)),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(status) if (200..=299).contains(&status) => {}
            Ok(status) => {
                tracing::warn!(target: "trace", "lost {n} traces: {url}: agent answered {status}")
            }
            Err(e) => tracing::warn!(target: "trace", "lost {n} traces: Post {url:?}: {e}"),
        }
    }
}

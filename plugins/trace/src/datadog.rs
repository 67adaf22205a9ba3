//! The Datadog exporter: root spans sent to the agent's trace API (`POST /v0.4/traces`,
//! msgpack) every two seconds, as dd-trace-go's tracer flushes. A payload the
//! agent does not take is dropped with a warning, as dd-trace-go does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::http::{self, Url};
use crate::span::FinishedSpan;

/// How often spans are flushed to the agent.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// A flush is forced when this many traces wait.
pub const MAX_PENDING: usize = 1000;

/// A span with Datadog's fields on top of the common ones.
#[derive(Debug, Clone, PartialEq)]
pub struct DdSpan {
    /// The common part (name, IDs, times, string tags go to `meta`).
    pub span: FinishedSpan,
    /// The service name.
    pub service: String,
    /// Numeric tags (`metrics`).
    pub metrics: Vec<(String, f64)>,
    /// Whether the span is an error.
    pub error: bool,
}

/// Sends root spans to a Datadog agent.
pub struct Exporter {
    addr: String,
    pending: Mutex<Vec<DdSpan>>,
    full: Notify,
}

impl Exporter {
    /// An exporter for the agent at `host:port`.
    pub fn new(addr: &str) -> Self {
        Exporter {
            addr: addr.to_string(),
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
        let body = encode(&spans);
        let url = format!("http://{}/v0.4/traces", self.addr);
        let result = match Url::parse(&url) {
            Ok(u) => http::post(
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
                &body,
            )
            .await
            .map_err(|e| e.to_string()),
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

/// The v0.4 payload: an array of traces, each an array of spans (one here).
pub fn encode(spans: &[DdSpan]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 * spans.len());
    array_len(&mut out, spans.len());
    for s in spans {
        array_len(&mut out, 1);
        map_len(&mut out, 12);
        string(&mut out, "name");
        string(&mut out, &s.span.name);
        string(&mut out, "service");
        string(&mut out, &s.service);
        string(&mut out, "resource");
        string(&mut out, &s.span.name);
        string(&mut out, "type");
        string(&mut out, "");
        string(&mut out, "trace_id");
        uint(&mut out, s.span.trace_id);
        string(&mut out, "span_id");
        uint(&mut out, s.span.id);
        string(&mut out, "parent_id");
        uint(&mut out, s.span.parent_id.unwrap_or(0));
        string(&mut out, "start");
        int(&mut out, i64::try_from(s.span.start_ns).unwrap_or(i64::MAX));
        string(&mut out, "duration");
        int(
            &mut out,
            i64::try_from(s.span.duration_ns).unwrap_or(i64::MAX),
        );
        string(&mut out, "error");
        out.push(0xd2);
        out.extend_from_slice(&i32::from(s.error).to_be_bytes());
        string(&mut out, "meta");
        map_len(&mut out, s.span.tags.len());
        for (k, v) in &s.span.tags {
            string(&mut out, k);
            string(&mut out, v);
        }
        string(&mut out, "metrics");
        map_len(&mut out, s.metrics.len());
        for (k, v) in &s.metrics {
            string(&mut out, k);
            out.push(0xcb);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    out
}

fn array_len(out: &mut Vec<u8>, n: usize) {
    match u32::try_from(n) {
        Ok(n) if n < 16 => out.push(0x90 | n as u8),
        Ok(n) if n <= u32::from(u16::MAX) => {
            out.push(0xdc);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(0xdd);
            out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
        }
    }
}

fn map_len(out: &mut Vec<u8>, n: usize) {
    match u32::try_from(n) {
        Ok(n) if n < 16 => out.push(0x80 | n as u8),
        Ok(n) if n <= u32::from(u16::MAX) => {
            out.push(0xde);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(0xdf);
            out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
        }
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= usize::from(u8::MAX) {
        out.push(0xd9);
        out.push(n as u8);
    } else if n <= usize::from(u16::MAX) {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn uint(out: &mut Vec<u8>, v: u64) {
    out.push(0xcf);
    out.extend_from_slice(&v.to_be_bytes());
}

fn int(out: &mut Vec<u8>, v: i64) {
    out.push(0xd3);
    out.extend_from_slice(&v.to_be_bytes());
}

//! Spans as the plugin records them: one root span per traced query and, for Zipkin, a child per
//! plugin of the chain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ferrodns_plugin::TraceSpan;

/// A finished span, ready for an exporter.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedSpan {
    /// The trace ID (the low 64 bits for Datadog's 128-bit IDs).
    pub trace_id: u64,
    /// The span's ID.
    pub id: u64,
    /// The parent span's ID (`None` for the root).
    pub parent_id: Option<u64>,
    /// `servedns` for the root, else the plugin's name.
    pub name: String,
    /// Whether this is the server-side root span (Zipkin kind `SERVER`).
    pub server: bool,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_ns: u128,
    /// Duration in nanoseconds.
    pub duration_ns: u128,
    /// Tags in the order they were set.
    pub tags: Vec<(String, String)>,
    /// Zipkin annotations: (nanoseconds since the epoch, value).
    pub annotations: Vec<(u128, String)>,
}

/// Where finished spans go.
pub trait Sink: Send + Sync {
    /// Take one finished span (must not block).
    fn record(&self, span: FinishedSpan);
}

/// A non-zero random 64-bit ID.
pub fn new_id() -> u64 {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

/// Nanoseconds since the epoch now.
pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// A span being timed.
pub struct OpenSpan {
    trace_id: u64,
    id: u64,
    parent_id: Option<u64>,
    name: &'static str,
    server: bool,
    start_ns: u128,
    start: Instant,
    finished: AtomicBool,
    sink: Arc<dyn Sink>,
}

impl OpenSpan {
    /// A root span of a new trace; its ID is the trace ID, as zipkin-go and dd-trace-go make
    /// them.
    pub fn root(trace_id: u64, name: &'static str, sink: Arc<dyn Sink>) -> Self {
        OpenSpan {
            trace_id,
            id: trace_id,
            parent_id: None,
            name,
            server: true,
            start_ns: now_ns(),
            start: Instant::now(),
            finished: AtomicBool::new(false),
            sink,
        }
    }

    /// The trace ID.
    pub fn trace_id(&self) -> u64 {
        self.trace_id
    }

    /// Finish with tags and annotations (only the first finish records the span).
    pub fn finish_with(&self, tags: Vec<(String, String)>, annotations: Vec<(u128, String)>) {
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        self.sink.record(self.ended(tags, annotations));
    }

    /// The span as it would be recorded if it ended now, without recording it.
    pub fn ended(
        &self,
        tags: Vec<(String, String)>,
        annotations: Vec<(u128, String)>,
    ) -> FinishedSpan {
        FinishedSpan {
            trace_id: self.trace_id,
            id: self.id,
            parent_id: self.parent_id,
            name: self.name.to_string(),
            server: self.server,
            start_ns: self.start_ns,
            duration_ns: self.start.elapsed().as_nanos(),
            tags,
            annotations,
        }
    }
}

impl TraceSpan for OpenSpan {
    fn child(&self, name: &'static str) -> Arc<dyn TraceSpan> {
        Arc::new(OpenSpan {
            trace_id: self.trace_id,
            id: new_id(),
            parent_id: Some(self.id),
            name,
            server: false,
            start_ns: now_ns(),
            start: Instant::now(),
            finished: AtomicBool::new(false),
            sink: self.sink.clone(),
        })
    }

    fn finish(&self) {
        self.finish_with(Vec::new(), Vec::new());
    }
}

//! # trace
//!
//! Traces queries as CoreDNS's *trace* plugin does: one query in every `every` gets a root span
//! `servedns` tagged with the query's name, type, transport, client address and rcode, and (for
//! Zipkin) a child span per plugin the query passes through, opened by the chain itself
//! ([`ferrodns_plugin::Next::serve`]) while the request carries the root span. Spans go to a
//! Zipkin collector (made with the OpenTelemetry SDK, batched by its `BatchSpanProcessor`,
//! sent as v2 JSON by `opentelemetry-zipkin`) or to a Datadog agent (`/v0.4/traces`, msgpack by
//! `rmp-serde`), both over hyper.
//!
//! Queries that are not sampled pay one atomic increment; blocks without `trace` pay nothing.

mod datadog;
mod http;
mod setup;
mod span;
mod zipkin;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ferrodns_plugin::{
    Descriptor, Lifecycle, Next, Plugin, PluginError, Reply, Request, TraceSpan, async_trait,
};
use tokio::sync::watch;

pub use datadog::{DdSpan, encode as datadog_encode};
pub use setup::{Config, EndpointType, parse, parse_bool, parse_float};
pub use zipkin::{Endpoint, collector_view};

/// The directive name.
pub const NAME: &str = "trace";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// The root span's name.
pub const ROOT_SPAN: &str = "servedns";

/// The metadata key the trace ID is published under.
pub const META_TRACE_ID: &str = "trace/traceid";

/// The tag names: Zipkin's use `/`, Datadog's `@` (as upstream's).
struct Tags {
    name: &'static str,
    ty: &'static str,
    rcode: &'static str,
    proto: &'static str,
    remote: &'static str,
}

const ZIPKIN_TAGS: Tags = Tags {
    name: "coredns.io/name",
    ty: "coredns.io/type",
    rcode: "coredns.io/rcode",
    proto: "coredns.io/proto",
    remote: "coredns.io/remote",
};

const DATADOG_TAGS: Tags = Tags {
    name: "coredns.io@name",
    ty: "coredns.io@type",
    rcode: "coredns.io@rcode",
    proto: "coredns.io@proto",
    remote: "coredns.io@remote",
};

enum Exporter {
    Zipkin(zipkin::Reporter),
    Datadog(Arc<datadog::Exporter>),
    /// The Zipkin exporter could not be built (logged at setup): nothing is traced.
    Off,
}

/// The request handler.
pub struct Trace {
    cfg: Config,
    count: AtomicU64,
    exporter: Exporter,
    stop: Mutex<Option<watch::Sender<bool>>>,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Trace {
    /// A handler for a parsed directive. Spans are queued from now on and sent once the
    /// lifecycle's startup hook ran.
    pub fn new(cfg: Config) -> Self {
        let exporter = match cfg.endpoint_type {
            EndpointType::Zipkin => {
                let local = match Endpoint::new(&cfg.service_name, &cfg.service_endpoint) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(target: "trace", "build Zipkin endpoint found err: {e}");
                        None
                    }
                };
                let or = |v: i64, d: i64| if v == 0 { d } else { v };
                let rc = zipkin::ReporterConfig {
                    url: cfg.endpoint.clone(),
                    batch_size: or(cfg.zipkin_max_batch_size, zipkin::DEFAULT_BATCH_SIZE),
                    max_backlog: or(cfg.zipkin_max_backlog_size, zipkin::DEFAULT_MAX_BACKLOG),
                    batch_interval: if cfg.zipkin_max_batch_interval.is_zero() {
                        zipkin::DEFAULT_BATCH_INTERVAL
                    } else {
                        cfg.zipkin_max_batch_interval
                    },
                };
                match zipkin::Reporter::new(rc, local) {
                    Ok(r) => Exporter::Zipkin(r),
                    Err(e) => {
                        tracing::warn!(target: "trace", "build Zipkin exporter found err: {e}");
                        Exporter::Off
                    }
                }
            }
            EndpointType::Datadog => {
                Exporter::Datadog(Arc::new(datadog::Exporter::new(&cfg.endpoint)))
            }
        };
        Trace {
            cfg,
            count: AtomicU64::new(0),
            exporter,
            stop: Mutex::new(None),
        }
    }

    /// The parsed configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The hooks that start the exporter's sender and flush it at shutdown.
    pub fn lifecycle(self: &Arc<Self>) -> Arc<dyn Lifecycle> {
        Arc::new(Hooks(self.clone()))
    }

    /// Start sending spans (done by the startup hook; idempotent).
    pub fn start(&self) {
        let Ok(mut stop) = self.stop.lock() else {
            return;
        };
        if stop.is_some() {
            return;
        }
        let (tx, rx) = watch::channel(false);
        match &self.exporter {
            Exporter::Zipkin(r) => r.start(),
            Exporter::Datadog(d) => {
                tokio::spawn(d.clone().run(rx));
            }
            Exporter::Off => {}
        }
        *stop = Some(tx);
    }

    /// Stop the sender after it sent what is queued.
    pub fn stop(&self) {
        if let Exporter::Zipkin(r) = &self.exporter {
            r.stop();
        }
        if let Ok(mut stop) = self.stop.lock()
            && let Some(tx) = stop.take()
        {
            let _ = tx.send(true);
        }
    }

    /// Stop as [`Trace::stop`] does; for Zipkin, return once what waited was sent (or could
    /// not be).
    pub async fn shutdown(&self) {
        if let Exporter::Zipkin(r) = &self.exporter {
            r.shutdown().await;
        }
        if let Ok(mut stop) = self.stop.lock()
            && let Some(tx) = stop.take()
        {
            let _ = tx.send(true);
        }
    }

    /// Whether this query is one of the `every` sampled.
    fn sampled(&self) -> bool {
        self.cfg.every > 0
            && self
                .count
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1)
                .is_multiple_of(self.cfg.every)
    }

    fn tags(&self, tags: &Tags, req: &Request, rcode: u16) -> Vec<(String, String)> {
        vec![
            (tags.name.into(), req.name_lower()),
            (
                tags.ty.into(),
                ferrodns_pkg::text::type_name(u16::from(req.qtype())),
            ),
            (tags.proto.into(), req.protocol.as_str().into()),
            (
                tags.remote.into(),
                ferrodns_pkg::text::ip_text(req.src.ip()),
            ),
            (tags.rcode.into(), ferrodns_pkg::vars::rcode_label(rcode)),
        ]
    }

    async fn serve_zipkin(
        &self,
        reporter: &zipkin::Reporter,
        req: &mut Request,
        next: Next,
    ) -> Result<Reply, PluginError> {
        let root = reporter.root(ROOT_SPAN);
        req.set_metadata(META_TRACE_ID, format!("{:016x}", root.trace_id()));
        let prev = req.set_trace_span(Some(root.clone() as Arc<dyn TraceSpan>));
        let out = next.serve(req).await;
        req.set_trace_span(prev);
        let tags = self.tags(&ZIPKIN_TAGS, req, outcome_rcode(&out));
        root.finish_with(tags, out.as_ref().err().map(|e| e.message.as_str()));
        out
    }

    async fn serve_datadog(
        &self,
        exporter: &datadog::Exporter,
        req: &mut Request,
        next: Next,
    ) -> Result<Reply, PluginError> {
        // dd-trace-go's 128-bit trace IDs: the start second in the high half.
        let start_ns = span::now_ns();
        let started = std::time::Instant::now();
        let high = (start_ns / 1_000_000_000) as u64 & 0xffff_ffff;
        let high = high << 32;
        // The root span's ID is the trace ID's low half, as dd-trace-go makes them.
        let id = span::new_id();
        req.set_metadata(META_TRACE_ID, format!("{high:016x}{id:016x}"));
        // Upstream's Datadog spans are not OpenTracing spans, so the chain opens no children.
        let out = next.serve(req).await;
        let mut tags = vec![
            ("dns".to_string(), "true".to_string()),
            ("_dd.p.tid".to_string(), format!("{high:016x}")),
            ("_dd.p.dm".to_string(), "-1".to_string()),
        ];
        tags.extend(self.tags(&DATADOG_TAGS, req, outcome_rcode(&out)));
        let mut error = 0;
        if let Err(e) = &out {
            error = 1;
            tags.push(("error.message".into(), e.message.clone()));
            tags.push(("error.type".into(), "dns_error".into()));
        }
        // As dd-trace-go v2 sends a root span. `datadog_analytics_rate` adds nothing here: that
        // library applies its global analytics rate only in its integrations, not to spans
        // started directly as CoreDNS does.
        let metrics = vec![
            ("_dd.top_level".to_string(), 1.0),
            ("_sampling_priority_v1".to_string(), 1.0),
            ("process_id".to_string(), f64::from(std::process::id())),
        ];
        exporter.push(DdSpan {
            name: ROOT_SPAN.into(),
            service: self.cfg.service_name.clone(),
            resource: ROOT_SPAN.into(),
            span_type: String::new(),
            trace_id: id,
            span_id: id,
            parent_id: 0,
            start: i64::try_from(start_ns).unwrap_or(i64::MAX),
            duration: i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX),
            error,
            meta: tags.into_iter().collect(),
            metrics: metrics.into_iter().collect(),
        });
        out
    }
}

/// The rcode a query ended with, as upstream's trace tags it: the written reply's, else the
/// chain's status.
fn outcome_rcode(out: &Result<Reply, PluginError>) -> u16 {
    match out {
        Ok(r) => r.rcode().map(u16::from).unwrap_or(0),
        Err(e) => e
            .reply
            .as_ref()
            .map(|m| u16::from(m.metadata.response_code))
            .unwrap_or(u16::from(e.rcode)),
    }
}

#[async_trait]
impl Plugin for Trace {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        // A query already traced (a lookup through the server) is not traced again.
        if !self.sampled() || req.trace_span().is_some() {
            return next.serve(req).await;
        }
        match &self.exporter {
            Exporter::Zipkin(r) => self.serve_zipkin(r, req, next).await,
            Exporter::Datadog(d) => self.serve_datadog(d, req, next).await,
            Exporter::Off => next.serve(req).await,
        }
    }

    fn fast_transparent(&self) -> bool {
        // `every 0` traces nothing: the plugin then neither answers nor observes queries.
        self.cfg.every == 0
    }
}

struct Hooks(Arc<Trace>);

#[async_trait]
impl Lifecycle for Hooks {
    async fn on_startup(&self) -> Result<(), ferrodns_plugin::SetupError> {
        self.0.start();
        Ok(())
    }

    async fn on_shutdown(&self) {
        self.0.stop();
    }
}

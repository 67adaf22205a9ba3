//! The Zipkin side: spans made with the OpenTelemetry SDK (one tracer provider per `trace`
//! directive), batched by its `BatchSpanProcessor` as CoreDNS's reporter batches them (batch
//! size, backlog, interval) and sent by `opentelemetry-zipkin` as Zipkin v2 JSON over the
//! plugin's hyper client.
//!
//! Two things keep the spans as CoreDNS's (zipkin-go's) look: an ID generator that makes a
//! root span's ID its (64-bit) trace ID, and a last pass over the exporter's JSON before it is
//! POSTed that puts the collector's view on it: the service name in the local endpoint, no
//! all-zero parent ID on roots, 64-bit trace IDs in 16 hex digits, and without the tags the
//! OpenTelemetry-to-Zipkin mapping adds of its own (`otel.*`).
//!
//! `opentelemetry-zipkin` is marked deprecated upstream in favour of OTLP; CoreDNS's `trace`
//! speaks Zipkin's v2 JSON to a `/api/v2/spans` URL, which is what this crate sends.
#![allow(deprecated)]

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceId,
    Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, Sampler, SdkTracer, SdkTracerProvider,
    Span,
};
use serde_json::{Map, Value};

use crate::http::{Client, PostError, Runtime};
use crate::span::new_id;
use ferrodns_go::fmt::error_chain;

/// The reporter's defaults, as zipkin-go's.
pub const DEFAULT_BATCH_SIZE: i64 = 100;
/// Spans kept at most while they wait to be sent.
pub const DEFAULT_MAX_BACKLOG: i64 = 1000;
/// How long spans wait at most before they are sent.
pub const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The local endpoint every span carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// The service name.
    pub service_name: String,
    /// The IPv4 address, if any.
    pub ipv4: Option<String>,
    /// The IPv6 address, if any.
    pub ipv6: Option<String>,
    /// The port (0: none).
    pub port: u16,
}

impl Endpoint {
    /// zipkin-go's `NewEndpoint(service, hostPort)`: `hostPort` empty or `:0` gives the service
    /// name alone; a host that is not an address is an error (we do not resolve names here).
    pub fn new(service_name: &str, host_port: &str) -> Result<Option<Endpoint>, String> {
        let mut e = Endpoint {
            service_name: service_name.to_string(),
            ..Endpoint::default()
        };
        if host_port.is_empty() || host_port == ":0" {
            if service_name.is_empty() {
                return Ok(None);
            }
            return Ok(Some(e));
        }
        let hp = if host_port.contains(':') {
            host_port.to_string()
        } else {
            format!("{host_port}:0")
        };
        let (host, port) = ferrodns_go::net::split_host_port(&hp).map_err(|e| e.to_string())?;
        e.port = port.parse().map_err(|_| {
            format!(
                "strconv.ParseUint: parsing {}: invalid syntax",
                ferrodns_go::strconv::quote(port)
            )
        })?;
        match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => e.ipv4 = Some(a.to_string()),
            Ok(IpAddr::V6(a)) => e.ipv6 = Some(a.to_string()),
            Err(_) => {
                return Err(format!(
                    "host lookup failure: lookup {host}: not an address"
                ));
            }
        }
        Ok(Some(e))
    }

    /// The address part, as the exporter takes it.
    fn socket_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self
            .ipv4
            .as_deref()
            .or(self.ipv6.as_deref())?
            .parse()
            .ok()?;
        Some(SocketAddr::new(ip, self.port))
    }
}

thread_local! {
    /// The span ID the generator made last on this thread.
    static LAST_SPAN_ID: Cell<u64> = const { Cell::new(0) };
}

/// Random 64-bit IDs, where a root span's trace ID is its own span ID as zipkin-go makes them.
/// The SDK asks for the span ID first and then, for a root only, for the trace ID, on the same
/// thread.
#[derive(Debug, Default)]
struct RootIsTrace;

impl IdGenerator for RootIsTrace {
    fn new_trace_id(&self) -> TraceId {
        let id = LAST_SPAN_ID.with(|c| c.get());
        TraceId::from(u128::from(if id == 0 { new_id() } else { id }))
    }

    fn new_span_id(&self) -> SpanId {
        let id = new_id();
        LAST_SPAN_ID.with(|c| c.set(id));
        SpanId::from(id)
    }
}

/// The reporter's settings.
#[derive(Debug, Clone)]
pub struct ReporterConfig {
    /// The collector URL.
    pub url: String,
    /// Send when this many spans wait (at or below 0: at every span).
    pub batch_size: i64,
    /// Keep at most this many waiting spans (at or below 0: keep none).
    pub max_backlog: i64,
    /// Send at least this often.
    pub batch_interval: Duration,
}

/// The HTTP client the exporter POSTs with: the plugin's hyper client, with zipkin-go's
/// `b3: 0` header (the reporter's own requests are not traced), the collector's view put on
/// the JSON, and zipkin-go's warnings.
#[derive(Debug)]
struct Uploader {
    client: Client,
    url: String,
    uri: Result<Uri, String>,
    local: Option<Endpoint>,
}

#[ferrodns_plugin::async_trait]
impl HttpClient for Uploader {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (mut parts, body) = request.into_parts();
        match &self.uri {
            Ok(uri) => parts.uri = uri.clone(),
            Err(e) => {
                tracing::warn!(target: "trace", "failed when creating the request: parse {:?}: {e}", self.url);
                return Err(e.clone().into());
            }
        }
        parts
            .headers
            .insert("b3", http::HeaderValue::from_static("0"));
        parts.headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static("ferrodns"),
        );
        let body = collector_view(&body, self.local.as_ref());
        match self.client.send(Request::from_parts(parts, body)).await {
            Ok(reply) => {
                let status = reply.status().as_u16();
                if !(200..=299).contains(&status) {
                    tracing::warn!(target: "trace", "failed the request with status code {status}");
                }
                Ok(reply)
            }
            Err(PostError::Stopped) => Err(Box::new(PostError::Stopped)),
            Err(e) => {
                tracing::warn!(target: "trace", "failed to send the request: Post {:?}: {}", self.url, error_chain(&e));
                Err(Box::new(e))
            }
        }
    }
}

/// The exporter's JSON as zipkin-go would have sent it (see the module docs); a body that is
/// not a JSON array of spans is sent as it is.
pub fn collector_view(body: &[u8], local: Option<&Endpoint>) -> Bytes {
    let Ok(Value::Array(mut spans)) = serde_json::from_slice::<Value>(body) else {
        return Bytes::copy_from_slice(body);
    };
    for span in &mut spans {
        let Value::Object(s) = span else { continue };
        if let Some(Value::String(t)) = s.get_mut("traceId")
            && t.len() == 32
            && t.starts_with("0000000000000000")
        {
            t.drain(..16);
        }
        if s.get("parentId")
            .and_then(Value::as_str)
            .is_some_and(|p| p.bytes().all(|b| b == b'0'))
        {
            s.remove("parentId");
        }
        for flag in ["debug", "shared"] {
            if s.get(flag) == Some(&Value::Bool(false)) {
                s.remove(flag);
            }
        }
        if s.get("duration").and_then(Value::as_u64) == Some(0) {
            s.remove("duration");
        }
        if s.get("annotations")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            s.remove("annotations");
        }
        let mut endpoint = match s.remove("localEndpoint") {
            Some(Value::Object(e)) => e,
            _ => Map::new(),
        };
        if endpoint.get("port").and_then(Value::as_u64) == Some(0) {
            endpoint.remove("port");
        }
        if let Some(e) = local
            && !e.service_name.is_empty()
        {
            endpoint.insert("serviceName".into(), Value::String(e.service_name.clone()));
        }
        if local.is_some() {
            s.insert("localEndpoint".into(), Value::Object(endpoint));
        }
        if let Some(Value::Object(tags)) = s.get_mut("tags") {
            tags.retain(|k, _| !k.starts_with("otel."));
            if tags.is_empty() {
                s.remove("tags");
            }
        }
    }
    serde_json::to_vec(&spans)
        .map(Bytes::from)
        .unwrap_or_else(|_| Bytes::copy_from_slice(body))
}

/// Why the reporter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReporterError {
    /// The exporter could not be built.
    #[error(transparent)]
    Exporter(#[from] opentelemetry_zipkin::ExporterBuildError),
}

/// Where the exporter thinks it sends; the uploader sends to the configured URL, or logs why
/// it cannot for each batch as zipkin-go does.
const STAND_IN_URL: &str = "http://localhost:9411/api/v2/spans";

/// One `trace` directive's tracer provider and the runtime its requests wait for.
pub struct Reporter {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    runtime: Arc<Runtime>,
}

impl Reporter {
    /// A reporter; nothing is sent before [`Reporter::start`].
    pub fn new(cfg: ReporterConfig, local: Option<Endpoint>) -> Result<Self, ReporterError> {
        let runtime = Arc::new(Runtime::default());
        let uri = crate::http::parse_url(&cfg.url).map_err(|e| e.to_string());
        let endpoint = if uri.is_ok() {
            cfg.url.as_str()
        } else {
            STAND_IN_URL
        };
        let uploader = Uploader {
            client: Client::new(runtime.clone()),
            url: cfg.url.clone(),
            uri,
            local: local.clone(),
        };
        let mut builder = opentelemetry_zipkin::ZipkinExporter::builder()
            .with_collector_endpoint(endpoint)
            .with_http_client(uploader);
        if let Some(addr) = local.as_ref().and_then(Endpoint::socket_addr) {
            builder = builder.with_service_address(addr);
        }
        let exporter = builder.build()?;
        let backlog = usize::try_from(cfg.max_backlog).unwrap_or(0);
        let batch = usize::try_from(cfg.batch_size).unwrap_or(0).max(1);
        let batching = BatchConfigBuilder::default()
            .with_max_queue_size(backlog)
            .with_max_export_batch_size(batch)
            .with_scheduled_delay(cfg.batch_interval)
            .build();
        let processor = BatchSpanProcessor::new(exporter, batching);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::AlwaysOn)
            .with_id_generator(RootIsTrace)
            .build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "coredns");
        Ok(Reporter {
            provider,
            tracer,
            runtime,
        })
    }

    /// Send spans from now on, on the current runtime.
    pub fn start(&self) {
        self.runtime.start();
    }

    /// Send what waits and stop (on a thread of its own: the SDK's shutdown blocks).
    pub fn stop(&self) {
        self.runtime.stop();
        let provider = self.provider.clone();
        let _ = std::thread::Builder::new()
            .name("trace-zipkin-stop".into())
            .spawn(move || {
                let _ = provider.shutdown();
            });
    }

    /// As [`Reporter::stop`], returning once what waited was sent (or could not be).
    pub async fn shutdown(&self) {
        self.runtime.stop();
        let provider = self.provider.clone();
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }

    /// A new root span, `servedns` of kind SERVER.
    pub fn root(&self, name: &'static str) -> Arc<ZSpan> {
        let builder = SpanBuilder::from_name(name).with_kind(SpanKind::Server);
        let span = self.tracer.build_with_context(builder, &Context::new());
        Arc::new(ZSpan::new(self.tracer.clone(), span))
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        // Requests still waiting for a start that never comes give up.
        self.runtime.stop();
    }
}

/// A span being timed; the chain opens children with [`ferrodns_plugin::TraceSpan::child`].
pub struct ZSpan {
    tracer: SdkTracer,
    context: SpanContext,
    span: Mutex<Option<Span>>,
}

impl ZSpan {
    fn new(tracer: SdkTracer, span: Span) -> Self {
        ZSpan {
            tracer,
            context: span.span_context().clone(),
            span: Mutex::new(Some(span)),
        }
    }

    /// The trace ID's low 64 bits (all of it: the IDs are 64-bit).
    pub fn trace_id(&self) -> u64 {
        u128::from_be_bytes(self.context.trace_id().to_bytes()) as u64
    }

    /// Finish with tags and, for an error, the error's message (tagged `error`, with
    /// `event:error` and `error.object:` annotations as CoreDNS logs them).
    pub fn finish_with(&self, tags: Vec<(String, String)>, error: Option<&str>) {
        let Some(mut span) = self.span.lock().ok().and_then(|mut s| s.take()) else {
            return;
        };
        span.set_attributes(tags.into_iter().map(|(k, v)| KeyValue::new(k, v)));
        if let Some(msg) = error {
            // The exporter writes an error status as the tag `error` with its description.
            span.set_status(Status::error("true"));
            span.add_event("event:error", Vec::new());
            span.add_event(format!("error.object:{msg}"), Vec::new());
        }
        span.end();
    }
}

impl ferrodns_plugin::TraceSpan for ZSpan {
    fn child(&self, name: &'static str) -> Arc<dyn ferrodns_plugin::TraceSpan> {
        let parent = Context::new().with_remote_span_context(self.context.clone());
        let span = self
            .tracer
            .build_with_context(SpanBuilder::from_name(name), &parent);
        Arc::new(ZSpan::new(self.tracer.clone(), span))
    }

    fn finish(&self) {
        self.finish_with(Vec::new(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collector_view_of_the_exporter_json() {
        let body = br#"[{"traceId":"00000000000000001914519191861f38","parentId":"0000000000000000","id":"1914519191861f38","kind":"SERVER","name":"servedns","timestamp":1,"duration":0,"localEndpoint":{"ipv4":"127.0.0.1","port":0},"annotations":[],"tags":{"otel.library.name":"coredns","coredns.io/type":"A"},"debug":false,"shared":false}]"#;
        let local = Endpoint::new("dnsproxy", "127.0.0.1:0").expect("endpoint");
        let out: Value =
            serde_json::from_slice(&collector_view(body, local.as_ref())).expect("json");
        let want: Value = serde_json::from_str(
            r#"[{"traceId":"1914519191861f38","id":"1914519191861f38","kind":"SERVER","name":"servedns","timestamp":1,"localEndpoint":{"serviceName":"dnsproxy","ipv4":"127.0.0.1"},"tags":{"coredns.io/type":"A"}}]"#,
        )
        .expect("json");
        assert_eq!(out, want);
        // Without a local endpoint, none is sent; other bodies pass unchanged.
        let out: Value = serde_json::from_slice(&collector_view(body, None)).expect("json");
        assert!(out[0].get("localEndpoint").is_none());
        assert_eq!(&collector_view(b"{}", None)[..], b"{}");
    }

    #[test]
    fn a_root_span_id_is_its_trace_id() {
        let ids = RootIsTrace;
        let span = ids.new_span_id();
        let trace = ids.new_trace_id();
        assert_eq!(format!("{trace}"), format!("0000000000000000{span}"));
    }
}

//! The Zipkin reporter: spans as Zipkin v2 JSON, batched and POSTed as CoreDNS's reporter
//! (zipkin-go's HTTP reporter) does: a batch is sent when it holds `batch size` spans or when
//! the batch interval has passed; past `max backlog` the oldest spans are dropped; a batch that
//! could not be sent stays for the next attempt.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::{Notify, watch};

use crate::http::{self, Url};
use crate::span::{FinishedSpan, Sink};

/// The reporter's defaults, as zipkin-go's.
pub const DEFAULT_BATCH_SIZE: i64 = 100;
/// Spans kept at most while the collector does not take them.
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
}

/// One span in Zipkin's v2 JSON model.
pub fn span_json(s: &FinishedSpan, local: Option<&Endpoint>) -> Value {
    let mut m = Map::new();
    m.insert("traceId".into(), json!(format!("{:016x}", s.trace_id)));
    m.insert("id".into(), json!(format!("{:016x}", s.id)));
    if let Some(p) = s.parent_id {
        m.insert("parentId".into(), json!(format!("{p:016x}")));
    }
    m.insert("name".into(), json!(s.name.to_lowercase()));
    if s.server {
        m.insert("kind".into(), json!("SERVER"));
    }
    m.insert("timestamp".into(), json!(micros(s.start_ns)));
    // Sub-microsecond durations count as one microsecond; others are rounded.
    let d = if s.duration_ns == 0 {
        0
    } else if s.duration_ns < 1000 {
        1
    } else {
        (s.duration_ns + 500) / 1000
    };
    if d > 0 {
        m.insert("duration".into(), json!(d as u64));
    }
    if let Some(e) = local {
        let mut le = Map::new();
        if !e.service_name.is_empty() {
            le.insert("serviceName".into(), json!(e.service_name));
        }
        if let Some(a) = &e.ipv4 {
            le.insert("ipv4".into(), json!(a));
        }
        if let Some(a) = &e.ipv6 {
            le.insert("ipv6".into(), json!(a));
        }
        if e.port != 0 {
            le.insert("port".into(), json!(e.port));
        }
        m.insert("localEndpoint".into(), Value::Object(le));
    }
    if !s.annotations.is_empty() {
        let a: Vec<Value> = s
            .annotations
            .iter()
            .map(|(t, v)| json!({"timestamp": micros(*t), "value": v}))
            .collect();
        m.insert("annotations".into(), Value::Array(a));
    }
    if !s.tags.is_empty() {
        let t: Map<String, Value> = s.tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        m.insert("tags".into(), Value::Object(t));
    }
    Value::Object(m)
}

fn micros(ns: u128) -> u64 {
    u64::try_from((ns + 500) / 1000).unwrap_or(u64::MAX)
}

/// The reporter's settings.
#[derive(Debug, Clone)]
pub struct ReporterConfig {
    /// The collector URL.
    pub url: String,
    /// Send when the batch holds this many spans (at or below 0: at every span).
    pub batch_size: i64,
    /// Drop the oldest spans past this many (at or below 0: keep none).
    pub max_backlog: i64,
    /// Send at least this often.
    pub batch_interval: Duration,
}

/// Batches spans for a Zipkin collector.
pub struct Reporter {
    cfg: ReporterConfig,
    url: Result<Url, String>,
    local: Option<Endpoint>,
    batch: Mutex<Vec<String>>,
    full: Notify,
}

impl Reporter {
    /// A reporter; nothing is sent before [`Reporter::run`].
    pub fn new(cfg: ReporterConfig, local: Option<Endpoint>) -> Self {
        let url = Url::parse(&cfg.url).map_err(|e| e.to_string());
        Reporter {
            cfg,
            url,
            local,
            batch: Mutex::new(Vec::new()),
            full: Notify::new(),
        }
    }

    /// Send batches until `stop` changes, then send what is left once.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut next_send = tokio::time::Instant::now() + self.cfg.batch_interval;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = self.full.notified() => {}
                _ = tokio::time::sleep_until(next_send) => {}
            }
            next_send = tokio::time::Instant::now() + self.cfg.batch_interval;
            self.send_batch().await;
        }
        self.send_batch().await;
    }

    /// POST what is in the batch now; on success drop what was sent.
    pub async fn send_batch(&self) {
        let (n, body) = {
            let Ok(batch) = self.batch.lock() else { return };
            if batch.is_empty() {
                return;
            }
            let mut body = String::from("[");
            body.push_str(&batch.join(","));
            body.push(']');
            (batch.len(), body)
        };
        let url = match &self.url {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(target: "trace", "failed when creating the request: parse {:?}: {e}", self.cfg.url);
                return;
            }
        };
        match http::post(
            url,
            "application/json",
            &[("b3", "0".into())],
            body.as_bytes(),
        )
        .await
        {
            Ok(status) => {
                if !(200..=299).contains(&status) {
                    tracing::warn!(target: "trace", "failed the request with status code {status}");
                }
                if let Ok(mut batch) = self.batch.lock() {
                    let n = n.min(batch.len());
                    batch.drain(..n);
                }
            }
            Err(e) => {
                tracing::warn!(target: "trace", "failed to send the request: Post {:?}: {e}", self.cfg.url);
            }
        }
    }
}

impl Sink for Reporter {
    fn record(&self, span: FinishedSpan) {
        let text = span_json(&span, self.local.as_ref()).to_string();
        let Ok(mut batch) = self.batch.lock() else {
            return;
        };
        batch.push(text);
        let max = usize::try_from(self.cfg.max_backlog.max(0)).unwrap_or(usize::MAX);
        if batch.len() > max {
            let dispose = batch.len() - max;
            tracing::warn!(target: "trace", "backlog too long, disposing {dispose} spans");
            batch.drain(..dispose);
        }
        let full = i64::try_from(batch.len()).unwrap_or(i64::MAX) >= self.cfg.batch_size;
        drop(batch);
        if full {
            self.full.notify_one();
        }
    }
}

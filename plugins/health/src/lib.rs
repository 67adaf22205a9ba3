//! # health
//!
//! Answers `/health` with `200 OK` on an HTTP listener (default `:8080`) for as long as the
//! process runs, checks every second that it can fetch that page itself (the
//! `coredns_health_*` families), and on process stop can wait a *lameduck* period before the
//! process goes on closing, so that load balancers notice the shutdown while DNS and `/health`
//! are still answered, as CoreDNS's *health* plugin does.
//!
//! The plugin adds no request handler. Blocks naming the same address share one listener
//! (also with `prometheus` and `ready` on that address).

mod setup;
pub use setup::parse;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use ferrodns_go::net::split_host_port;
use ferrodns_go::time;
use ferrodns_plugin::{
    Descriptor, HttpHandler, HttpResponse, Lifecycle, Metrics, SetupError, async_trait,
};

/// The directive name.
pub const NAME: &str = "health";

/// The plugin's descriptor, listed in `plugin.cfg`; its families exist from process start.
pub const DESCRIPTOR: Descriptor =
    Descriptor::new(NAME, setup::setup).with_metrics(register_metrics);

/// CoreDNS's default address.
pub const DEFAULT_ADDR: &str = ":8080";

/// The path served.
pub const PATH: &str = "/health";

/// How often the self-check runs.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long one self-check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// A self-check slower than this is logged.
const SLOW: Duration = Duration::from_secs(1);

const TARGET: &str = "plugin/health";

/// The buckets of `coredns_health_request_duration_seconds` (CoreDNS's "slim" time buckets).
pub const BUCKETS: [f64; 5] = [0.00025, 0.0025, 0.025, 0.25, 2.5];

/// What a block's `health` lines say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `host:port` to serve `/health` on.
    pub addr: String,
    /// How long to keep serving after the process was told to stop (zero: not at all).
    pub lameduck: Duration,
}

/// The self-check's families.
#[derive(Clone, Debug)]
pub struct HealthMetrics {
    /// `coredns_health_request_duration_seconds`.
    pub duration: Histogram,
    /// `coredns_health_request_failures_total`.
    pub failures: Counter,
}

impl HealthMetrics {
    /// The families in `metrics`, registered on first use.
    pub fn new(metrics: &Metrics) -> Self {
        HealthMetrics {
            duration: metrics.register(
                "coredns_health_request_duration_seconds",
                "Histogram of the time (in seconds) each request took.",
                || Histogram::new(BUCKETS),
            ),
            failures: metrics.register(
                "coredns_health_request_failures",
                "The number of times the health check failed.",
                Counter::default,
            ),
        }
    }
}

fn register_metrics(metrics: &Metrics) {
    HealthMetrics::new(metrics);
}

/// Serves `/health`: always healthy.
pub(crate) struct Page;

impl HttpHandler for Page {
    fn handle(&self) -> HttpResponse {
        HttpResponse::text(200, "OK")
    }
}

/// Where the self-check fetches the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The URL as logged: `http://` + the configured address + `/health`.
    pub url: String,
    /// The host to connect to (the local system when the address has none).
    pub host: String,
    /// The port as configured.
    pub port: String,
    /// `host:port` as written, for error texts.
    pub addr: String,
}

impl Probe {
    /// The self-check of a configured address.
    pub fn new(addr: &str) -> Probe {
        let (host, port) = split_host_port(addr).unwrap_or(("", ""));
        Probe {
            url: format!("http://{addr}{PATH}"),
            host: host.to_string(),
            port: port.to_string(),
            addr: addr.to_string(),
        }
    }

    /// Fetch the page once; the error is Go's HTTP client's text for the failure.
    pub async fn fetch(&self) -> Result<(), String> {
        let url = &self.url;
        let get = async {
            let port: u16 = self
                .port
                .parse()
                .map_err(|_| format!("dial tcp: lookup tcp/{}: unknown port", self.port))?;
            let host = if self.host.is_empty() {
                "127.0.0.1"
            } else {
                self.host.as_str()
            };
            let mut s = TcpStream::connect((host, port)).await.map_err(|e| {
                format!(
                    "dial tcp {}: connect: {}",
                    self.addr,
                    ferrodns_go::os::io_text(&e)
                )
            })?;
            let host_header = if self.host.is_empty() {
                format!("localhost:{}", self.port)
            } else {
                self.addr.clone()
            };
            let req = format!(
                "GET {PATH} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: Go-http-client/1.1\r\nConnection: close\r\n\r\n"
            );
            let io = |e: std::io::Error| ferrodns_go::os::io_text(&e);
            s.write_all(req.as_bytes()).await.map_err(io)?;
            let mut resp = Vec::new();
            s.read_to_end(&mut resp).await.map_err(io)?;
            if resp.starts_with(b"HTTP/1.") {
                Ok(())
            } else if resp.is_empty() {
                Err("EOF".to_string())
            } else {
                Err("malformed HTTP response".to_string())
            }
        };
        match tokio::time::timeout(CHECK_TIMEOUT, get).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("Get \"{url}\": {e}")),
            Err(_) => Err(format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )),
        }
    }
}

/// Run one self-check: observe its duration, count and log a failure, log a slow success.
pub async fn check_once(probe: &Probe, metrics: &HealthMetrics) {
    let start = Instant::now();
    let result = probe.fetch().await;
    let elapsed = start.elapsed();
    metrics.duration.observe(elapsed.as_secs_f64());
    match result {
        Err(e) => {
            metrics.failures.inc();
            tracing::warn!(target: TARGET, "Local health request to {:?} failed: {e}", probe.url);
        }
        Ok(()) if elapsed > SLOW => {
            tracing::warn!(
                target: TARGET,
                "Local health request to {:?} took more than 1s: {}",
                probe.url,
                time::format_duration(elapsed)
            );
        }
        Ok(()) => {}
    }
}

/// One block's health: the self-check task and the lameduck.
pub(crate) struct Health {
    pub(crate) probe: Probe,
    pub(crate) lameduck: Duration,
    pub(crate) metrics: HealthMetrics,
    pub(crate) checker: Mutex<Option<JoinHandle<()>>>,
}

impl Health {
    fn start_checker(&self) {
        let probe = self.probe.clone();
        let metrics = self.metrics.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECK_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                check_once(&probe, &metrics).await;
            }
        });
        if let Some(old) = self.slot().replace(task) {
            old.abort();
        }
    }

    fn stop_checker(&self) {
        if let Some(t) = self.slot().take() {
            t.abort();
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        match self.checker.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

#[async_trait]
impl Lifecycle for Health {
    async fn on_startup(&self) -> Result<(), SetupError> {
        self.start_checker();
        Ok(())
    }

    async fn on_restart(&self) {
        self.stop_checker();
    }

    async fn on_restart_failed(&self) {
        self.start_checker();
    }

    async fn on_final_shutdown(&self) {
        if !self.lameduck.is_zero() {
            tracing::info!(
                target: TARGET,
                "Going into lameduck mode for {}",
                time::format_duration(self.lameduck)
            );
            tokio::time::sleep(self.lameduck).await;
        }
        self.stop_checker();
    }
}

impl Drop for Health {
    fn drop(&mut self) {
        self.stop_checker();
    }
}

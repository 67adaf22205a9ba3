//! The API client's request stack: CoreDNS's `apiserver_qps`, `apiserver_burst` and
//! `apiserver_max_inflight` limits, and the `coredns_kubernetes_rest_client_*` metrics that
//! client-go reports for CoreDNS.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ferrodns_plugin::Metrics;
use ferrodns_plugin::prometheus_client::metrics::counter::Counter;
use ferrodns_plugin::prometheus_client::metrics::family::Family;
use ferrodns_plugin::prometheus_client::metrics::histogram::Histogram;
use http::{Request, Response};
use tower::{Layer, Service};

/// client-go's defaults when `apiserver_qps` / `apiserver_burst` are not given.
const DEFAULT_QPS: f64 = 5.0;
const DEFAULT_BURST: u32 = 10;

type Labels = Vec<(String, String)>;

/// The three families.
#[derive(Clone)]
pub struct RestMetrics {
    latency: Family<Labels, Histogram>,
    rate_limiter: Family<Labels, Histogram>,
    results: Family<Labels, Counter>,
}

/// Prometheus's default histogram buckets (`prometheus.DefBuckets`).
const DEF_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn def_histogram() -> Histogram {
    Histogram::new(DEF_BUCKETS)
}

impl RestMetrics {
    /// Register (or find) the families.
    pub fn register(m: &Metrics) -> Self {
        RestMetrics {
            latency: m.register(
                "coredns_kubernetes_rest_client_request_duration_seconds",
                "Request latency in seconds. Broken down by verb and host.",
                || Family::new_with_constructor(def_histogram as fn() -> Histogram),
            ),
            rate_limiter: m.register(
                "coredns_kubernetes_rest_client_rate_limiter_duration_seconds",
                "Client side rate limiter latency in seconds. Broken down by verb and host.",
                || Family::new_with_constructor(def_histogram as fn() -> Histogram),
            ),
            results: m.register(
                "coredns_kubernetes_rest_client_requests_total",
                "Number of HTTP requests, partitioned by status code, method, and host.",
                Family::default,
            ),
        }
    }
}

/// The limits and the host label.
#[derive(Clone)]
pub struct RestLayer {
    /// The metrics.
    pub metrics: RestMetrics,
    /// `host:port` of the API server.
    pub host: String,
    /// `apiserver_qps` (0: client-go's 5).
    pub qps: f32,
    /// `apiserver_burst` (0: client-go's 10).
    pub burst: u32,
    /// `apiserver_max_inflight` (0: none).
    pub max_inflight: usize,
}

impl<S> Layer<S> for RestLayer {
    type Service = Rest<S>;
    fn layer(&self, inner: S) -> Rest<S> {
        let qps = if self.qps > 0.0 {
            self.qps as f64
        } else {
            DEFAULT_QPS
        };
        let burst = if self.burst > 0 {
            self.burst
        } else {
            DEFAULT_BURST
        };
        Rest {
            inner,
            metrics: self.metrics.clone(),
            host: self.host.clone(),
            bucket: Bucket {
                qps,
                burst: burst as f64,
                tokens: burst as f64,
                last: Instant::now(),
            },
            sleep: None,
            inflight: (self.max_inflight > 0)
                .then(|| std::sync::Arc::new(tokio::sync::Semaphore::new(self.max_inflight))),
            permit: None,
            acquiring: None,
            waiting_since: None,
            waited: Duration::ZERO,
        }
    }
}

/// client-go's token bucket.
struct Bucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Take a token, or say how long until one is there.
    fn take(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let add = now.duration_since(self.last).as_secs_f64() * self.qps;
        self.tokens = (self.tokens + add).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - self.tokens) / self.qps))
        }
    }
}

type Acquire = Pin<Box<dyn Future<Output = Option<tokio::sync::OwnedSemaphorePermit>> + Send>>;

/// The service the layer makes.
pub struct Rest<S> {
    inner: S,
    metrics: RestMetrics,
    host: String,
    bucket: Bucket,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    inflight: Option<std::sync::Arc<tokio::sync::Semaphore>>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    acquiring: Option<Acquire>,
    waiting_since: Option<Instant>,
    waited: Duration,
}

impl<S, B, R> Service<Request<B>> for Rest<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        let since = *self.waiting_since.get_or_insert_with(Instant::now);
        // The token bucket first, then a slot among the requests in flight.
        loop {
            if let Some(s) = self.sleep.as_mut() {
                if s.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }
            if self.permit.is_some() || self.acquiring.is_some() {
                break;
            }
            match self.bucket.take() {
                None => break,
                Some(wait) => self.sleep = Some(Box::pin(tokio::time::sleep(wait))),
            }
        }
        if let Some(sem) = &self.inflight
            && self.permit.is_none()
        {
            let acq = self.acquiring.get_or_insert_with(|| {
                let sem = sem.clone();
                Box::pin(async move { sem.acquire_owned().await.ok() })
            });
            match acq.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(p) => {
                    self.permit = p;
                    self.acquiring = None;
                }
            }
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(r) => {
                self.waited = since.elapsed();
                self.waiting_since = None;
                Poll::Ready(r)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let verb = req.method().as_str().to_string();
        let host = self.host.clone();
        let labels = vec![
            ("verb".to_string(), verb.clone()),
            ("host".to_string(), host.clone()),
        ];
        self.metrics
            .rate_limiter
            .get_or_create(&labels)
            .observe(self.waited.as_secs_f64());
        let permit = self.permit.take();
        let metrics = self.metrics.clone();
        let start = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            drop(permit);
            metrics
                .latency
                .get_or_create(&labels)
                .observe(start.elapsed().as_secs_f64());
            let code = match &res {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "<error>".to_string(),
            };
            metrics
                .results
                .get_or_create(&vec![
                    ("code".to_string(), code),
                    ("method".to_string(), verb),
                    ("host".to_string(), host),
                ])
                .inc();
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Bucket;
    use std::time::Instant;

    #[test]
    fn burst_then_rate() {
        let mut b = Bucket {
            qps: 5.0,
            burst: 2.0,
            tokens: 2.0,
            last: Instant::now(),
        };
        assert!(b.take().is_none());
        assert!(b.take().is_none());
        let wait = b.take();
        assert!(
            wait.is_some_and(|w| w.as_millis() > 150 && w.as_millis() <= 200),
            "{wait:?}"
        );
    }
}

//! What the trace plugin sends: spans POSTed to a collector stand-in (a real HTTP listener on
//! 127.0.0.1:0 that records each request), checked for names, tags, parent/child IDs, service
//! name, sampling with `every`, batching and the backlog; and that answers never depend on it.

use std::sync::Arc;
use std::time::Duration;

use ferrodns_plugin::proto::op::ResponseCode;
use ferrodns_plugin::proto::rr::RecordType;
use ferrodns_plugin::{Next, Plugin, PluginError, Reply, Request, async_trait};
use ferrodns_plugin_test::{self as testkit, Fixed};
use ferrodns_plugin_trace::{Config, EndpointType, Trace};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One request the collector received.
#[derive(Debug)]
struct Posted {
    head: String,
    body: Vec<u8>,
}

impl Posted {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    fn spans(&self) -> Vec<Value> {
        match serde_json::from_slice(&self.body) {
            Ok(Value::Array(a)) => a,
            other => panic!("not a JSON array of spans: {other:?}"),
        }
    }
}

/// A collector on 127.0.0.1:0 answering 202 to every POST; each request arrives on the channel.
async fn collector() -> (String, mpsc::UnboundedReceiver<Posted>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body_start) = loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break (String::from_utf8_lossy(&buf[..i]).to_string(), i + 4);
                    }
                };
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                while buf.len() < body_start + len {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = buf[body_start..body_start + len].to_vec();
                // Recorded before the reply: once the sender saw the reply, the test sees
                // the request.
                let _ = tx.send(Posted { head, body });
                let _ = s
                    .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    (addr, rx)
}

async fn received(rx: &mut mpsc::UnboundedReceiver<Posted>) -> Posted {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the collector got a request in time")
        .expect("the collector is running")
}

/// A plugin that passes every query on (so the chain has a middle to open a span for).
struct Pass;

#[async_trait]
impl Plugin for Pass {
    fn name(&self) -> &'static str {
        "pass"
    }
    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        next.serve(req).await
    }
}

fn zipkin_config(addr: &str) -> Config {
    Config {
        endpoint_type: EndpointType::Zipkin,
        endpoint: format!("http://{addr}/api/v2/spans"),
        ..Config::default()
    }
}

async fn query(chain: &[Arc<dyn Plugin>], name: &str) -> (Result<Reply, PluginError>, Request) {
    let mut req = testkit::request(name, RecordType::AAAA);
    // As a block with `metadata` has it, so that the trace ID label can be seen.
    req.enable_metadata();
    let out = testkit::run(chain, &mut req).await;
    (out, req)
}

fn tag<'a>(span: &'a Value, key: &str) -> &'a str {
    span["tags"][key]
        .as_str()
        .unwrap_or_else(|| panic!("tag {key} in {span}"))
}

#[tokio::test]
async fn zipkin_root_span_and_a_child_per_plugin() {
    let (addr, mut rx) = collector().await;
    let mut cfg = zipkin_config(&addr);
    cfg.service_name = "dnsproxy".into();
    cfg.service_endpoint = "127.0.0.1:1053".into();
    cfg.zipkin_max_batch_size = 3;
    cfg.zipkin_max_batch_interval = Duration::from_secs(3600);
    let trace = Arc::new(Trace::new(cfg));
    trace.start();
    let chain: Vec<Arc<dyn Plugin>> = vec![
        trace.clone(),
        Arc::new(Pass),
        Fixed::rcode(ResponseCode::NXDomain),
    ];
    let (out, req) = query(&chain, "WWW.Example.org.").await;
    assert_eq!(out.expect("answer").rcode(), Some(ResponseCode::NXDomain));
    assert!(
        req.trace_span().is_none(),
        "the span is taken off the request"
    );

    let posted = received(&mut rx).await;
    assert!(
        posted.head.starts_with("POST /api/v2/spans HTTP/1.1"),
        "{}",
        posted.head
    );
    assert_eq!(
        posted.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(posted.header("b3").as_deref(), Some("0"));
    let spans = posted.spans();
    assert_eq!(spans.len(), 3, "{spans:?}");
    // Children finish first: fixed, pass, then the root.
    let (fixed, pass, root) = (&spans[0], &spans[1], &spans[2]);
    assert_eq!(root["name"], "servedns");
    assert_eq!(root["kind"], "SERVER");
    assert!(root.get("parentId").is_none());
    assert_eq!(
        root["id"], root["traceId"],
        "the root span's ID is the trace ID"
    );
    assert_eq!(tag(root, "coredns.io/name"), "www.example.org.");
    assert_eq!(tag(root, "coredns.io/type"), "AAAA");
    assert_eq!(tag(root, "coredns.io/proto"), "udp");
    assert_eq!(tag(root, "coredns.io/remote"), "127.0.0.1");
    assert_eq!(tag(root, "coredns.io/rcode"), "NXDOMAIN");
    assert!(root["tags"].get("error").is_none());
    assert_eq!(pass["name"], "pass");
    assert_eq!(fixed["name"], "fixed");
    assert_eq!(pass["parentId"], root["id"]);
    assert_eq!(fixed["parentId"], pass["id"]);
    for s in &spans {
        assert_eq!(s["traceId"], root["traceId"]);
        assert_eq!(s["traceId"].as_str().map(str::len), Some(16));
        assert_eq!(s["localEndpoint"]["serviceName"], "dnsproxy");
        assert_eq!(s["localEndpoint"]["ipv4"], "127.0.0.1");
        assert_eq!(s["localEndpoint"]["port"], 1053);
        assert!(
            s["timestamp"]
                .as_u64()
                .is_some_and(|t| t > 1_600_000_000_000_000)
        );
    }
    assert!(pass.get("kind").is_none());
    assert_eq!(
        req.metadata("trace/traceid").as_deref(),
        root["traceId"].as_str(),
        "the trace ID is published as metadata"
    );
    trace.stop();
}

#[tokio::test]
async fn every_samples_one_query_in_n() {
    let (addr, mut rx) = collector().await;
    let mut cfg = zipkin_config(&addr);
    cfg.every = 3;
    // Two traced queries of two spans each make one batch.
    cfg.zipkin_max_batch_size = 4;
    cfg.zipkin_max_batch_interval = Duration::from_secs(3600);
    let trace = Arc::new(Trace::new(cfg));
    trace.start();
    let chain: Vec<Arc<dyn Plugin>> = vec![trace.clone(), Fixed::rcode(ResponseCode::NoError)];
    let mut traced = Vec::new();
    for i in 1..=7 {
        let (out, req) = query(&chain, &format!("q{i}.example.org.")).await;
        assert_eq!(out.expect("answer").rcode(), Some(ResponseCode::NoError));
        if req.metadata("trace/traceid").is_some() {
            traced.push(i);
        }
    }
    assert_eq!(traced, vec![3, 6]);
    let spans = received(&mut rx).await.spans();
    let roots: Vec<&str> = spans
        .iter()
        .filter(|s| s["name"] == "servedns")
        .map(|s| tag(s, "coredns.io/name"))
        .collect();
    assert_eq!(roots, vec!["q3.example.org.", "q6.example.org."]);
    assert_eq!(spans.len(), 4);
    // Nothing else was queued: stopping flushes nothing more.
    trace.stop();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn every_zero_traces_nothing() {
    let (addr, mut rx) = collector().await;
    let mut cfg = zipkin_config(&addr);
    cfg.every = 0;
    cfg.zipkin_max_batch_size = 1;
    let trace = Arc::new(Trace::new(cfg));
    trace.start();
    let chain: Vec<Arc<dyn Plugin>> = vec![trace.clone(), Fixed::rcode(ResponseCode::NoError)];
    for _ in 0..3 {
        let (out, req) = query(&chain, "example.org.").await;
        assert!(out.is_ok());
        assert!(req.metadata("trace/traceid").is_none());
    }
    trace.stop();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn batch_interval_sends_a_partial_batch() {
    let (addr, mut rx) = collector().await;
    let mut cfg = zipkin_config(&addr);
    cfg.zipkin_max_batch_interval = Duration::from_millis(50);
    let trace = Arc::new(Trace::new(cfg));
    trace.start();
    let chain: Vec<Arc<dyn Plugin>> = vec![trace.clone(), Fixed::rcode(ResponseCode::NoError)];
    let started = tokio::time::Instant::now();
    let _ = query(&chain, "example.org.").await;
    // Far fewer than the default batch size of 100: the interval sends them.
    let spans = received(&mut rx).await.spans();
    assert_eq!(spans.len(), 2);
    assert!(started.elapsed() < Duration::from_secs(5));
    trace.stop();
}

#[tokio::test]
async fn backlog_bounds_the_waiting_spans() {
    let (addr, mut rx) = collector().await;
    let mut cfg = zipkin_config(&addr);
    cfg.zipkin_max_backlog_size = 3;
    cfg.zipkin_max_batch_interval = Duration::from_secs(3600);
    let trace = Arc::new(Trace::new(cfg));
    let chain: Vec<Arc<dyn Plugin>> = vec![trace.clone(), Fixed::rcode(ResponseCode::NoError)];
    // Queued before the sender runs: 10 spans. The processor's queue holds 3 and one batch
    // (at most the backlog) may already wait to be sent: at most 6 are kept, the oldest
    // first. Which of the later spans are the ones dropped depends on when the SDK's own
    // thread takes its batch, so only the bound and the first batch are asserted.
    for i in 1..=5 {
        let _ = query(&chain, &format!("q{i}.example.org.")).await;
    }
    trace.start();
    trace.shutdown().await;
    let mut posts = Vec::new();
    while let Ok(p) = rx.try_recv() {
        posts.push(p.spans());
    }
    let first = posts.first().expect("a batch was sent");
    let names: Vec<&str> = first
        .iter()
        .map(|s| s["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, vec!["fixed", "servedns", "fixed"]);
    assert_eq!(tag(&first[1], "coredns.io/name"), "q1.example.org.");
    let spans: Vec<&Value> = posts.iter().flatten().collect();
    assert!((3..=6).contains(&spans.len()), "{spans:?}");
}

#[tokio::test]
async fn errors_are_tagged() {
    let (addr, mut rx) = collector().await;
    let mut cfg = zipkin_config(&addr);
    cfg.zipkin_max_batch_size = 2;
    let trace = Arc::new(Trace::new(cfg));
    trace.start();
    let chain: Vec<Arc<dyn Plugin>> = vec![
        trace.clone(),
        Fixed::new(Err(PluginError::servfail("plugin/fixed: broken"))),
    ];
    let mut req = testkit::request("example.org.", RecordType::A);
    req.protocol = ferrodns_plugin::Protocol::Tcp;
    let out = testkit::run(&chain, &mut req).await;
    assert_eq!(
        out.expect_err("the error passes through").message,
        "plugin/fixed: broken"
    );
    let spans = received(&mut rx).await.spans();
    let root = &spans[1];
    assert_eq!(tag(root, "coredns.io/rcode"), "SERVFAIL");
    assert_eq!(tag(root, "coredns.io/proto"), "tcp");
    assert_eq!(tag(root, "coredns.io/type"), "A");
    assert_eq!(tag(root, "error"), "true");
    let notes: Vec<&str> = root["annotations"]
        .as_array()
        .expect("annotations")
        .iter()
        .filter_map(|a| a["value"].as_str())
        .collect();
    assert_eq!(
        notes,
        vec!["event:error", "error.object:plugin/fixed: broken"]
    );
    trace.stop();
}

#[tokio::test]
async fn an_unreachable_collector_does_not_change_answers() {
    // A port that was free a moment ago: nothing listens there.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let mut cfg = zipkin_config(&closed);
    cfg.zipkin_max_batch_size = 1;
    let trace = Arc::new(Trace::new(cfg));
    trace.start();
    let chain: Vec<Arc<dyn Plugin>> = vec![trace.clone(), Fixed::rcode(ResponseCode::Refused)];
    for _ in 0..5 {
        let (out, _) = query(&chain, "example.org.").await;
        assert_eq!(out.expect("answer").rcode(), Some(ResponseCode::Refused));
    }
    trace.stop();
}

#[tokio::test]
async fn datadog_gets_root_spans_only() {
    let (addr, mut rx) = collector().await;
    let cfg = Config {
        endpoint_type: EndpointType::Datadog,
        endpoint: addr.clone(),
        service_name: "dnsproxy".into(),
        datadog_analytics_rate: 0.5,
        ..Config::default()
    };
    let trace = Arc::new(Trace::new(cfg));
    trace.start();
    let chain: Vec<Arc<dyn Plugin>> = vec![
        trace.clone(),
        Arc::new(Pass),
        Fixed::rcode(ResponseCode::NoError),
    ];
    let (out, req) = query(&chain, "example.org.").await;
    assert!(out.is_ok());
    let id = req.metadata("trace/traceid").expect("trace ID").to_string();
    assert_eq!(id.len(), 32, "128-bit trace ID");
    trace.stop();
    let posted = received(&mut rx).await;
    assert!(
        posted.head.starts_with("POST /v0.4/traces HTTP/1.1"),
        "{}",
        posted.head
    );
    assert_eq!(
        posted.header("content-type").as_deref(),
        Some("application/msgpack")
    );
    assert_eq!(posted.header("x-datadog-trace-count").as_deref(), Some("1"));
    let body = &posted.body;
    // One trace of one span: fixarray(1), fixarray(1), a map of 12 fields.
    assert_eq!(&body[..3], &[0x91, 0x91, 0x8c]);
    let has = |s: &str| body.windows(s.len()).any(|w| w == s.as_bytes());
    for s in [
        "servedns",
        "dnsproxy",
        "coredns.io@name",
        "example.org.",
        "coredns.io@rcode",
        "NOERROR",
        "coredns.io@remote",
        "_dd.top_level",
        &id[..16],
    ] {
        assert!(has(s), "{s} in the payload");
    }
    assert!(!has("pass"), "no child spans for Datadog");
    let traces: Value = rmp_serde::from_slice(body).expect("a msgpack payload");
    let span = &traces[0][0];
    assert_eq!(span["name"], "servedns");
    assert_eq!(span["resource"], "servedns");
    assert_eq!(span["service"], "dnsproxy");
    assert_eq!(span["parent_id"], 0);
    assert_eq!(span["error"], 0);
    assert_eq!(span["span_id"], span["trace_id"]);
    assert_eq!(
        span["trace_id"].as_u64().map(|t| format!("{t:016x}")),
        Some(id[16..].to_string())
    );
    assert_eq!(span["meta"]["_dd.p.tid"], id[..16]);
    assert_eq!(span["meta"]["coredns.io@type"], "AAAA");
    assert_eq!(span["metrics"]["_dd.top_level"], 1.0);
    // As in CoreDNS v1.14.7, the analytics rate does not show on the spans.
    assert!(!has("_dd1.sr.eausr"));
}

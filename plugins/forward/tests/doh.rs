//! DNS over HTTPS against an in-process DoH server of hyper's on rustls with a self-signed
//! certificate: HTTP/2 when the server offers it, HTTP/1.1 when it does not, POST and GET,
//! connection reuse, and HTTP error statuses as failed exchanges.

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{decoded, forwarder, ok, query};
use ferrodns_plugin::{Plugin, Protocol};
use ferrodns_plugin_forward::TlsFiles;
use ferrodns_plugin_forward::doh::{Doh, DohMethod, QUERY_TIMEOUT};
use ferrodns_plugin_forward::tls::{self, TlsClient};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

/// A self-signed certificate for `doh.example`, its CA file written for the `tls` option.
struct Cert {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
    ca_path: std::path::PathBuf,
}

impl Drop for Cert {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_path);
    }
}

fn cert(tag: &str) -> Cert {
    let key = rcgen::generate_simple_self_signed(vec!["doh.example".to_string()]).expect("cert");
    let ca_path = std::env::temp_dir().join(format!(
        "ferrodns-forward-doh-{}-{tag}.pem",
        std::process::id()
    ));
    std::fs::write(&ca_path, key.cert.pem()).expect("write ca");
    Cert {
        cert: CertificateDer::from(key.cert.der().to_vec()),
        key: key.key_pair.serialize_der(),
        ca_path,
    }
}

/// How the fake DoH server replies.
#[derive(Clone, Copy)]
enum Mode {
    /// `200` and the answer.
    Answer,
    /// This status, with a well-formed DNS answer as the body all the same.
    Status(u16),
    /// `200` and a body too short for a DNS message.
    Short,
}

/// What the server saw.
#[derive(Default)]
struct Seen {
    posts: AtomicUsize,
    gets: AtomicUsize,
    /// Requests without the DoH headers, with a nonzero ID or to another path.
    bad: AtomicUsize,
    /// TCP connections accepted.
    conns: AtomicUsize,
    /// The HTTP version of each request.
    versions: Mutex<Vec<Version>>,
}

impl Seen {
    fn versions(&self) -> Vec<Version> {
        self.versions.lock().expect("lock").clone()
    }
}

struct DohFake {
    addr: std::net::SocketAddr,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DohFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unbase64url(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'-' => 62,
            _ => 63,
        }
    };
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c) << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    out
}

fn reply(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/dns-message"),
    );
    r
}

async fn serve(seen: Arc<Seen>, mode: Mode, req: Request<Incoming>) -> Response<Full<Bytes>> {
    seen.versions.lock().expect("lock").push(req.version());
    let dns = |name: http::header::HeaderName| {
        req.headers().get(name).and_then(|v| v.to_str().ok()) == Some("application/dns-message")
    };
    let headers = dns(http::header::ACCEPT) && dns(http::header::CONTENT_TYPE);
    let query = match (req.method(), req.uri().path()) {
        (&Method::POST, "/dns-query") if headers => {
            seen.posts.fetch_add(1, Ordering::SeqCst);
            match req.into_body().collect().await {
                Ok(b) => b.to_bytes().to_vec(),
                Err(_) => Vec::new(),
            }
        }
        (&Method::GET, "/dns-query") if headers => {
            seen.gets.fetch_add(1, Ordering::SeqCst);
            unbase64url(
                req.uri()
                    .query()
                    .and_then(|q| q.strip_prefix("dns="))
                    .unwrap_or_default(),
            )
        }
        _ => Vec::new(),
    };
    if query.len() < 12 || query[..2] != [0, 0] {
        seen.bad.fetch_add(1, Ordering::SeqCst);
        return reply(StatusCode::BAD_REQUEST, Vec::new());
    }
    match mode {
        Mode::Answer => reply(StatusCode::OK, ok(&query)),
        Mode::Status(s) => reply(StatusCode::from_u16(s).expect("status"), ok(&query)),
        Mode::Short => reply(StatusCode::OK, b"short".to_vec()),
    }
}

/// A DoH server offering ALPN `h2` and `http/1.1` (`h2`) or `http/1.1` alone.
async fn doh_fake(cert: &Cert, h2: bool, mode: Mode) -> DohFake {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.clone()], key)
        .expect("server config");
    config.alpn_protocols = if h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            s2.conns.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            let seen = s2.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |req| {
                    let seen = seen.clone();
                    async move { Ok::<_, Infallible>(serve(seen, mode, req).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    DohFake { addr, seen, task }
}

fn stanza(up: &DohFake, cert: &Cert, extra: &str) -> String {
    format!(
        ". https://{} {{\ntls {}\ntls_servername doh.example\n{extra}}}",
        up.addr,
        cert.ca_path.display()
    )
}

/// Three queries in a row and their answers, IDs restored.
async fn three_queries(plugins: &[Arc<dyn Plugin>]) {
    for proto in [Protocol::Udp, Protocol::Tcp, Protocol::Udp] {
        let (req, r) = query(plugins, "example.org.", proto).await;
        let m = decoded(&r);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(
            m.metadata.id,
            req.id(),
            "the client's ID is back on the reply"
        );
    }
}

#[tokio::test]
async fn doh_negotiates_http2_and_reuses_the_connection() {
    let cert = cert("h2-post");
    let up = doh_fake(&cert, true, Mode::Answer).await;
    let (f, metrics) = forwarder(&stanza(&up, &cert, ""));
    let plugins: Vec<Arc<dyn Plugin>> = vec![f.clone()];
    three_queries(&plugins).await;
    assert_eq!(up.seen.posts.load(Ordering::SeqCst), 3);
    assert_eq!(up.seen.bad.load(Ordering::SeqCst), 0);
    assert_eq!(
        up.seen.versions(),
        vec![Version::HTTP_2; 3],
        "ALPN chose h2"
    );
    assert_eq!(
        up.seen.conns.load(Ordering::SeqCst),
        1,
        "one HTTP/2 connection carries every query"
    );
    assert!(metrics.encode().contains("rcode=\"NOERROR\""));
    // The health check goes over the same connection.
    assert!(f.upstreams()[0].check().await);
    assert_eq!(up.seen.conns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn doh_http2_multiplexes_concurrent_queries() {
    let cert = cert("h2-mux");
    let up = doh_fake(&cert, true, Mode::Answer).await;
    let (f, _) = forwarder(&stanza(&up, &cert, ""));
    let plugins: Vec<Arc<dyn Plugin>> = vec![f.clone()];
    // The first query opens the connection; the next ones share it at once.
    let m = decoded(&query(&plugins, "example.org.", Protocol::Udp).await.1);
    assert_eq!(m.answers.len(), 1);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..8 {
        let plugins = plugins.clone();
        set.spawn(async move {
            let name = format!("q{i}.example.org.");
            decoded(&query(&plugins, &name, Protocol::Udp).await.1)
                .answers
                .len()
        });
    }
    while let Some(n) = set.join_next().await {
        assert_eq!(n.expect("task"), 1);
    }
    assert_eq!(up.seen.posts.load(Ordering::SeqCst), 9);
    assert_eq!(up.seen.versions(), vec![Version::HTTP_2; 9]);
    assert_eq!(up.seen.conns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn doh_falls_back_to_http1_and_keeps_the_connection_alive() {
    let cert = cert("h1-post");
    let up = doh_fake(&cert, false, Mode::Answer).await;
    let (f, _) = forwarder(&stanza(&up, &cert, ""));
    let plugins: Vec<Arc<dyn Plugin>> = vec![f.clone()];
    three_queries(&plugins).await;
    assert_eq!(up.seen.posts.load(Ordering::SeqCst), 3);
    assert_eq!(up.seen.versions(), vec![Version::HTTP_11; 3]);
    assert_eq!(
        up.seen.conns.load(Ordering::SeqCst),
        1,
        "keep-alive reuses the connection"
    );
    assert!(f.upstreams()[0].check().await);
}

#[tokio::test]
async fn doh_get_over_http2_and_http1() {
    for h2 in [true, false] {
        let cert = cert(if h2 { "h2-get" } else { "h1-get" });
        let up = doh_fake(&cert, h2, Mode::Answer).await;
        let (f, _) = forwarder(&stanza(&up, &cert, "doh_method GET\n"));
        let plugins: Vec<Arc<dyn Plugin>> = vec![f.clone()];
        three_queries(&plugins).await;
        assert_eq!(up.seen.gets.load(Ordering::SeqCst), 3);
        assert_eq!(up.seen.posts.load(Ordering::SeqCst), 0);
        assert_eq!(up.seen.bad.load(Ordering::SeqCst), 0);
        let v = if h2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        assert_eq!(up.seen.versions(), vec![v; 3]);
        assert_eq!(up.seen.conns.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn doh_error_status_is_a_failed_exchange() {
    for (status, h2) in [(500, true), (404, true), (500, false), (503, false)] {
        let cert = cert(&format!("status-{status}-{h2}"));
        // The body is a well-formed answer: only the status tells it is no reply.
        let up = doh_fake(&cert, h2, Mode::Status(status)).await;
        let (f, _) = forwarder(&stanza(&up, &cert, "max_fails 0\n"));
        let plugins: Vec<Arc<dyn Plugin>> = vec![f.clone()];
        assert!(
            query(&plugins, "example.org.", Protocol::Udp)
                .await
                .1
                .is_err(),
            "status {status} is no answer"
        );
        // Two tries of the one upstream (`max_connect_attempts` defaults to twice the list).
        assert_eq!(up.seen.posts.load(Ordering::SeqCst), 2);
        assert!(
            !f.upstreams()[0].check().await,
            "status {status} fails probes"
        );
        assert_eq!(up.seen.posts.load(Ordering::SeqCst), 3);
    }
}

#[tokio::test]
async fn doh_error_status_moves_on_to_the_next_upstream() {
    let cert = cert("status-next");
    let bad = doh_fake(&cert, true, Mode::Status(500)).await;
    let good = doh_fake(&cert, true, Mode::Answer).await;
    let (f, _) = forwarder(&format!(
        ". https://{} https://{} {{\ntls {}\ntls_servername doh.example\npolicy sequential\nmax_fails 0\n}}",
        bad.addr,
        good.addr,
        cert.ca_path.display()
    ));
    let plugins: Vec<Arc<dyn Plugin>> = vec![f.clone()];
    let m = decoded(&query(&plugins, "example.org.", Protocol::Udp).await.1);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(bad.seen.posts.load(Ordering::SeqCst), 1);
    assert_eq!(good.seen.posts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn doh_short_body_is_a_failed_exchange() {
    let cert = cert("short");
    let up = doh_fake(&cert, true, Mode::Short).await;
    let (f, _) = forwarder(&stanza(&up, &cert, "max_fails 0\n"));
    let plugins: Vec<Arc<dyn Plugin>> = vec![f.clone()];
    assert!(
        query(&plugins, "example.org.", Protocol::Udp)
            .await
            .1
            .is_err()
    );
    assert_eq!(up.seen.posts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn doh_idle_connections_expire() {
    let cert = cert("expire");
    let up = doh_fake(&cert, false, Mode::Answer).await;
    let (f, _) = forwarder(&stanza(&up, &cert, "expire 300ms\n"));
    let plugins: Vec<Arc<dyn Plugin>> = vec![f.clone()];
    let m = decoded(&query(&plugins, "example.org.", Protocol::Udp).await.1);
    assert_eq!(m.answers.len(), 1);
    // Idle past `expire`: the connection is closed and the next query dials again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let m = decoded(&query(&plugins, "example.org.", Protocol::Udp).await.1);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(up.seen.conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn doh_untrusted_certificate_fails() {
    let cert = cert("untrusted");
    let up = doh_fake(&cert, true, Mode::Answer).await;
    let (f, _) = forwarder(&format!(
        ". https://{} {{\ntls_servername doh.example\nmax_fails 0\n}}",
        up.addr
    ));
    let plugins: Vec<Arc<dyn Plugin>> = vec![f.clone()];
    assert!(
        query(&plugins, "example.org.", Protocol::Udp)
            .await
            .1
            .is_err()
    );
    assert_eq!(up.seen.posts.load(Ordering::SeqCst), 0);
}

/// A client of the `Doh` type itself, trusting `cert`.
fn doh_client(up: &DohFake, cert: &Cert, method: DohMethod) -> Doh {
    let files = TlsFiles::Ca(cert.ca_path.display().to_string());
    let client = TlsClient {
        config: tls::build_config(&files).expect("tls config"),
        server_name: tls::server_name(Some("doh.example"), None).expect("name"),
    };
    Doh::new(
        up.addr,
        up.addr.to_string(),
        method,
        client,
        None,
        Duration::from_secs(10),
    )
}

#[tokio::test]
async fn doh_exchange_reports_the_status_and_sends_id_zero() {
    let cert = cert("direct");
    let q =
        ferrodns_plugin_test::request("example.org.", ferrodns_plugin::proto::rr::RecordType::A)
            .wire()
            .into_owned();
    assert_ne!(&q[..2], &[0, 0]);
    for method in [DohMethod::Post, DohMethod::Get] {
        let up = doh_fake(&cert, true, Mode::Answer).await;
        let doh = doh_client(&up, &cert, method);
        let reply = doh.exchange(&q, QUERY_TIMEOUT).await.expect("reply");
        assert_eq!(&reply[..2], &[0, 0], "the reply answers the ID-0 query");
        assert_eq!(up.seen.bad.load(Ordering::SeqCst), 0);
        doh.clear();
        doh.exchange(&q, QUERY_TIMEOUT).await.expect("reply");
        assert_eq!(
            up.seen.conns.load(Ordering::SeqCst),
            2,
            "clear closes the pool"
        );

        let up = doh_fake(&cert, true, Mode::Status(500)).await;
        let err = doh_client(&up, &cert, method)
            .exchange(&q, QUERY_TIMEOUT)
            .await
            .expect_err("500");
        assert!(err.contains("status 500"), "{err}");
    }
}

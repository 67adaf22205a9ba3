//! The exporters' HTTP client: hyper (the project's HTTP crate) through hyper-util's pooled
//! client, `http://` and `https://` (rustls with the `ring` provider, TLS 1.2/1.3, the system's
//! root certificates, which `SSL_CERT_FILE` / `SSL_CERT_DIR` may point elsewhere, as in Go).
//!
//! Requests run on the server's tokio runtime, handed over by [`Runtime::start`]; until then
//! they wait, so spans made before the server started are sent once it has.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// How long one POST may take, connect to the end of the reply (the Zipkin reporter's default).
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a POST failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The URL is not an `http://` or `https://` URL with a host.
    #[error("unsupported protocol scheme or malformed URL")]
    Url,
    /// The request could not be built.
    #[error("{0}")]
    Request(#[from] http::Error),
    /// Connecting, the TLS handshake, writing or reading failed.
    #[error("{0}")]
    Client(#[from] hyper_util::client::legacy::Error),
    /// Reading the reply's body failed.
    #[error("{0}")]
    Body(#[from] hyper::Error),
    /// The TLS client could not be set up.
    #[error("tls: {0}")]
    Tls(String),
    /// No complete reply within [`TIMEOUT`].
    #[error("context deadline exceeded (Client.Timeout exceeded while awaiting headers)")]
    Timeout,
    /// The exporter was stopped before the server started.
    #[error("the exporter is stopped")]
    Stopped,
}

/// Check that `url` is `http[s]://HOST[:PORT][/PATH]`.
pub fn parse_url(url: &str) -> Result<Uri, PostError> {
    let uri: Uri = url.parse().map_err(|_| PostError::Url)?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(h)) if !h.is_empty() => Ok(uri),
        _ => Err(PostError::Url),
    }
}

/// The TLS client configuration with the system's roots, built once.
fn system_tls() -> Result<ClientConfig, PostError> {
    static CONFIG: OnceLock<Result<ClientConfig, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            tls_config(roots)
        })
        .clone()
        .map_err(PostError::Tls)
}

/// A TLS 1.2/1.3 client configuration (`ring` provider) trusting `roots`.
pub fn tls_config(roots: RootCertStore) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Where the exporter stands: waiting for the server, running on its runtime, or stopped.
#[derive(Clone, Debug)]
enum State {
    Waiting,
    Running(Handle),
    Stopped,
}

/// The runtime requests run on, once the server started.
#[derive(Debug)]
pub struct Runtime(watch::Sender<State>);

impl Default for Runtime {
    fn default() -> Self {
        Runtime(watch::channel(State::Waiting).0)
    }
}

impl Runtime {
    /// Run requests on the current tokio runtime from now on.
    pub fn start(&self) {
        if let Ok(h) = Handle::try_current() {
            self.0.send_replace(State::Running(h));
        }
    }

    /// Fail requests from now on if the server never started.
    pub fn stop(&self) {
        self.0.send_if_modified(|s| {
            let waiting = matches!(s, State::Waiting);
            if waiting {
                *s = State::Stopped;
            }
            waiting
        });
    }

    async fn handle(&self) -> Result<Handle, PostError> {
        let mut rx = self.0.subscribe();
        let state = rx
            .wait_for(|s| !matches!(s, State::Waiting))
            .await
            .map_err(|_| PostError::Stopped)?
            .clone();
        match state {
            State::Running(h) => Ok(h),
            _ => Err(PostError::Stopped),
        }
    }
}

/// A hyper client for one exporter.
#[derive(Debug)]
pub struct Client {
    client: Result<HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>, String>,
    runtime: Arc<Runtime>,
}

impl Client {
    /// A client trusting the system's roots for `https://` (if those cannot be set up, every
    /// request fails with why).
    pub fn new(runtime: Arc<Runtime>) -> Client {
        match system_tls() {
            Ok(tls) => Self::with_tls(tls, runtime),
            Err(e) => Client {
                client: Err(e.to_string()),
                runtime,
            },
        }
    }

    /// A client trusting what `tls` trusts for `https://`.
    pub fn with_tls(tls: ClientConfig, runtime: Arc<Runtime>) -> Client {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = HyperClient::builder(TokioExecutor::new()).build(https);
        Client {
            client: Ok(client),
            runtime,
        }
    }

    /// Send `request`; the reply with its whole body.
    pub async fn send(&self, request: Request<Bytes>) -> Result<http::Response<Bytes>, PostError> {
        let handle = self.runtime.handle().await?;
        let client = self.client.clone().map_err(PostError::Tls)?;
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, Full::new(body));
        let exchange = async move {
            let reply = client.request(request).await?;
            let (parts, body) = reply.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, PostError>(http::Response::from_parts(parts, body))
        };
        // Run on the server's runtime: the caller may be the span processor's own thread.
        let task = handle.spawn(async move {
            tokio::time::timeout(TIMEOUT, exchange)
                .await
                .unwrap_or(Err(PostError::Timeout))
        });
        task.await.map_err(|_| PostError::Stopped)?
    }

    /// POST `body` to `url` with the content type and extra headers; the reply's status code.
    pub async fn post(
        &self,
        url: &Uri,
        content_type: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<u16, PostError> {
        let mut req = Request::post(url.clone())
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::USER_AGENT, "ferrodns");
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let reply = self.send(req.body(body)?).await?;
        Ok(reply.status().as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    #[test]
    fn urls() {
        let u = parse_url("http://localhost:9411/api/v2/spans").expect("url");
        assert_eq!(
            (u.scheme_str(), u.host(), u.port_u16(), u.path()),
            (Some("http"), Some("localhost"), Some(9411), "/api/v2/spans")
        );
        let u = parse_url("https://collector.example/zipkin").expect("url");
        assert_eq!((u.scheme_str(), u.port_u16()), (Some("https"), None));
        let u = parse_url("http://[::1]:9411").expect("url");
        assert_eq!((u.host(), u.path()), (Some("[::1]"), "/"));
        assert!(parse_url("myhttphost:1").is_err());
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[tokio::test]
    async fn waits_for_the_start_and_fails_once_stopped() {
        let rt = Arc::new(Runtime::default());
        let client = Client::with_tls(tls_config(RootCertStore::empty()).expect("tls"), rt.clone());
        let url = parse_url("http://127.0.0.1:9/").expect("url");
        let post = client.post(&url, "text/plain", &[], Bytes::new());
        rt.stop();
        assert!(matches!(post.await, Err(PostError::Stopped)));
    }

    #[tokio::test]
    async fn posts_over_tls() {
        let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
        let cert = CertificateDer::from(key.cert.der().to_vec());
        let pkey = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.key_pair.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], pkey)
            .expect("server config");
        let acceptor = TlsAcceptor::from(Arc::new(server));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut got = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !got.ends_with(b"{\"a\":1}") {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        got.extend_from_slice(&chunk[..n]);
                    }
                    let _ = tx.send(String::from_utf8_lossy(&got).to_string());
                    let _ = s
                        .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    let _ = s.shutdown().await;
                });
            }
        });
        let rt = Arc::new(Runtime::default());
        rt.start();
        let mut roots = RootCertStore::empty();
        roots.add(cert).expect("root");
        let client = Client::with_tls(tls_config(roots).expect("tls"), rt.clone());
        let url = parse_url(&format!("https://{addr}/api/v2/spans")).expect("url");
        let status = client
            .post(
                &url,
                "application/json",
                &[],
                Bytes::from_static(b"{\"a\":1}"),
            )
            .await
            .expect("post");
        assert_eq!(status, 202);
        let seen = rx.recv().await.expect("request");
        assert!(
            seen.starts_with("POST /api/v2/spans HTTP/1.1\r\n"),
            "{seen}"
        );

        // The system roots do not trust the test's certificate: the handshake fails.
        let system = Client::new(rt);
        let err = system
            .post(&url, "application/json", &[], Bytes::from_static(b"{}"))
            .await
            .expect_err("untrusted");
        assert!(matches!(err, PostError::Client(_)), "{err:?}");
    }
}

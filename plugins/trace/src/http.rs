//! A minimal HTTP/1.1 client for the exporters: one POST per batch on a fresh connection, as
//! the collectors need nothing more. `http://` and `https://` (TLS 1.2/1.3, the system's root
//! certificates, which `SSL_CERT_FILE` / `SSL_CERT_DIR` may point elsewhere, as in Go).

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// How long one POST may take, connect to status line (the Zipkin reporter's default).
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a POST failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The URL is not `http[s]://HOST[:PORT][/PATH]`.
    #[error("unsupported protocol scheme or malformed URL")]
    Url,
    /// Connecting, the TLS handshake, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The TLS client could not be set up or the host is not a valid TLS name.
    #[error("tls: {0}")]
    Tls(String),
    /// No status line within [`TIMEOUT`].
    #[error("context deadline exceeded (Client.Timeout exceeded while awaiting headers)")]
    Timeout,
    /// The reply did not start with an HTTP status line.
    #[error("malformed HTTP response")]
    Malformed,
}

/// An `http://` or `https://` URL split for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Whether to speak TLS.
    pub tls: bool,
    /// `host:port` to connect to (port 80 or 443 when the URL has none).
    pub authority: String,
    /// The host without brackets or port (the TLS server name).
    pub hostname: String,
    /// The Host header.
    pub host: String,
    /// The path with query, `/` when empty.
    pub path: String,
}

impl Url {
    /// Split `http[s]://HOST[:PORT][/PATH]`.
    pub fn parse(url: &str) -> Result<Url, PostError> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(PostError::Url);
        };
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host.is_empty() {
            return Err(PostError::Url);
        }
        let (hostname, has_port) = match host.strip_prefix('[') {
            Some(v6) => {
                let end = v6.find(']').ok_or(PostError::Url)?;
                (&v6[..end], v6[end + 1..].starts_with(':'))
            }
            None => match host.rsplit_once(':') {
                Some((h, _)) => (h, true),
                None => (host, false),
            },
        };
        let authority = if has_port {
            host.to_string()
        } else {
            format!("{host}:{}", if tls { 443 } else { 80 })
        };
        Ok(Url {
            tls,
            authority,
            hostname: hostname.to_string(),
            host: host.to_string(),
            path: path.to_string(),
        })
    }
}

/// The TLS client configuration with the system's roots, built once.
fn system_tls() -> Result<Arc<ClientConfig>, PostError> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
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

/// A TLS 1.2/1.3 client configuration trusting `roots`.
pub fn tls_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// POST `body` to `url` with the extra headers; the reply's status code.
pub async fn post(
    url: &Url,
    content_type: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<u16, PostError> {
    let tls = if url.tls { Some(system_tls()?) } else { None };
    post_with(url, tls, content_type, headers, body).await
}

/// As [`post`], with the TLS configuration for `https://` URLs given.
pub async fn post_with(
    url: &Url,
    tls: Option<Arc<ClientConfig>>,
    content_type: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<u16, PostError> {
    let request = async {
        let tcp = TcpStream::connect(url.authority.as_str()).await?;
        match (url.tls, tls) {
            (true, Some(config)) => {
                let name = match url.hostname.parse::<IpAddr>() {
                    Ok(ip) => ServerName::IpAddress(ip.into()),
                    Err(_) => ServerName::try_from(url.hostname.clone())
                        .map_err(|e| PostError::Tls(e.to_string()))?,
                };
                let stream = TlsConnector::from(config).connect(name, tcp).await?;
                exchange(stream, url, content_type, headers, body).await
            }
            (true, None) => Err(PostError::Tls("no client configuration".into())),
            (false, _) => exchange(tcp, url, content_type, headers, body).await,
        }
    };
    match tokio::time::timeout(TIMEOUT, request).await {
        Ok(r) => r,
        Err(_) => Err(PostError::Timeout),
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    url: &Url,
    content_type: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<u16, PostError> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ferrodns\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        url.path,
        url.host,
        content_type,
        body.len()
    );
    for (k, v) in headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    // Read up to the end of the status line.
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&buf[..end]);
            let mut parts = line.split_whitespace();
            let proto = parts.next().unwrap_or_default();
            if !proto.starts_with("HTTP/") {
                return Err(PostError::Malformed);
            }
            return parts
                .next()
                .and_then(|c| c.parse().ok())
                .ok_or(PostError::Malformed);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() > 8192 {
            return Err(PostError::Malformed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    #[test]
    fn urls() {
        let u = Url::parse("http://localhost:9411/api/v2/spans").expect("url");
        assert_eq!(
            (
                u.tls,
                u.authority.as_str(),
                u.hostname.as_str(),
                u.path.as_str()
            ),
            (false, "localhost:9411", "localhost", "/api/v2/spans")
        );
        let u = Url::parse("https://collector.example/zipkin").expect("url");
        assert_eq!(
            (u.tls, u.authority.as_str()),
            (true, "collector.example:443")
        );
        let u = Url::parse("http://[::1]:9411").expect("url");
        assert_eq!(
            (u.authority.as_str(), u.hostname.as_str(), u.path.as_str()),
            ("[::1]:9411", "::1", "/")
        );
        let u = Url::parse("http://[::1]/x").expect("url");
        assert_eq!(u.authority, "[::1]:80");
        assert!(Url::parse("myhttphost:1").is_err());
        assert!(Url::parse("ftp://x/").is_err());
        assert!(Url::parse("http:///x").is_err());
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
                    let _ = s
                        .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    let _ = s.shutdown().await;
                    let _ = tx.send(String::from_utf8_lossy(&got).to_string());
                });
            }
        });
        let mut roots = RootCertStore::empty();
        roots.add(cert).expect("root");
        let url = Url::parse(&format!("https://{addr}/api/v2/spans")).expect("url");
        let status = post_with(
            &url,
            Some(tls_config(roots).expect("tls")),
            "application/json",
            &[],
            b"{\"a\":1}",
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
        let err = post(&url, "application/json", &[], b"{}")
            .await
            .expect_err("untrusted");
        assert!(
            matches!(err, PostError::Io(_) | PostError::Tls(_)),
            "{err:?}"
        );
    }
}

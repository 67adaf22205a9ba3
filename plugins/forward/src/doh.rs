//! DNS over HTTPS to `https://` upstreams (RFC 8484), through hyper's client on rustls.
//!
//! - TLS is the upstream's own [`TlsClient`] (the `tls` and `tls_servername` options: CA,
//!   client certificate, server name), with ALPN offering `h2` first and `http/1.1` as the
//!   fallback, as Go's HTTP client does. The TCP connection goes to the configured address (the
//!   host name is never resolved), from the `source_address` when one is set.
//! - A query is a POST (the default) of the message with `content-type` and `accept`
//!   `application/dns-message`, or a GET of `/dns-query?dns=` and the message in base64url
//!   without padding (`doh_method GET`). The message goes with ID 0; the caller puts the
//!   client's ID back on the reply.
//! - Connections are reused: an HTTP/2 connection carries every query at once, HTTP/1.1
//!   connections are kept alive in a pool; idle connections close after `expire`.
//! - The whole exchange (connect, request, reply body) is bounded by the timeout given, 2s for
//!   queries as CoreDNS's DoH HTTP client.
//! - Only a `200` reply carries an answer: any other status is a failed exchange (as in
//!   CoreDNS), as is a body shorter than a DNS header or longer than 65535 bytes.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use ferrodns_go::fmt::error_chain;

use crate::tls::TlsClient;

/// CoreDNS's DoH client timeout for queries.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle HTTP/1.1 keep-alive connections kept.
const MAX_IDLE: usize = 8;
/// The largest DNS message.
const MAX_MESSAGE: usize = 65535;
/// The media type of DNS messages.
const DNS_MESSAGE: &str = "application/dns-message";

/// The HTTP method of DNS-over-HTTPS queries (`doh_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DohMethod {
    /// `GET`, the query base64url-encoded in the URL.
    Get,
    /// `POST`, the query as the body (the default).
    Post,
}

type HttpClient = Client<Connector, Full<Bytes>>;

/// A DoH endpoint.
pub struct Doh {
    host: String,
    method: DohMethod,
    connector: Connector,
    expire: Duration,
    client: Mutex<HttpClient>,
}

impl std::fmt::Debug for Doh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Doh")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

fn base64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len() * 4 / 3 + 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

impl Doh {
    /// An endpoint at `target` (`host` is the `ip:port` text of the URL, sent as the Host header
    /// or `:authority`).
    pub fn new(
        target: SocketAddr,
        host: String,
        method: DohMethod,
        mut tls: TlsClient,
        source: Option<IpAddr>,
        expire: Duration,
    ) -> Self {
        let mut config = (*tls.config).clone();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tls.config = Arc::new(config);
        let connector = Connector {
            target,
            source,
            tls: Arc::new(tls),
        };
        let client = Mutex::new(build_client(&connector, expire));
        Doh {
            host,
            method,
            connector,
            expire,
            client,
        }
    }

    fn client(&self) -> HttpClient {
        match self.client.lock() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Close idle connections: the pool is replaced by an empty one (exchanges under way keep
    /// theirs until they end).
    pub fn clear(&self) {
        let fresh = build_client(&self.connector, self.expire);
        match self.client.lock() {
            Ok(mut c) => *c = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
    }

    fn url(&self, q: &[u8]) -> String {
        match self.method {
            DohMethod::Get => format!("https://{}/dns-query?dns={}", self.host, base64url(q)),
            DohMethod::Post => format!("https://{}/dns-query", self.host),
        }
    }

    /// One query (ID set to 0 on the wire); the reply's bytes.
    pub async fn exchange(&self, query: &[u8], timeout: Duration) -> Result<Bytes, String> {
        let mut q = query.to_vec();
        if q.len() >= 2 {
            q[0] = 0;
            q[1] = 0;
        }
        let url = self.url(&q);
        // Go's url.Error: the method as `Get`/`Post`, then the URL.
        let op = match self.method {
            DohMethod::Get => "Get",
            DohMethod::Post => "Post",
        };
        let uri: Uri = url.parse().map_err(|e| format!("parse \"{url}\": {e}"))?;
        let (method, body) = match self.method {
            DohMethod::Get => (Method::GET, Bytes::new()),
            DohMethod::Post => (Method::POST, Bytes::from(q)),
        };
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, DNS_MESSAGE)
            .header(header::ACCEPT, DNS_MESSAGE)
            .body(Full::new(body))
            .map_err(|e| format!("{op} \"{url}\": {e}"))?;
        let client = self.client();
        let attempt = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| format!("{op} \"{url}\": {}", error_chain(&e)))?;
            // RFC 8484 4.2.1: a reply other than success carries no DNS answer.
            let status = response.status();
            if status != StatusCode::OK {
                return Err(format!(
                    "{op} \"{url}\": unexpected HTTP status {}",
                    status.as_u16()
                ));
            }
            let body = Limited::new(response.into_body(), MAX_MESSAGE)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        "dns: message too large".to_string()
                    } else {
                        format!("{op} \"{url}\": {}", error_chain(e.as_ref()))
                    }
                })?
                .to_bytes();
            if body.len() < 12 {
                return Err("dns: overflow unpacking uint16".into());
            }
            Ok(body)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{op} \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )),
        }
    }
}

fn build_client(connector: &Connector, expire: Duration) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(expire)
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(MAX_IDLE)
        .build(connector.clone())
}

/// Opens the connections of one upstream: TCP to its address (from `source` when set), then TLS
/// with its configuration, whatever host the URL names.
#[derive(Clone)]
struct Connector {
    target: SocketAddr,
    source: Option<IpAddr>,
    tls: Arc<TlsClient>,
}

impl Connector {
    async fn connect(self) -> Result<Stream, std::io::Error> {
        let sock = if self.target.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }?;
        if let Some(ip) = self.source {
            sock.bind(SocketAddr::new(ip, 0))?;
        }
        let tcp = sock.connect(self.target).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("dial tcp {}: connect: {e}", self.target))
        })?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsConnector::from(self.tls.config.clone())
            .connect(self.tls.server_name.clone(), tcp)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("tls: {e}")))?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        Ok(Stream {
            io: TokioIo::new(tls),
            h2,
        })
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Stream;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        Box::pin(self.clone().connect())
    }
}

/// A TLS connection to the upstream, and whether ALPN chose HTTP/2.
struct Stream {
    io: TokioIo<TlsStream<TcpStream>>,
    h2: bool,
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        let c = Connected::new();
        if self.h2 { c.negotiated_h2() } else { c }
    }
}

impl Read for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::base64url;

    #[test]
    fn base64url_without_padding() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}

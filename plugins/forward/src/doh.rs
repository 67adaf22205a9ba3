//! DNS over HTTPS to `https://` upstreams: RFC 8484 over HTTP/1.1 (ALPN `http/1.1`) on
//! rustls, POST (default) or GET to `/dns-query`, message ID 0, keep-alive connections reused,
//! the whole exchange bounded by 2s as CoreDNS's HTTP client is.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::tls::TlsClient;

/// CoreDNS's DoH client timeout for queries.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle keep-alive connections kept.
const MAX_IDLE: usize = 8;
const MAX_HEADER: usize = 16 * 1024;

/// The HTTP method of DNS-over-HTTPS queries (`doh_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DohMethod {
    /// `GET`, the query base64url-encoded in the URL.
    Get,
    /// `POST`, the query as the body (the default).
    Post,
}

/// A DoH endpoint.
pub struct Doh {
    target: SocketAddr,
    host: String,
    method: DohMethod,
    tls: TlsClient,
    source: Option<IpAddr>,
    expire: Duration,
    idle: Mutex<Vec<(Instant, TlsStream<TcpStream>)>>,
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
    /// An endpoint at `target` (`host` is the `ip:port` text sent as the Host header).
    pub fn new(
        target: SocketAddr,
        host: String,
        method: DohMethod,
        mut tls: TlsClient,
        source: Option<IpAddr>,
        expire: Duration,
    ) -> Self {
        let mut config = (*tls.config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tls.config = Arc::new(config);
        Doh {
            target,
            host,
            method,
            tls,
            source,
            expire,
            idle: Mutex::new(Vec::new()),
        }
    }

    async fn dial(&self) -> Result<TlsStream<TcpStream>, String> {
        let sock = if self.target.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| e.to_string())?;
        if let Some(ip) = self.source {
            sock.bind(SocketAddr::new(ip, 0))
                .map_err(|e| e.to_string())?;
        }
        let tcp = sock
            .connect(self.target)
            .await
            .map_err(|e| format!("dial tcp {}: connect: {e}", self.target))?;
        let _ = tcp.set_nodelay(true);
        tokio_rustls::TlsConnector::from(self.tls.config.clone())
            .connect(self.tls.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("tls: {e}"))
    }

    fn take_idle(&self) -> Option<TlsStream<TcpStream>> {
        let mut idle = match self.idle.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let now = Instant::now();
        while let Some((at, s)) = idle.pop() {
            if now.saturating_duration_since(at) <= self.expire {
                return Some(s);
            }
        }
        None
    }

    fn give_back(&self, s: TlsStream<TcpStream>) {
        let mut idle = match self.idle.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if idle.len() < MAX_IDLE {
            idle.push((Instant::now(), s));
        }
    }

    /// Close idle connections.
    pub fn clear(&self) {
        if let Ok(mut i) = self.idle.lock() {
            i.clear();
        }
    }

    /// One query (ID set to 0 on the wire); the reply's bytes.
    pub async fn exchange(&self, query: &[u8], timeout: Duration) -> Result<Bytes, String> {
        let mut q = query.to_vec();
        if q.len() >= 2 {
            q[0] = 0;
            q[1] = 0;
        }
        let request = self.request(&q);
        let attempt = async {
            // A kept-alive connection the server closed meanwhile is retried on a new one.
            if let Some(mut s) = self.take_idle()
                && let Ok((body, keep)) = round_trip(&mut s, &request).await
            {
                if keep {
                    self.give_back(s);
                }
                return Ok(body);
            }
            let mut s = self.dial().await?;
            let (body, keep) = round_trip(&mut s, &request).await?;
            if keep {
                self.give_back(s);
            }
            Ok(body)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "Post \"https://{}/dns-query\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                self.host
            )),
        }
    }

    fn request(&self, q: &[u8]) -> Vec<u8> {
        let mut r = Vec::with_capacity(256 + q.len() * 2);
        match self.method {
            DohMethod::Get => {
                r.extend_from_slice(
                    format!(
                        "GET /dns-query?dns={} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/dns-message\r\nAccept: application/dns-message\r\n\r\n",
                        base64url(q),
                        self.host
                    )
                    .as_bytes(),
                );
            }
            DohMethod::Post => {
                r.extend_from_slice(
                    format!(
                        "POST /dns-query HTTP/1.1\r\nHost: {}\r\nContent-Type: application/dns-message\r\nAccept: application/dns-message\r\nContent-Length: {}\r\n\r\n",
                        self.host,
                        q.len()
                    )
                    .as_bytes(),
                );
                r.extend_from_slice(q);
            }
        }
        r
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Send one request and read one response: its body and whether the connection stays open.
async fn round_trip(s: &mut TlsStream<TcpStream>, request: &[u8]) -> Result<(Bytes, bool), String> {
    s.write_all(request).await.map_err(|e| e.to_string())?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEADER {
            return Err("net/http: response headers too large".into());
        }
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("EOF".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.") {
        return Err(format!("malformed HTTP response {status:?}"));
    }
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut keep = status.starts_with("HTTP/1.1");
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
        match k.as_str() {
            "content-length" => length = v.parse().ok(),
            "transfer-encoding" => chunked = v.contains("chunked"),
            "connection" => keep = v.contains("keep-alive") || (keep && !v.contains("close")),
            _ => {}
        }
    }
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&rest, b"\r\n") {
                    break i;
                }
                let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("unexpected EOF".into());
                }
                rest.extend_from_slice(&chunk[..n]);
            };
            let size_text = String::from_utf8_lossy(&rest[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| "malformed chunked encoding".to_string())?;
            rest.drain(..line_end + 2);
            while rest.len() < size + 2 {
                let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("unexpected EOF".into());
                }
                rest.extend_from_slice(&chunk[..n]);
            }
            if size == 0 {
                // Trailers are not expected; the final CRLF ends the body.
                break;
            }
            body.extend_from_slice(&rest[..size]);
            rest.drain(..size + 2);
            if body.len() > 65535 {
                return Err("dns: message too large".into());
            }
        }
        body
    } else if let Some(len) = length {
        if len > 65535 {
            return Err("dns: message too large".into());
        }
        while rest.len() < len {
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("unexpected EOF".into());
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        rest.truncate(len);
        rest
    } else {
        // Read to the end of the connection.
        keep = false;
        loop {
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
            if rest.len() > 65535 {
                return Err("dns: message too large".into());
            }
        }
        rest
    };
    if body.len() < 12 {
        return Err("dns: overflow unpacking uint16".into());
    }
    Ok((Bytes::from(body), keep))
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

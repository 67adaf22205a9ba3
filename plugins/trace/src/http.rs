//! A minimal HTTP/1.1 client for the exporters: one POST per batch on a fresh connection, as
//! the collectors need nothing more. Plain `http://` only (see the README's differences).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one POST may take, connect to status line (the Zipkin reporter's default).
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a POST failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The URL is not `http://HOST[:PORT][/PATH]`.
    #[error("unsupported URL")]
    Url,
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No status line within [`TIMEOUT`].
    #[error("context deadline exceeded (Client.Timeout exceeded while awaiting headers)")]
    Timeout,
    /// The reply did not start with an HTTP status line.
    #[error("malformed HTTP response")]
    Malformed,
}

/// An `http://` URL split for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `host:port` to connect to (port 80 when the URL has none).
    pub authority: String,
    /// The Host header.
    pub host: String,
    /// The path with query, `/` when empty.
    pub path: String,
}

impl Url {
    /// Split `http://HOST[:PORT][/PATH]`.
    pub fn parse(url: &str) -> Result<Url, PostError> {
        let rest = url.strip_prefix("http://").ok_or(PostError::Url)?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host.is_empty() {
            return Err(PostError::Url);
        }
        let has_port = match host.rfind(']') {
            Some(b) => host[b..].contains(':'),
            None => host.contains(':'),
        };
        let authority = if has_port {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        Ok(Url {
            authority,
            host: host.to_string(),
            path: path.to_string(),
        })
    }
}

/// POST `body` to `url` with the extra headers; the reply's status code.
pub async fn post(
    url: &Url,
    content_type: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<u16, PostError> {
    match tokio::time::timeout(TIMEOUT, post_inner(url, content_type, headers, body)).await {
        Ok(r) => r,
        Err(_) => Err(PostError::Timeout),
    }
}

async fn post_inner(
    url: &Url,
    content_type: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<u16, PostError> {
    let mut stream = TcpStream::connect(url.authority.as_str()).await?;
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

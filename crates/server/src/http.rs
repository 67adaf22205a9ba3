//! Shared HTTP listeners: one per address named by any plugin (`health`, `prometheus`, `ready`),
//! each serving the paths registered on it. A small HTTP/1.1 server: GET and HEAD, one request
//! per connection, bounded header size and time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use ferrodns_plugin::{HttpHandler, HttpResponse};

use crate::config::ConfigError;

type Paths = BTreeMap<String, Arc<dyn HttpHandler>>;

/// Resolve `host:port` as Go does for a listen address (`:8080` = all addresses).
pub fn listen_addr(addr: &str) -> Result<SocketAddr, ConfigError> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| ConfigError(format!("address {addr}: missing port in address")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| ConfigError(format!("address {addr}: invalid port")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Ok(SocketAddr::from(([0u8; 16], port)));
    }
    if host == "localhost" {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let ip = host
        .parse()
        .map_err(|_| ConfigError(format!("listen tcp {addr}: unknown host {host}")))?;
    Ok(SocketAddr::new(ip, port))
}

/// Bind the listener for one address.
pub fn bind(addr: &str) -> Result<std::net::TcpListener, ConfigError> {
    let sa = listen_addr(addr)?;
    crate::tcp::bind(sa).map_err(|e| ConfigError(format!("listen tcp {addr}: {e}")))
}

/// Serve `paths` on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, paths: Paths, mut stop: watch::Receiver<bool>) {
    let paths = Arc::new(paths);
    loop {
        let (stream, _) = tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
        };
        let paths = paths.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), one(stream, &paths)).await;
        });
    }
}

async fn one(mut stream: TcpStream, paths: &Paths) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() > 16 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/");
    let resp = match (method, paths.get(path)) {
        ("GET" | "HEAD", Some(h)) => h.handle(),
        ("GET" | "HEAD", None) => HttpResponse::text(404, "404 page not found\n"),
        _ => HttpResponse::text(405, "Method Not Allowed\n"),
    };
    let reason = match resp.status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        resp.status,
        reason,
        resp.content_type,
        resp.body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(&resp.body);
    }
    stream.write_all(&out).await?;
    stream.shutdown().await
}

//! Shared HTTP listeners: one per address named by any plugin (`health`, `prometheus`, `ready`),
//! each serving the paths registered on it. A small HTTP/1.1 server: one request per connection,
//! bounded header size and time. Paths are matched as Go's `http.ServeMux` does: any method,
//! percent-decoded, a path that is not clean redirected (307) to its clean form, other paths 404.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use ferrodns_go::http::clean_path;
use ferrodns_go::url::path_unescape;
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
    let head_len = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(buf.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    // Read a declared body (bounded) so that closing does not reset the connection before the
    // client has read the answer.
    let body_len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let mut have = buf.len() - head_len;
    while have < body_len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        have += n;
    }
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("/");
    let (raw_path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut location = None;
    let resp = match path_unescape(raw_path) {
        None => HttpResponse::text(400, "400 Bad Request"),
        Some(path) => {
            let clean = clean_path(&path);
            if clean != path {
                let to = match query {
                    Some(q) => format!("{clean}?{q}"),
                    None => clean,
                };
                let body = if method == "GET" {
                    format!("<a href=\"{to}\">Temporary Redirect</a>.\n\n")
                } else {
                    String::new()
                };
                location = Some(to);
                HttpResponse {
                    status: 307,
                    content_type: "text/html; charset=utf-8",
                    body: body.into_bytes(),
                }
            } else {
                match paths.get(&path) {
                    Some(h) => h.handle(),
                    None => HttpResponse::text(404, "404 page not found\n"),
                }
            }
        }
    };
    let reason = match resp.status {
        200 => "OK",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "",
    };
    let location = location.map_or(String::new(), |l| format!("Location: {l}\r\n"));
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\n{location}Content-Length: {}\r\nConnection: close\r\n\r\n",
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

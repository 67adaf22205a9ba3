//! Shared HTTP listeners: one per address named by any plugin (`health`, `prometheus`, `ready`),
//! each serving the paths registered on it. HTTP/1.1 on hyper, as Go's `net/http` serves a
//! plain listener: keep-alive, HEAD answered with the headers only, a bounded request head
//! (431 past 16 KiB), 5 s to read a request head, which also closes a keep-alive connection
//! left idle that long (as CoreDNS's HTTP servers do). Paths are matched as Go's `http.ServeMux` does: any method,
//! percent-decoded, a path that is not clean redirected (307) to its clean form, other paths
//! 404. (Go serves HTTP/2 only over TLS, which these listeners do not speak, so neither do we.)

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use ferrodns_go::http::clean_path;
use ferrodns_go::url::path_unescape;
use ferrodns_plugin::HttpHandler;

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

/// The bounds of one listener's connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to read a request head, counted from the end of the previous answer on a
    /// keep-alive connection (so also how long an idle connection is kept).
    pub header_read: Duration,
    /// Largest request head; a larger one gets 431 and the connection is closed.
    pub max_head: usize,
    /// Time a connection still has to finish its request once the listener stops.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // CoreDNS's health, ready and metrics servers close a connection whose request head
            // has not come within 5 s, and a kept-alive one idle for 5 s.
            header_read: Duration::from_secs(5),
            max_head: 16 * 1024,
            drain: Duration::from_secs(5),
        }
    }
}

/// Serve `paths` on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, paths: Paths, stop: watch::Receiver<bool>) {
    serve_with(listener, paths, stop, Limits::default()).await;
}

/// [`serve`] with explicit [`Limits`].
pub async fn serve_with(
    listener: TcpListener,
    paths: Paths,
    mut stop: watch::Receiver<bool>,
    limits: Limits,
) {
    let paths = Arc::new(paths);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        // hyper's floor for its read buffer is 8 KiB.
        .max_buf_size(limits.max_head.max(8192))
        // Header names as Go writes them (`Content-Type`), for clients that compare them as
        // written.
        .title_case_headers(true)
        .keep_alive(true);
    loop {
        let (stream, _) = tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
        };
        let paths = paths.clone();
        let builder = builder.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let paths = paths.clone();
                async move { Ok::<_, Infallible>(route(&req, &paths)) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    // The listener stopped (shutdown or reload): finish the request in flight,
                    // then close instead of keeping the connection alive.
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.drain, conn).await;
                }
            }
        });
    }
}

fn reply(status: u16, content_type: Option<&'static str>, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    if let Some(ct) = content_type {
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    r
}

/// Go's `http.ServeMux` in front of the registered paths.
fn route(req: &Request<Incoming>, paths: &Paths) -> Response<Full<Bytes>> {
    let method = req.method();
    let raw_path = req.uri().path();
    let query = req.uri().query();
    let Some(path) = path_unescape(raw_path) else {
        return reply(
            400,
            Some("text/plain; charset=utf-8"),
            b"400 Bad Request".to_vec(),
        );
    };
    let clean = clean_path(&path);
    if clean != path {
        // Go's `http.Redirect`: an HTML body for GET only, its content type for GET and HEAD.
        let to = match query {
            Some(q) => format!("{clean}?{q}"),
            None => clean,
        };
        let get_or_head = method == Method::GET || method == Method::HEAD;
        let body = if method == Method::GET {
            format!("<a href=\"{to}\">Temporary Redirect</a>.\n\n")
        } else {
            String::new()
        };
        let mut r = reply(
            307,
            get_or_head.then_some("text/html; charset=utf-8"),
            body.into_bytes(),
        );
        if let Ok(v) = HeaderValue::from_str(&to) {
            r.headers_mut().insert(LOCATION, v);
        }
        return r;
    }
    match paths.get(&path) {
        Some(h) => {
            let resp = h.handle();
            reply(resp.status, Some(resp.content_type), resp.body)
        }
        None => {
            // Go's `http.NotFound` (`http.Error`).
            let mut r = reply(
                404,
                Some("text/plain; charset=utf-8"),
                b"404 page not found\n".to_vec(),
            );
            r.headers_mut().insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            r
        }
    }
}

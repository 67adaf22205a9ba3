//! The listener's HTTP/1.1 side: one request per connection, with CoreDNS's pprof server
//! timeouts (5 s to read a request, 5 s to write an answer, extended by a profile's duration),
//! and Go's `http.ServeMux` routing for the paths `net/http/pprof` registers.

use std::time::Duration;

use ferrodns_go::http::clean_path;
use ferrodns_go::url::{path_unescape, query_unescape};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::PATH;
use crate::profiles;

/// Time allowed to read a request (CoreDNS's `ReadTimeout`).
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed to write an answer (CoreDNS's `WriteTimeout`), after any profiling time.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1 << 20;

/// A request as the handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method (`GET`, `POST`, ...).
    pub method: String,
    /// The decoded, clean path.
    pub path: String,
    /// The raw query (after `?`), empty when none.
    pub query: String,
    /// The body (bounded).
    pub body: Vec<u8>,
    /// Whether the body is a form (`Content-Type: application/x-www-form-urlencoded`).
    pub form_body: bool,
}

impl Request {
    /// The first value of a parameter, decoded, as Go's `Request.FormValue` finds it (`""` when
    /// absent): a form-encoded POST, PUT or PATCH body first, then the query.
    pub fn form_value(&self, key: &str) -> String {
        let find = |text: &str| {
            text.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
                .find(|(k, _)| query_unescape(k).as_deref() == Some(key))
                .and_then(|(_, v)| query_unescape(v))
        };
        let body = matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") && self.form_body;
        body.then(|| find(&String::from_utf8_lossy(&self.body)))
            .flatten()
            .or_else(|| find(&self.query))
            .unwrap_or_default()
    }
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers besides `Content-Length` and `Connection`.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// A `text/plain` answer with `nosniff`, as `net/http/pprof`'s text handlers send.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![
                ("X-Content-Type-Options", "nosniff".into()),
                ("Content-Type", "text/plain; charset=utf-8".into()),
            ],
            body: body.into(),
        }
    }

    /// `net/http/pprof`'s error answer: the text and a newline, marked `X-Go-Pprof: 1`.
    pub fn error(status: u16, text: &str) -> Response {
        Response {
            status,
            headers: vec![
                ("X-Content-Type-Options", "nosniff".into()),
                ("Content-Type", "text/plain; charset=utf-8".into()),
                ("X-Go-Pprof", "1".into()),
            ],
            body: format!("{text}\n").into_bytes(),
        }
    }

    /// A profile download (`Content-Disposition: attachment; filename="NAME"`).
    pub fn attachment(name: &str, body: Vec<u8>) -> Response {
        Response {
            status: 200,
            headers: vec![
                ("X-Content-Type-Options", "nosniff".into()),
                ("Content-Type", "application/octet-stream".into()),
                (
                    "Content-Disposition",
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            body,
        }
    }

    /// Go's `http.Redirect`: a short HTML body for GET only.
    fn redirect(status: u16, method: &str, to: &str) -> Response {
        let mut headers = vec![("Location", to.to_string())];
        if method == "GET" || method == "HEAD" {
            headers.push(("Content-Type", "text/html; charset=utf-8".into()));
        }
        let body = if method == "GET" {
            format!("<a href=\"{to}\">{}</a>.\n\n", reason(status)).into_bytes()
        } else {
            Vec::new()
        };
        Response {
            status,
            headers,
            body,
        }
    }

    fn not_found() -> Response {
        Response {
            status: 404,
            headers: vec![
                ("Content-Type", "text/plain; charset=utf-8".into()),
                ("X-Content-Type-Options", "nosniff".into()),
            ],
            body: b"404 page not found\n".to_vec(),
        }
    }
}

/// Serve `listener` until `stop` turns true; requests in flight finish on their own.
pub async fn serve(listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
        };
        tokio::spawn(connection(stream));
    }
}

async fn connection(mut stream: TcpStream) {
    let Ok(Ok(Some(req))) = tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream)).await
    else {
        return;
    };
    let head_only = req.method == "HEAD";
    let (resp, extra) = route(&req, &mut stream).await;
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        resp.body.len()
    ));
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&resp.body);
    }
    let write = async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT + extra, write).await;
}

/// Read one request: `None` when the peer closed early or sent something too large or
/// malformed to answer.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    let body_len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_BODY);
    let form_body = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
        .is_some_and(|(_, v)| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let mut body = buf[head_len..].to_vec();
    while body.len() < body_len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(body_len);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/");
    let (raw_path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Some(Request {
        method,
        path: raw_path.to_string(),
        query: query.to_string(),
        body,
        form_body,
    }))
}

/// Route a request as CoreDNS's pprof mux does: `/debug/pprof` redirects (302) to
/// `/debug/pprof/`, which is the index and, below it, the named profiles; `cmdline`,
/// `profile`, `symbol` and `trace` have handlers of their own; everything else is 404. A path
/// that is not clean is first redirected (307) to its clean form, as Go's `ServeMux` does.
/// Returns the answer and how long profiling took (which extends the write timeout).
async fn route(req: &Request, stream: &mut TcpStream) -> (Response, Duration) {
    let Some(path) = path_unescape(&req.path) else {
        return (Response::text(400, "400 Bad Request"), Duration::ZERO);
    };
    let clean = clean_path(&req.path);
    if clean != req.path {
        let to = if req.query.is_empty() {
            clean
        } else {
            format!("{clean}?{}", req.query)
        };
        return (Response::redirect(307, &req.method, &to), Duration::ZERO);
    }
    let req = Request {
        path,
        ..req.clone()
    };
    if req.path == PATH {
        return (
            Response::redirect(302, &req.method, &format!("{PATH}/")),
            Duration::ZERO,
        );
    }
    let Some(name) = req
        .path
        .strip_prefix(PATH)
        .and_then(|p| p.strip_prefix('/'))
    else {
        return (Response::not_found(), Duration::ZERO);
    };
    match name {
        "cmdline" => (profiles::cmdline(), Duration::ZERO),
        "symbol" => {
            // Symbolizing reads the binary's debug information: not on a runtime thread.
            let r = req.clone();
            let resp = tokio::task::spawn_blocking(move || profiles::symbol(&r))
                .await
                .unwrap_or_else(|e| Response::error(500, &e.to_string()));
            (resp, Duration::ZERO)
        }
        "trace" => (profiles::trace(), Duration::ZERO),
        "profile" => {
            let secs = match req.form_value("seconds").parse::<i64>() {
                Ok(s) if s > 0 => s.unsigned_abs(),
                _ => 30,
            };
            let d = Duration::from_secs(secs);
            (profiles::cpu(d, peer_gone(stream)).await, d)
        }
        "" => (profiles::index(), Duration::ZERO),
        other => profiles::named(other, &req, peer_gone(stream)).await,
    }
}

/// Resolves when the client closes its side (Go's request context being done).
async fn peer_gone(stream: &mut TcpStream) {
    let mut b = [0u8; 512];
    loop {
        match stream.read(&mut b).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        500 => "Internal Server Error",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_read_as_go_reads_them() {
        let req = Request {
            method: "GET".into(),
            path: "/".into(),
            query: "a=1&seconds=%32&seconds=3&debug".into(),
            body: b"seconds=9&gc=1".to_vec(),
            form_body: false,
        };
        assert_eq!(req.form_value("seconds"), "2");
        assert_eq!(req.form_value("debug"), "");
        assert_eq!(req.form_value("gc"), "");
        let post = Request {
            method: "POST".into(),
            form_body: true,
            ..req.clone()
        };
        assert_eq!(post.form_value("seconds"), "9");
        assert_eq!(post.form_value("a"), "1");
        assert_eq!(post.form_value("gc"), "1");
    }
}

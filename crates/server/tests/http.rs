//! The shared HTTP listener over real sockets: keep-alive, HEAD, bounded heads and idle time,
//! and Go's `ServeMux` rules around the registered paths.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrodns_plugin::{HttpHandler, HttpResponse};
use ferrodns_server::http::{Limits, serve_with};
use tokio::sync::watch;

struct Ok200;

impl HttpHandler for Ok200 {
    fn handle(&self) -> HttpResponse {
        HttpResponse::text(200, "OK")
    }
}

/// A listener on 127.0.0.1:0 serving `/health`, on its own runtime thread.
struct Listener {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    _rt: tokio::runtime::Runtime,
}

fn listen(limits: Limits) -> Listener {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = watch::channel(false);
    let addr = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut paths: BTreeMap<String, Arc<dyn HttpHandler>> = BTreeMap::new();
        paths.insert("/health".into(), Arc::new(Ok200));
        tokio::spawn(serve_with(l, paths, rx, limits));
        addr
    });
    Listener {
        addr,
        stop: tx,
        _rt: rt,
    }
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    BufReader::new(c)
}

/// One response read by its `Content-Length`: status, lowercased headers, body.
fn response(r: &mut BufReader<TcpStream>, head_only: bool) -> (u16, Vec<(String, String)>, String) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; if head_only { 0 } else { len }];
    r.read_exact(&mut body).unwrap();
    (status, headers, String::from_utf8(body).unwrap())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn send(r: &mut BufReader<TcpStream>, text: &str) {
    r.get_mut().write_all(text.as_bytes()).unwrap();
}

/// The connection is closed by the server (EOF) within the read timeout.
fn closed(r: &mut BufReader<TcpStream>) -> bool {
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).is_ok() && rest.is_empty()
}

#[test]
fn two_requests_share_one_connection() {
    let l = listen(Limits::default());
    let mut c = connect(l.addr);
    send(&mut c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, headers, body) = response(&mut c, false);
    assert_eq!((status, body.as_str()), (200, "OK"));
    assert_eq!(header(&headers, "content-length"), Some("2"));
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(header(&headers, "date").is_some(), "{headers:?}");
    send(&mut c, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, headers, body) = response(&mut c, false);
    assert_eq!((status, body.as_str()), (404, "404 page not found\n"));
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    // Connection: close is honoured after the answer.
    send(
        &mut c,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response(&mut c, false).0, 200);
    assert!(closed(&mut c));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let l = listen(Limits::default());
    let mut c = connect(l.addr);
    send(
        &mut c,
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(response(&mut c, false).0, 200);
    assert_eq!(response(&mut c, false).0, 404);
}

#[test]
fn head_gets_the_headers_and_no_body() {
    let l = listen(Limits::default());
    let mut c = connect(l.addr);
    send(&mut c, "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, headers, _) = response(&mut c, true);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-length"), Some("2"));
    // No body was sent: the next answer on the connection starts right away.
    send(&mut c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, _, body) = response(&mut c, false);
    assert_eq!((status, body.as_str()), (200, "OK"));
    // HEAD of an unclean path: the redirect's headers, its content type, no body.
    send(&mut c, "HEAD //health HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, headers, _) = response(&mut c, true);
    assert_eq!(status, 307);
    assert_eq!(header(&headers, "location"), Some("/health"));
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
}

#[test]
fn serve_mux_rules() {
    let l = listen(Limits::default());
    let mut c = connect(l.addr);
    let mut ask = |method: &str, target: &str| {
        send(
            &mut c,
            &format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n"),
        );
        response(&mut c, false)
    };
    for method in ["GET", "POST", "DELETE"] {
        assert_eq!(ask(method, "/health").2, "OK", "{method}");
    }
    assert_eq!(ask("GET", "/heal%74h?verbose=1").0, 200);
    assert_eq!(ask("GET", "/health/").0, 404);
    assert_eq!(ask("GET", "/").0, 404);
    let (status, headers, body) = ask("GET", "//health?a=b");
    assert_eq!(status, 307);
    assert_eq!(header(&headers, "location"), Some("/health?a=b"));
    assert_eq!(body, "<a href=\"/health?a=b\">Temporary Redirect</a>.\n\n");
    let (status, headers, body) = ask("POST", "/x/../health");
    assert_eq!((status, body.as_str()), (307, ""));
    assert_eq!(header(&headers, "location"), Some("/health"));
    assert_eq!(header(&headers, "content-type"), None);
    let (status, _, body) = ask("GET", "/%zz");
    assert_eq!((status, body.as_str()), (400, "400 Bad Request"));
}

#[test]
fn http_1_0_closes_after_the_answer() {
    let l = listen(Limits::default());
    let mut c = connect(l.addr);
    send(&mut c, "GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(response(&mut c, false).2, "OK");
    assert!(closed(&mut c));
}

#[test]
fn an_oversized_head_is_refused() {
    let l = listen(Limits::default());
    let mut c = connect(l.addr);
    let big = "a".repeat(20 * 1024);
    // The server may answer and close before it has read everything: ignore write errors.
    let _ = c
        .get_mut()
        .write_all(format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes());
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 431"), "{out}");
    assert!(!out.contains("\r\n\r\nOK"), "{out}");
    // A head just under the bound is served.
    let mut c = connect(l.addr);
    let fits = "a".repeat(12 * 1024);
    send(
        &mut c,
        &format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {fits}\r\n\r\n"),
    );
    assert_eq!(response(&mut c, false).0, 200);
}

#[test]
fn an_idle_or_slow_connection_is_closed() {
    let l = listen(Limits {
        header_read: Duration::from_millis(300),
        ..Limits::default()
    });
    // Idle after an answer.
    let mut c = connect(l.addr);
    send(&mut c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response(&mut c, false).0, 200);
    let t = Instant::now();
    assert!(closed(&mut c));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // A head that never ends.
    let mut c = connect(l.addr);
    send(&mut c, "GET /health HTTP/1.1\r\nHost: x\r\n");
    let t = Instant::now();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(!String::from_utf8_lossy(&out).contains("200 OK"));
}

#[test]
fn stopping_closes_kept_alive_connections() {
    let l = listen(Limits::default());
    let mut c = connect(l.addr);
    send(&mut c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response(&mut c, false).0, 200);
    l.stop.send(true).unwrap();
    let t = Instant::now();
    assert!(closed(&mut c));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // The accept loop ends too, and the listener is closed with it.
    let t = Instant::now();
    while TcpStream::connect(l.addr).is_ok() {
        assert!(t.elapsed() < Duration::from_secs(3), "still accepting");
        std::thread::sleep(Duration::from_millis(20));
    }
}

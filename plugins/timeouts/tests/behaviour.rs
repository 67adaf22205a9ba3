//! What timeouts does at run time, with a real server and a real TCP client: a connection that
//! stays silent, sends slowly or idles between queries is closed after the configured time, not
//! the default one; `maxtcpqueries` closes a connection after that many queries.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{Metrics, Registry};
use ferrodns_server::{Server, Source, load};

/// Bound on any blocking read (a test failure, not a wait).
const IO_TIMEOUT: Duration = Duration::from_secs(20);

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add(ferrodns_plugin_timeouts::DESCRIPTOR);
    r.add(ferrodns_plugin_whoami::DESCRIPTOR);
    r
}

async fn start(corefile: &str) -> (Server, SocketAddr) {
    let source = Source {
        filename: "Corefile".into(),
        text: corefile.as_bytes().to_vec(),
        default_port: "53".into(),
    };
    let instance = load(source, &registry(), &Metrics::new(), None).expect("load");
    let server = Server::start(instance).await.expect("start");
    let addr = SocketAddr::from(([127, 0, 0, 1], server.listeners()[0].addr.port()));
    (server, addr)
}

fn framed(id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii("example.org.").unwrap(),
        RecordType::A,
    ));
    let b = m.to_vec().unwrap();
    let mut out = (b.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&b);
    out
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Send a query and read its reply on `s`.
fn exchange(s: &mut TcpStream, id: u16) {
    s.write_all(&framed(id)).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).unwrap();
    let r = Message::from_vec(&buf).unwrap();
    assert_eq!(r.metadata.id, id);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
}

/// Block until the server closes `s`; how long that took from `since`.
fn closed_after(s: &mut TcpStream, since: Instant) -> Duration {
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => since.elapsed(),
        Ok(_) => panic!("unexpected bytes"),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => since.elapsed(),
        Err(e) => panic!("the server did not close the connection: {e}"),
    }
}

fn assert_about(got: Duration, want: Duration) {
    assert!(
        got >= want - Duration::from_millis(100) && got < want + Duration::from_millis(1500),
        "closed after {got:?}, expected about {want:?}"
    );
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_read_timeout() {
    let (server, addr) = start(".:0 {\n timeouts {\n  read 1s\n }\n whoami\n}\n").await;
    let took = blocking(move || {
        let mut s = connect(addr);
        closed_after(&mut s, Instant::now())
    })
    .await;
    assert_about(took, Duration::from_secs(1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sender_gets_one_deadline_for_the_whole_message() {
    let (server, addr) = start(".:0 {\n timeouts {\n  read 2s\n }\n whoami\n}\n").await;
    let took = blocking(move || {
        let mut s = connect(addr);
        let start = Instant::now();
        let q = framed(1);
        // The length and a few bytes, then nothing more: the deadline runs from the start.
        s.write_all(&q[..5]).unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        s.write_all(&q[5..7]).unwrap();
        closed_after(&mut s, start)
    })
    .await;
    assert_about(took, Duration::from_secs(2));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let (server, addr) = start(".:0 {\n timeouts {\n  idle 1s\n }\n whoami\n}\n").await;
    let took = blocking(move || {
        let mut s = connect(addr);
        exchange(&mut s, 1);
        exchange(&mut s, 2);
        closed_after(&mut s, Instant::now())
    })
    .await;
    assert_about(took, Duration::from_secs(1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_timeouts_the_defaults_hold() {
    let (server, addr) = start(".:0 {\n whoami\n}\n").await;
    let took = blocking(move || {
        let mut s = connect(addr);
        closed_after(&mut s, Instant::now())
    })
    .await;
    assert_about(took, Duration::from_secs(3));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxtcpqueries_closes_after_that_many_queries() {
    let (server, addr) = start(".:0 {\n timeouts {\n  maxtcpqueries 2\n }\n whoami\n}\n").await;
    let took = blocking(move || {
        let mut s = connect(addr);
        exchange(&mut s, 1);
        exchange(&mut s, 2);
        // Closed right after the second reply, not after the idle timeout.
        closed_after(&mut s, Instant::now())
    })
    .await;
    assert!(took < Duration::from_millis(900), "closed after {took:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_sharing_a_listener_the_last_setting_wins() {
    // Both blocks on one port: the first sets read 5s, the second read 1s; the listener uses
    // 1s (CoreDNS applies each block's values in file order).
    let (server, addr) = start(
        "a.example:0 {\n timeouts {\n  read 5s\n }\n whoami\n}\nb.example:0 {\n timeouts {\n  read 1s\n }\n whoami\n}\n",
    )
    .await;
    assert_eq!(server.listeners().len(), 1, "one listener for both blocks");
    let took = blocking(move || {
        let mut s = connect(addr);
        closed_after(&mut s, Instant::now())
    })
    .await;
    assert_about(took, Duration::from_secs(1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_gives_new_connections_the_new_settings() {
    // A fixed port, so that the reload keeps the listener and hands it the new settings.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let corefile =
        |read: &str| format!(".:{port} {{\n timeouts {{\n  read {read}\n }}\n whoami\n}}\n");
    let (mut server, addr) = start(&corefile("1s")).await;
    let source = Source {
        filename: "Corefile".into(),
        text: corefile("2s").into_bytes(),
        default_port: "53".into(),
    };
    let next = load(source, &registry(), &Metrics::new(), None).expect("load");
    server.reload(next).await.expect("reload");
    assert_eq!(server.listeners()[0].addr.port(), port);
    let took = blocking(move || {
        let mut s = connect(addr);
        closed_after(&mut s, Instant::now())
    })
    .await;
    assert_about(took, Duration::from_secs(2));
    server.stop().await;
}

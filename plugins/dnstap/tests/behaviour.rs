//! The dnstap plugin at work: receivers in the test speak Frame Streams over a unix socket and
//! TCP, decode the protobuf and check what CoreDNS v1.14.7 would send.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrodns_plugin::proto::op::Message;
use ferrodns_plugin::proto::rr::RecordType;
use ferrodns_plugin::{Plugin, Shared};
use ferrodns_plugin_dnstap::io::{Endpoint, Outgoing, Transport};
use ferrodns_plugin_dnstap::proto::{Dnstap, MessageType, SocketFamily, SocketProtocol};
use ferrodns_plugin_dnstap::{DESCRIPTOR, fstrm};
use ferrodns_plugin_test::{self as testkit};
use ferrodns_plugin_whoami::Whoami;
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// Read one receiver connection to its end, sending each decoded frame; the last item is
/// `None` when the writer closed with STOP/FINISH.
async fn read_stream<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    tx: mpsc::UnboundedSender<Option<Dnstap>>,
) {
    fstrm::open_reader(&mut s).await.expect("handshake");
    while let Ok(Some(data)) = fstrm::next_data(&mut s).await {
        let _ = tx.send(Some(Dnstap::decode(&data[..]).expect("protobuf")));
    }
    let _ = tx.send(None);
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Option<Dnstap>>) -> Option<Dnstap> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a frame within 10s")
        .expect("receiver alive")
}

async fn start(directives: &str) -> (Shared, Arc<dyn Plugin>) {
    let shared = Shared::default();
    let block = testkit::setup_with(&DESCRIPTOR, directives, &shared).expect("setup");
    for l in shared.lifecycles() {
        l.on_startup().await.expect("startup");
    }
    (shared, block.plugins[0].clone())
}

async fn stop(shared: &Shared) {
    for l in shared.lifecycles() {
        l.on_final_shutdown().await;
    }
}

#[tokio::test]
async fn unix_receiver_full_with_identity_version_extra() {
    let dir = testkit::TempDir::new("dnstap-unix");
    let path = dir.file("tap.sock");
    let ln = tokio::net::UnixListener::bind(&path).expect("bind");
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (s, _) = ln.accept().await.expect("accept");
        read_stream(s, tx).await;
    });
    let (shared, tap) = start(&format!(
        "dnstap unix://{path} full {{\n identity id-1\n version ver-1\n extra \"{{type}} {{name}} {{proto}} {{rcode}}\"\n}}"
    ))
    .await;
    let mut req = testkit::request("example.org.", RecordType::A);
    let chain: Vec<Arc<dyn Plugin>> = vec![tap, Arc::new(Whoami)];
    testkit::run(&chain, &mut req).await.expect("served");

    let q = next(&mut rx).await.expect("query frame");
    assert_eq!(q.identity.as_deref(), Some(&b"id-1"[..]));
    assert_eq!(q.version.as_deref(), Some(&b"ver-1"[..]));
    assert_eq!(q.extra.as_deref(), Some(&b"A example.org. udp -"[..]));
    let m = q.message.clone().expect("message");
    let query_time = m.query_time_sec;
    assert_eq!(m.r#type, MessageType::ClientQuery as i32);
    assert_eq!(m.socket_family, Some(SocketFamily::Inet as i32));
    assert_eq!(m.socket_protocol, Some(SocketProtocol::Udp as i32));
    assert_eq!(m.query_address.as_deref(), Some(&[127, 0, 0, 1][..]));
    assert_eq!(m.query_port, Some(40212));
    assert!(m.query_time_sec.is_some() && m.query_time_nsec.is_some());
    assert!(m.response_time_sec.is_none());
    assert_eq!(m.query_message.as_deref(), Some(&req.raw[..]));

    let r = next(&mut rx).await.expect("response frame");
    let m = r.message.expect("message");
    assert_eq!(m.r#type, MessageType::ClientResponse as i32);
    assert_eq!(m.query_port, Some(40212));
    assert!(m.response_time_sec.is_some());
    assert_eq!(m.query_time_sec, query_time);
    let reply = Message::from_vec(m.response_message.as_deref().expect("bytes")).expect("dns");
    assert_eq!(reply.metadata.id, 4242);
    assert_eq!(reply.additionals.len(), 2);

    // Shutdown ends the stream with STOP, answered with FINISH.
    stop(&shared).await;
    assert!(next(&mut rx).await.is_none());
}

#[tokio::test]
async fn tcp_receiver_without_full() {
    let ln = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = ln.local_addr().expect("addr");
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (s, _) = ln.accept().await.expect("accept");
        read_stream(s, tx).await;
    });
    let (shared, tap) = start(&format!("dnstap tcp://{addr} {{\n identity x\n}}")).await;
    let chain: Vec<Arc<dyn Plugin>> = vec![tap, Arc::new(Whoami)];
    let mut req = testkit::from_message(
        testkit::request("a.example.", RecordType::AAAA)
            .message()
            .clone(),
        ferrodns_plugin::Protocol::Tcp,
    );
    testkit::run(&chain, &mut req).await.expect("served");
    for want in [MessageType::ClientQuery, MessageType::ClientResponse] {
        let f = next(&mut rx).await.expect("frame");
        assert_eq!(f.identity.as_deref(), Some(&b"x"[..]));
        assert_eq!(f.extra, None);
        let m = f.message.expect("message");
        assert_eq!(m.r#type, want as i32);
        assert_eq!(m.socket_protocol, Some(SocketProtocol::Tcp as i32));
        assert_eq!(m.query_message, None);
        assert_eq!(m.response_message, None);
    }
    stop(&shared).await;
}

#[tokio::test]
async fn reconnects_after_the_receiver_goes_away() {
    let ln = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = ln.local_addr().expect("addr");
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        // The first connection is closed after its handshake; the second is read.
        let (mut s, _) = ln.accept().await.expect("accept");
        fstrm::open_reader(&mut s).await.expect("handshake");
        drop(s);
        let (s, _) = ln.accept().await.expect("accept again");
        read_stream(s, tx).await;
    });
    let (shared, tap) = start(&format!("dnstap tcp://{addr}")).await;
    let chain: Vec<Arc<dyn Plugin>> = vec![tap, Arc::new(Whoami)];
    // Keep querying until frames arrive over the new connection (writes to the closed one
    // fail and trigger the redial).
    let mut got = None;
    for _ in 0..100 {
        let mut req = testkit::request("example.org.", RecordType::A);
        testkit::run(&chain, &mut req).await.expect("served");
        if let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
            got = f;
            break;
        }
    }
    assert!(got.is_some(), "frames after reconnecting");
    stop(&shared).await;
}

#[tokio::test]
async fn listener_sends_to_connected_receivers() {
    let dir = testkit::TempDir::new("dnstap-listen");
    let path = dir.file("listen.sock");
    let (shared, tap) = start(&format!("dnstap listen unix://{path} full")).await;
    let s = tokio::net::UnixStream::connect(&path)
        .await
        .expect("connect");
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(read_stream(s, tx));
    let chain: Vec<Arc<dyn Plugin>> = vec![tap, Arc::new(Whoami)];
    // The receiver joins once its handshake is done: query until a frame comes.
    let mut first = None;
    for _ in 0..100 {
        let mut req = testkit::request("example.org.", RecordType::A);
        testkit::run(&chain, &mut req).await.expect("served");
        if let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
            first = f;
            break;
        }
    }
    let m = first.expect("a frame").message.expect("message");
    assert_eq!(m.r#type, MessageType::ClientQuery as i32);
    assert!(m.query_message.is_some());
    stop(&shared).await;
    // The socket file goes with the listener.
    for _ in 0..100 {
        if !std::path::Path::new(&path).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!std::path::Path::new(&path).exists());
}

#[tokio::test]
async fn a_full_queue_drops_and_counts() {
    let out = Outgoing::new(
        Endpoint {
            transport: Transport::Unix,
            address: "/nonexistent/dnstap.sock".into(),
        },
        2,
        1 << 20,
        false,
    );
    for _ in 0..5 {
        out.send(Bytes::from_static(b"frame"));
    }
    assert_eq!(out.dropped(), 3);
    // Dialling a missing socket fails with Go's wording, and sending still never blocks.
    let err = out.connect().await.expect_err("no receiver");
    assert_eq!(
        err,
        "dial unix /nonexistent/dnstap.sock: connect: no such file or directory"
    );
    out.send(Bytes::from_static(b"frame"));
    out.close();
}

#[tokio::test]
async fn a_closed_listener_frees_its_address_for_the_next_instance() {
    use ferrodns_plugin_dnstap::io::Listener;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let ep = Endpoint {
        transport: Transport::Tcp,
        address: format!("127.0.0.1:{port}"),
    };
    let first = Listener::new(ep.clone());
    assert_eq!(first.listen().await, Ok(true));
    // A second listener on a busy address fails with Go's wording.
    let busy = Listener::new(ep.clone());
    assert_eq!(
        busy.listen().await,
        Err(format!(
            "listen tcp 127.0.0.1:{port}: bind: address already in use"
        ))
    );
    // As on reload: the old instance closes, the new one listens on the same address.
    first.close_and_wait().await;
    let second = Listener::new(ep);
    assert_eq!(second.listen().await, Ok(true));
    second.close_and_wait().await;
}

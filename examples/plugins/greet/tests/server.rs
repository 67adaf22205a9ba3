//! The greet plugin in a real ferrodns server: a Corefile loaded with a registry holding only
//! greet, a listener on a port the kernel picks, and a TXT query over UDP from a plain socket.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use ferrodns_example_greet::DESCRIPTOR;
use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RData, RecordType};
use ferrodns_plugin::{Descriptor, Metrics, Registry, Setup, SetupError};
use ferrodns_plugin_test::Fixed;
use ferrodns_server::{Server, Source, load};

const COREFILE: &str = r#".:0 {
    greet example.org {
        text "hello from ferrodns"
        ttl 5
    }
}
"#;

/// Send one query for `name`/`qtype` over UDP from 127.0.0.1 and return the reply.
fn exchange(server: SocketAddr, id: u16, name: &str, qtype: RecordType) -> Message {
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a client socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    socket
        .send_to(&query.to_vec().expect("encode"), server)
        .expect("send");
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).expect("a reply within 10 s");
    let reply = Message::from_vec(&buf[..n]).expect("the reply decodes");
    assert_eq!(reply.metadata.id, id);
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txt_query_over_udp_is_answered_with_the_client_address() {
    let mut registry = Registry::new();
    registry.add(DESCRIPTOR);
    let metrics = Metrics::new();
    registry.register_metrics(&metrics);
    let source = Source {
        filename: "Corefile".into(),
        text: COREFILE.as_bytes().to_vec(),
        default_port: "53".into(),
    };
    let instance = load(source, &registry, &metrics, None).expect("the Corefile loads");
    let server = Server::start(instance).await.expect("the server starts");
    let listener = &server.listeners()[0];
    let addr = SocketAddr::from(([127, 0, 0, 1], listener.addr.port()));
    let label = listener.label.clone();

    let (txt, nodata) = tokio::task::spawn_blocking(move || {
        (
            exchange(addr, 1, "www.example.org.", RecordType::TXT),
            exchange(addr, 2, "www.example.org.", RecordType::A),
        )
    })
    .await
    .expect("the client thread");

    assert_eq!(txt.metadata.response_code, ResponseCode::NoError);
    assert!(txt.metadata.authoritative);
    assert_eq!(txt.answers.len(), 1, "{txt:?}");
    let rr = &txt.answers[0];
    assert_eq!(rr.name.to_ascii(), "www.example.org.");
    assert_eq!(rr.ttl, 5);
    let RData::TXT(data) = &rr.data else {
        panic!("not a TXT record: {rr:?}");
    };
    let text: Vec<String> = data
        .txt_data
        .iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    // The listener may be dual-stack; the client is still written as IPv4.
    assert_eq!(text, ["hello from ferrodns, 127.0.0.1"]);

    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());

    // One answer counted, under the listener's label.
    let series = format!("coredns_greet_answers_total{{server=\"{label}\"}} 1");
    let exposition = metrics.encode();
    assert!(
        exposition.lines().any(|l| l == series),
        "{series} in:\n{exposition}"
    );

    server.stop().await;
}

/// A stand-in for a plugin of the project's that this crate does not depend on: it reads its
/// lines and answers everything with NOERROR.
fn stand_in(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {}
    c.add_plugin(Fixed::rcode(ResponseCode::NoError));
    Ok(())
}

#[test]
fn the_shipped_corefile_loads() {
    // The Corefile next to this crate, with greet and stand-ins for whoami and log. Loading
    // runs every setup (so greet's block is checked) without opening a socket.
    let mut registry = Registry::new();
    registry.add(DESCRIPTOR);
    registry.add(Descriptor::new("whoami", stand_in));
    registry.add(Descriptor::new("log", stand_in));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/Corefile");
    let source = Source {
        filename: path.into(),
        text: std::fs::read(path).expect("read the Corefile"),
        default_port: "53".into(),
    };
    if let Err(e) = load(source, &registry, &Metrics::new(), None) {
        panic!("{path}: {e}");
    }
}

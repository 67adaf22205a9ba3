//! forward with dnstap in its block: FORWARDER_QUERY and FORWARDER_RESPONSE go through the
//! block's taps (set up first, as in the chain order), with the client's address on the query
//! side and the upstream's on the response side.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Act, Fake, ok};
use ferrodns_plugin::proto::rr::RecordType;
use ferrodns_plugin::{Plugin, Protocol, Setup, Shared};
use ferrodns_plugin_dnstap::fstrm;
use ferrodns_plugin_dnstap::proto::{Dnstap, MessageType, SocketProtocol};
use ferrodns_plugin_test as testkit;
use prost::Message as _;
use tokio::sync::mpsc;

#[tokio::test]
async fn forwarder_messages_through_the_blocks_taps() {
    let up = Fake::start(|q, _| Act::Reply(ok(q))).await;
    let ln = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let tap_addr = ln.local_addr().expect("addr");
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut s, _) = ln.accept().await.expect("accept");
        fstrm::open_reader(&mut s).await.expect("handshake");
        while let Ok(Some(d)) = fstrm::next_data(&mut s).await {
            let _ = tx.send(Dnstap::decode(&d[..]).expect("protobuf"));
        }
    });
    let tap_line = format!("dnstap tcp://{tap_addr} full");
    let forward_lines = format!("forward . {} {{\n force_tcp\n}}", up.addr);
    let shared = Shared::default();
    let mut block = testkit::block(&["."]);
    for (name, text, d) in [
        ("dnstap", &tap_line, &ferrodns_plugin_dnstap::DESCRIPTOR),
        (
            "forward",
            &forward_lines,
            &ferrodns_plugin_forward::DESCRIPTOR,
        ),
    ] {
        let disp = testkit::dispenser(name, text).expect("tokens");
        let mut c = Setup::new(disp, &mut block, &shared);
        (d.setup)(&mut c).expect("setup");
    }
    for l in shared.lifecycles() {
        l.on_startup().await.expect("startup");
    }
    let chain: Vec<Arc<dyn Plugin>> = block.plugins.clone();
    assert_eq!(chain.len(), 2);
    let mut req = testkit::request("example.org.", RecordType::A);
    testkit::run(&chain, &mut req).await.expect("served");

    let mut got = Vec::new();
    while got.len() < 4 {
        let f = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("frames within 10s")
            .expect("receiver alive");
        got.push(f.message.expect("message"));
    }
    let kinds: Vec<i32> = got.iter().map(|m| m.r#type).collect();
    assert_eq!(
        kinds,
        vec![
            MessageType::ClientQuery as i32,
            MessageType::ForwarderQuery as i32,
            MessageType::ForwarderResponse as i32,
            MessageType::ClientResponse as i32,
        ]
    );
    let up_ip = match up.addr.ip() {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    for m in &got[1..3] {
        // force_tcp: the exchange's protocol, not the client's (UDP).
        assert_eq!(m.socket_protocol, Some(SocketProtocol::Tcp as i32));
        assert_eq!(m.query_address.as_deref(), Some(&[127, 0, 0, 1][..]));
        assert_eq!(m.query_port, Some(40212));
        assert_eq!(m.response_address.as_deref(), Some(&up_ip[..]));
        assert_eq!(m.response_port, Some(u32::from(up.addr.port())));
        assert!(m.query_time_sec.is_some());
    }
    assert_eq!(got[1].query_message.as_deref(), Some(&req.raw[..]));
    assert!(got[1].response_time_sec.is_none());
    let reply = got[2].response_message.as_deref().expect("reply bytes");
    assert_eq!(&reply[..2], &req.id().to_be_bytes());
    assert!(got[2].response_time_sec.is_some());
    assert_eq!(got[0].socket_protocol, Some(SocketProtocol::Udp as i32));
    let _ = Protocol::Udp;
    for l in shared.lifecycles() {
        l.on_final_shutdown().await;
    }
}

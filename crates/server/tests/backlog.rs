//! A stall of the slow path longer than a socket's places in flight can hold (an upstream that
//! pauses while misses keep coming) costs no query: the ones past the places wait in the
//! socket's backlog and are answered, every one, once the chain moves again. (The backlog's
//! gauge and the gate are the process's, so this file holds one test.)

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{gated, open, wait_for};
use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{Metrics, Registry};
use ferrodns_server::dispatch::MAX_IN_FLIGHT;
use ferrodns_server::udp;
use ferrodns_server::{Server, Source, load};

fn query(i: usize) -> Vec<u8> {
    let mut m = Message::new(i as u16, MessageType::Query, OpCode::Query);
    let name = Name::from_ascii(format!("q{i}.gate.")).unwrap();
    m.add_query(Query::query(name, RecordType::A));
    m.to_vec().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_past_the_places_in_flight_is_answered_in_full_once_it_ends() {
    let mut registry = Registry::new();
    registry.add(common::descriptor());
    let source = Source {
        filename: "Corefile".into(),
        text: b".:0 {\n gate\n}\n".to_vec(),
        default_port: "53".into(),
    };
    let instance = load(source, &registry, &Metrics::new(), None).unwrap();
    let server = Server::start(instance).await.unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], server.listeners()[0].addr.port()));

    let answers = tokio::task::spawn_blocking(move || {
        // One client socket: SO_REUSEPORT sends all of it to one of the server's sockets.
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let total = MAX_IN_FLIGHT + 3000;
        // The stall: every place in flight taken, then 3,000 more waiting. Sent in steps small
        // enough for the socket buffers, each waited for.
        for chunk in (0..total).collect::<Vec<_>>().chunks(64) {
            for &i in chunk {
                client.send_to(&query(i), addr).unwrap();
            }
            let sent = chunk[chunk.len() - 1] + 1;
            wait_for("queries did not reach the chain or the backlog", || {
                gated() + udp::parked() >= sent
            });
        }
        assert_eq!(gated(), MAX_IN_FLIGHT);
        assert_eq!(udp::parked(), total - MAX_IN_FLIGHT);
        client
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 512];
        assert!(client.recv_from(&mut buf).is_err(), "nothing answered yet");

        // The chain moves again, 64 queries at a time (the client's buffer is the default).
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut answers = Vec::with_capacity(total);
        while answers.len() < total {
            let step = 64.min(total - answers.len());
            open(step);
            for _ in 0..step {
                let (n, _) = client.recv_from(&mut buf).expect("an answer");
                let r = Message::from_vec(&buf[..n]).unwrap();
                answers.push((r.metadata.id, r.metadata.response_code));
            }
        }
        assert_eq!(udp::parked(), 0);
        answers
    })
    .await
    .unwrap();

    let total = MAX_IN_FLIGHT + 3000;
    let refused = answers
        .iter()
        .filter(|(_, rc)| *rc != ResponseCode::NXDomain)
        .count();
    assert_eq!(refused, 0, "every query is answered by the chain");
    let ids: HashSet<u16> = answers.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), total, "each query once");
    assert_eq!(gated(), total);
    server.stop().await;
}

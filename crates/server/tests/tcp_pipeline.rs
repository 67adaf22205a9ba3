//! Pipelined TCP queries (RFC 7766, 6.2.1.1): each is answered as soon as it is ready, so a slow
//! one does not hold up those sent after it on the same connection; at most `MAX_PIPELINED` of
//! a connection, and `MAX_IN_FLIGHT` of a listener, are worked on at once, and the rest wait in
//! the stream, none lost. (The gate is the process's, so this file holds one test.)

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{gated, open, wait_for};
use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{Metrics, Registry};
use ferrodns_server::dispatch::MAX_IN_FLIGHT;
use ferrodns_server::tcp::MAX_PIPELINED;
use ferrodns_server::{Server, Source, load};

fn frame(name: &str, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let wire = m.to_vec().unwrap();
    let mut out = (wire.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&wire);
    out
}

/// The next answer's ID and rcode.
fn answer(c: &mut TcpStream) -> (u16, ResponseCode) {
    let mut len = [0u8; 2];
    c.read_exact(&mut len).expect("an answer");
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    c.read_exact(&mut buf).unwrap();
    let m = Message::from_vec(&buf).unwrap();
    (m.metadata.id, m.metadata.response_code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_are_answered_as_each_is_ready_and_none_is_lost() {
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

    tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // A query held at the gate, then one answered at once: the second answer comes first.
        c.write_all(&frame("held.gate.", 1)).unwrap();
        wait_for("the held query reached the chain", || gated() == 1);
        c.write_all(&frame("quick.example.", 2)).unwrap();
        assert_eq!(answer(&mut c), (2, ResponseCode::NXDomain));
        open(1);
        assert_eq!(answer(&mut c), (1, ResponseCode::NXDomain));

        // More held queries than a connection works on at once: the rest wait in the stream.
        let extra = 8;
        let mut all = Vec::new();
        for i in 0..MAX_PIPELINED + extra {
            all.extend_from_slice(&frame(&format!("q{i}.gate."), 100 + i as u16));
        }
        c.write_all(&all).unwrap();
        wait_for("a connection's share reached the chain", || {
            gated() == 1 + MAX_PIPELINED
        });
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            gated(),
            1 + MAX_PIPELINED,
            "no more than MAX_PIPELINED at once"
        );
        open(MAX_PIPELINED + extra);
        let mut ids: Vec<u16> = (0..MAX_PIPELINED + extra)
            .map(|_| {
                let (id, rc) = answer(&mut c);
                assert_eq!(rc, ResponseCode::NXDomain);
                id
            })
            .collect();
        ids.sort_unstable();
        let want: Vec<u16> = (0..MAX_PIPELINED + extra).map(|i| 100 + i as u16).collect();
        assert_eq!(ids, want, "each query answered once");

        // More held queries over all connections than the listener works on at once: the
        // connections past it wait to be read, and every query is answered once the chain moves.
        let base = gated();
        let conns = MAX_IN_FLIGHT / MAX_PIPELINED + 2;
        let mut clients: Vec<TcpStream> = (0..conns)
            .map(|k| {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut all = Vec::new();
                for i in 0..MAX_PIPELINED {
                    let id = (k * MAX_PIPELINED + i) as u16;
                    all.extend_from_slice(&frame(&format!("c{k}q{i}.gate."), id));
                }
                c.write_all(&all).unwrap();
                c
            })
            .collect();
        wait_for("the listener's share reached the chain", || {
            gated() == base + MAX_IN_FLIGHT
        });
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            gated(),
            base + MAX_IN_FLIGHT,
            "no more than MAX_IN_FLIGHT at once"
        );
        open(conns * MAX_PIPELINED);
        for (k, c) in clients.iter_mut().enumerate() {
            let mut ids: Vec<u16> = (0..MAX_PIPELINED).map(|_| answer(c).0).collect();
            ids.sort_unstable();
            let want: Vec<u16> = (0..MAX_PIPELINED)
                .map(|i| (k * MAX_PIPELINED + i) as u16)
                .collect();
            assert_eq!(ids, want, "connection {k}: each query answered once");
        }
        assert_eq!(gated(), base + conns * MAX_PIPELINED);
    })
    .await
    .unwrap();
    server.stop().await;
}

//! A UDP socket whose places in flight and backlog are full (a chain that never answers: a
//! silent upstream) refuses what comes next and goes on reading: a query the fast path can
//! answer (a cache hit) behind thousands of stuck ones is still answered at once.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{
    Descriptor, FastAnswer, FastHook, Metrics, Next, Plugin, PluginError, Registry, Reply, Request,
    Setup, SetupError, WireQuery, async_trait,
};
use ferrodns_server::dispatch::MAX_IN_FLIGHT;
use ferrodns_server::udp::{self, BACKLOG_BYTES, PARKED_COST};
use ferrodns_server::{Server, Source, load};

/// Queries that reached `Stuck::serve`.
static STUCK: AtomicUsize = AtomicUsize::new(0);

/// Answers names under `fast.` from its fast hook (NXDOMAIN); anything else waits forever.
struct Stuck;

impl FastHook for Stuck {
    fn answer(&self, q: &WireQuery<'_>, out: &mut Vec<u8>) -> FastAnswer {
        if !q.qname.starts_with(b"\x04fast") {
            return FastAnswer::Pass;
        }
        out.extend_from_slice(&q.packet[..q.question_end]);
        out[2] |= 0x80;
        out[3] = (out[3] & 0xf0) | 3;
        out[10] = 0;
        out[11] = 0;
        FastAnswer::Answered
    }
}

#[async_trait]
impl Plugin for Stuck {
    fn name(&self) -> &'static str {
        "stuck"
    }
    async fn serve(&self, _req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        STUCK.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }
    fn fast_hook(&self) -> Option<&dyn FastHook> {
        Some(self)
    }
}

fn stuck_setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {}
    c.add_plugin(Arc::new(Stuck));
    Ok(())
}

fn query(name: &str, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_in_flight_share_refuses_and_keeps_answering_the_fast_path() {
    let mut registry = Registry::new();
    registry.add(Descriptor::new("stuck", stuck_setup));
    let source = Source {
        filename: "Corefile".into(),
        text: b".:0 {\n stuck\n}\n".to_vec(),
        default_port: "53".into(),
    };
    let instance = load(source, &registry, &Metrics::new(), None).unwrap();
    let server = Server::start(instance).await.unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], server.listeners()[0].addr.port()));

    let outcome = tokio::task::spawn_blocking(move || {
        // One client socket: SO_REUSEPORT sends all of it to one of the server's sockets.
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        // Every query is as long as the first (five-digit labels), so the backlog's room is
        // known.
        let fits = BACKLOG_BYTES / (query("s00000.example.", 0).len() + PARKED_COST);
        let held = MAX_IN_FLIGHT + fits;
        let stuck = held + 200;
        let mut buf = [0u8; 512];
        // Fill the share, in steps small enough for the socket buffers, each waited for.
        for chunk in (0..MAX_IN_FLIGHT).collect::<Vec<_>>().chunks(64) {
            for &i in chunk {
                let q = query(&format!("s{i:05}.example."), i as u16);
                client.send_to(&q, addr).unwrap();
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while STUCK.load(Ordering::SeqCst) < chunk[chunk.len() - 1] + 1 {
                assert!(Instant::now() < deadline, "queries did not reach the chain");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        // Then the backlog, waited for the same way.
        for chunk in (MAX_IN_FLIGHT..held).collect::<Vec<_>>().chunks(64) {
            for &i in chunk {
                let q = query(&format!("s{i:05}.example."), i as u16);
                client.send_to(&q, addr).unwrap();
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while udp::parked() < chunk[chunk.len() - 1] + 1 - MAX_IN_FLIGHT {
                assert!(
                    Instant::now() < deadline,
                    "queries did not reach the backlog"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        assert!(client.recv_from(&mut buf).is_err(), "nothing answered yet");
        // Past both: REFUSED at once, each.
        client
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut refused = 0;
        for i in held..stuck {
            client
                .send_to(&query(&format!("s{i:05}.example."), i as u16), addr)
                .unwrap();
            let (n, _) = client.recv_from(&mut buf).expect("REFUSED past the share");
            let r = Message::from_vec(&buf[..n]).unwrap();
            assert_eq!(r.metadata.id, i as u16);
            assert_eq!(r.metadata.response_code, ResponseCode::Refused);
            refused += 1;
        }
        assert_eq!(STUCK.load(Ordering::SeqCst), MAX_IN_FLIGHT);
        assert_eq!(udp::parked(), fits);
        // Behind all of them, a query the fast path answers.
        let t0 = Instant::now();
        client
            .send_to(&query("fast.example.", 0xfa57), addr)
            .unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let fast = loop {
            let (n, _) = client.recv_from(&mut buf).expect("the fast answer");
            let r = Message::from_vec(&buf[..n]).unwrap();
            if r.metadata.id == 0xfa57 {
                break r;
            }
            refused += 1;
        };
        (refused, stuck - held, fast, t0.elapsed())
    })
    .await
    .unwrap();
    let (refused, past, fast, took) = outcome;
    assert_eq!(refused, past);
    assert_eq!(fast.metadata.response_code, ResponseCode::NXDomain);
    assert!(took < Duration::from_secs(1), "{took:?}");
    server.stop().await;
}

//! The memory budget's in-flight share on the server's slow path: with room for two queries,
//! a third one arriving while two are being served is answered REFUSED, over UDP and TCP,
//! without reaching the chain; without a limit every query is served. (The budget is the
//! process's, so this file holds one test.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferrodns_plugin::budget::{self, QUERY_COST};
use ferrodns_plugin::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{
    Descriptor, Metrics, Next, Plugin, PluginError, Registry, Reply, Request, Setup, SetupError,
    async_trait,
};
use ferrodns_plugin_test::{tcp_exchange, udp_exchange};
use ferrodns_server::{Server, Source, load};

static SERVED: AtomicUsize = AtomicUsize::new(0);

/// Answers NXDOMAIN after 500 ms.
struct Slow;

#[async_trait]
impl Plugin for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }
    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        SERVED.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(Reply::message(ferrodns_plugin::wire::rcode_reply(
            req.message(),
            ResponseCode::NXDomain,
        )))
    }
}

fn slow_setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {}
    c.add_plugin(Arc::new(Slow));
    Ok(())
}

fn msg(name: &str, id: u16) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.edns = Some(Edns::new());
    m
}

async fn burst(addr: SocketAddr, tcp: bool, n: u16) -> Vec<ResponseCode> {
    let mut tasks = Vec::new();
    for i in 0..n {
        tasks.push(tokio::task::spawn_blocking(move || {
            let q = msg(&format!("q{i}.example.org."), 100 + i);
            let r = if tcp {
                tcp_exchange(addr, &q)
            } else {
                udp_exchange(addr, &q)
            };
            assert_eq!(r.id, 100 + i);
            assert_eq!(r.queries, q.queries, "the question is echoed");
            assert!(r.edns.is_some(), "the OPT is echoed");
            r.metadata.response_code
        }));
        // Let each query reach the server before the next one.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_past_the_in_flight_share_are_refused() {
    let mut registry = Registry::new();
    registry.add(Descriptor::new("slow", slow_setup));
    let source = Source {
        filename: "Corefile".into(),
        text: b".:0 {\n slow\n}\n".to_vec(),
        default_port: "53".into(),
    };
    let instance = load(source, &registry, &Metrics::new(), None).unwrap();
    let server = Server::start(instance).await.unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], server.listeners()[0].addr.port()));

    // 25% of 8 query costs: two queries in flight.
    budget::global().set_process_limit(Some(8 * QUERY_COST));
    assert_eq!(budget::global().inflight_limit(), Some(2));
    for tcp in [false, true] {
        SERVED.store(0, Ordering::SeqCst);
        let before = budget::global().refused();
        let got = burst(addr, tcp, 4).await;
        let refused = got.iter().filter(|r| **r == ResponseCode::Refused).count();
        assert_eq!(refused, 2, "tcp={tcp}: {got:?}");
        assert_eq!(SERVED.load(Ordering::SeqCst), 2, "refused ones never ran");
        assert_eq!(budget::global().refused(), before + 2);
        assert_eq!(budget::global().inflight(), 0);
    }

    // No limit: all served.
    budget::global().set_process_limit(None);
    SERVED.store(0, Ordering::SeqCst);
    let got = burst(addr, false, 4).await;
    assert!(got.iter().all(|r| *r == ResponseCode::NXDomain), "{got:?}");
    assert_eq!(SERVED.load(Ordering::SeqCst), 4);
    server.stop().await;
}

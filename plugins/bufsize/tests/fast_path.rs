//! bufsize on the server's synchronous UDP path: the handler is skipped, and the server caps the
//! query's OPT size before a fast hook further down answers, so a fast answer is sized and
//! echoed as the async path would. Real config loading, real sockets.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use ferrodns_plugin::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{
    Descriptor, FastAnswer, FastHook, Metrics, Next, Plugin, PluginError, Registry, Reply, Request,
    Setup, SetupError, WireQuery, async_trait,
};
use ferrodns_server::{Server, Source, load};

/// Answers on the fast path with the query itself turned into a reply (QR, NXDOMAIN), its OPT
/// record as the hook saw it; on the async path NOERROR with the size the chain saw.
struct Echo;

impl FastHook for Echo {
    fn answer(&self, q: &WireQuery<'_>, out: &mut Vec<u8>) -> FastAnswer {
        out.extend_from_slice(q.packet);
        out[2] |= 0x80;
        out[3] = (out[3] & 0xf0) | 3;
        assert_eq!(
            q.opt.map(|o| o.udp_size),
            ferrodns_plugin::WireQuery::parse(q.packet).and_then(|p| p.opt.map(|o| o.udp_size)),
            "the parsed size and the packet agree"
        );
        FastAnswer::Answered
    }
}

#[async_trait]
impl Plugin for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }
    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        let mut m = Message::new(req.id(), MessageType::Response, OpCode::Query);
        m.queries = req.message().queries.clone();
        Ok(Reply::message(m))
    }
    fn fast_hook(&self) -> Option<&dyn FastHook> {
        Some(self)
    }
}

fn echo(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {}
    c.add_plugin(Arc::new(Echo));
    Ok(())
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add(ferrodns_plugin_bufsize::DESCRIPTOR);
    r.add(Descriptor::new("echo", echo));
    r
}

fn ask(addr: SocketAddr, size: Option<u16>) -> Message {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut m = Message::new(9, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii("example.org.").unwrap(),
        RecordType::A,
    ));
    if let Some(size) = size {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(true);
        m.set_edns(e);
    }
    s.send_to(&m.to_vec().unwrap(), addr).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = s.recv_from(&mut buf).expect("a reply");
    Message::from_vec(&buf[..n]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_answers_see_the_capped_size() {
    let source = Source {
        filename: "Corefile".into(),
        text: b".:0 {\n    bufsize 1232\n    echo\n}\n".to_vec(),
        default_port: "53".into(),
    };
    let instance = load(source, &registry(), &Metrics::new(), None).unwrap();
    let server = Server::start(instance).await.unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], server.listeners()[0].addr.port()));
    let replies = tokio::task::spawn_blocking(move || {
        [Some(4096), Some(1232), Some(600), None].map(|size| ask(addr, size))
    })
    .await
    .unwrap();
    let sizes: Vec<Option<u16>> = replies
        .iter()
        .map(|r| r.edns.as_ref().map(|e| e.max_payload()))
        .collect();
    assert_eq!(sizes, [Some(1232), Some(1232), Some(600), None]);
    for r in &replies {
        // Every one came from the fast hook, DO kept.
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        if let Some(e) = r.edns.as_ref() {
            assert!(e.flags().dnssec_ok);
        }
    }
    server.stop().await;
}

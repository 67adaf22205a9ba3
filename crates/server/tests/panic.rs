//! A plugin that panics costs the client one SERVFAIL, never the process: the next query is
//! answered. Real config loading, real sockets.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{
    Descriptor, Metrics, Next, Plugin, PluginError, Registry, Reply, Request, Setup, SetupError,
    async_trait,
};
use ferrodns_server::{Server, Source, load};

struct Boom;

#[async_trait]
impl Plugin for Boom {
    fn name(&self) -> &'static str {
        "boom"
    }
    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        if req.name_lower().starts_with("panic.") {
            panic!("boom on {}", req.name_lower());
        }
        let mut m = Message::new(req.id(), MessageType::Response, OpCode::Query);
        m.queries = req.message().queries.clone();
        Ok(Reply::message(m))
    }
}

fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {}
    c.add_plugin(Arc::new(Boom));
    Ok(())
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add(Descriptor::new("boom", setup));
    r
}

fn ask(addr: SocketAddr, name: &str, id: u16) -> Message {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    s.send_to(&m.to_vec().unwrap(), addr).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = s.recv_from(&mut buf).expect("a reply");
    Message::from_vec(&buf[..n]).unwrap()
}

async fn start(corefile: &str) -> Server {
    let source = Source {
        filename: "Corefile".into(),
        text: corefile.as_bytes().to_vec(),
        default_port: "53".into(),
    };
    let instance = load(source, &registry(), &Metrics::new(), None).unwrap();
    Server::start(instance).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_plugin_gives_servfail_and_the_server_lives_on() {
    let server = start(".:0 {\n    boom\n}\n").await;
    let addr = SocketAddr::from(([127, 0, 0, 1], server.listeners()[0].addr.port()));
    let replies = tokio::task::spawn_blocking(move || {
        let a = ask(addr, "panic.example.", 1);
        let b = ask(addr, "fine.example.", 2);
        let c = ask(addr, "panic.example.", 3);
        let d = ask(addr, "fine.example.", 4);
        (a, b, c, d)
    })
    .await
    .unwrap();
    assert_eq!(replies.0.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(replies.0.queries.len(), 1, "question echoed");
    assert_eq!(replies.1.metadata.response_code, ResponseCode::NoError);
    assert_eq!(replies.2.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(replies.3.metadata.response_code, ResponseCode::NoError);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_overlapping_zones_fail_startup_like_coredns() {
    let load_err = |text: &str| {
        let source = Source {
            filename: "Corefile".into(),
            text: text.as_bytes().to_vec(),
            default_port: "53".into(),
        };
        match load(source, &registry(), &Metrics::new(), None) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    assert_eq!(
        load_err("example.org:1053 {\n boom\n}\nexample.org:1053 {\n boom\n}\n"),
        "cannot serve dns://example.org.:1053 - it is already defined"
    );
    assert_eq!(
        load_err("a.example example.org a.example {\n boom\n}\n"),
        "cannot serve dns://a.example.:53 - it is already defined"
    );
    // Different ports are fine.
    assert_eq!(
        load_err("example.org:1053 {\n boom\n}\nexample.org:1054 {\n boom\n}\n"),
        ""
    );
    // The empty chain case: a block with no handler answers REFUSED (tested at dispatch).
}

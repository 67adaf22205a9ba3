//! Plugins can look names up through the server (CoreDNS's upstream.Lookup): the query is
//! served by the block of the name's zone, and a plugin that keeps chasing itself fails
//! instead of looping.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::A;
use ferrodns_plugin::proto::rr::{Name, RData, Record, RecordType};
use ferrodns_plugin::{
    Descriptor, Metrics, Next, Plugin, PluginError, Registry, Reply, Request, Setup, SetupError,
    async_trait,
};
use ferrodns_server::{Server, Source, load};

/// Answers every A query with 192.0.2.1.
struct Answer;

#[async_trait]
impl Plugin for Answer {
    fn name(&self) -> &'static str {
        "answer"
    }
    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        let mut m = Message::new(req.id(), MessageType::Response, OpCode::Query);
        m.queries = req.message().queries.clone();
        m.add_answer(Record::from_rdata(
            req.qname(),
            60,
            RData::A(A::new(192, 0, 2, 1)),
        ));
        Ok(Reply::message(m))
    }
}

/// Looks up `target.<its argument>` through the server and returns what came back.
struct Chase(String);

#[async_trait]
impl Plugin for Chase {
    fn name(&self) -> &'static str {
        "chase"
    }
    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        let name = Name::from_ascii(&self.0).map_err(|e| PluginError::servfail(e.to_string()))?;
        let mut m = req.lookup(name, RecordType::A).await?;
        m.metadata.id = req.id();
        m.queries = req.message().queries.clone();
        Ok(Reply::message(m))
    }
}

fn answer_setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {}
    c.add_plugin(Arc::new(Answer));
    Ok(())
}

fn chase_setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    c.next();
    if !c.next_arg() {
        return Err(c.arg_err());
    }
    let target = c.val().to_string();
    c.add_plugin(Arc::new(Chase(target)));
    Ok(())
}

fn ask(addr: SocketAddr, name: &str) -> Message {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut m = Message::new(9, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    s.send_to(&m.to_vec().unwrap(), addr).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = s.recv_from(&mut buf).expect("a reply");
    Message::from_vec(&buf[..n]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_go_through_the_server_and_cannot_loop() {
    let mut registry = Registry::new();
    registry.add(Descriptor::new("chase", chase_setup));
    registry.add(Descriptor::new("answer", answer_setup));
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let corefile = format!(
        "alias.test:{port} {{\n    chase target.test.\n}}\n\
         target.test:{port} {{\n    answer\n}}\n\
         loop.test:{port} {{\n    chase again.loop.test.\n}}\n"
    );
    let source = Source {
        filename: "Corefile".into(),
        text: corefile.into_bytes(),
        default_port: "53".into(),
    };
    let instance = load(source, &registry, &Metrics::new(), None).unwrap();
    let server = Server::start(instance).await.unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (chased, looped) =
        tokio::task::spawn_blocking(move || (ask(addr, "alias.test."), ask(addr, "loop.test.")))
            .await
            .unwrap();
    assert_eq!(chased.metadata.response_code, ResponseCode::NoError);
    assert_eq!(chased.answers.len(), 1);
    assert_eq!(chased.answers[0].name.to_ascii(), "target.test.");
    assert_eq!(looped.metadata.response_code, ResponseCode::ServFail);
    server.stop().await;
}

//! k8s_external in a real server, with a stand-in kubernetes after it: CNAME targets looked
//! up through the server, and CoreDNS's startup errors.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::A;
use ferrodns_plugin::proto::rr::{Name, RData, Record, RecordType};
use ferrodns_plugin::{
    Descriptor, Externaler, Metrics, Next, Plugin, PluginError, Registry, Reply, Request, Setup,
    SetupError, async_trait,
};
use ferrodns_plugin_k8s_external::DESCRIPTOR;
use ferrodns_plugin_test as testkit;
use ferrodns_server::{Server, Source, load};

/// Answers `lb.example.net.` A with 203.0.113.7, NXDOMAIN for everything else.
struct Outside;

#[async_trait]
impl Plugin for Outside {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        let mut m = req.reply();
        if req.name_lower() == "lb.example.net." && req.qtype() == RecordType::A {
            m.answers.push(Record::from_rdata(
                req.qname(),
                77,
                RData::A(A(Ipv4Addr::new(203, 0, 113, 7))),
            ));
        } else {
            m.metadata.response_code = ResponseCode::NXDomain;
        }
        Ok(Reply::message(m))
    }
}

/// `kubernetes`: publishes the stand-in Externaler and answers as [`Outside`].
fn kubernetes(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {}
    let k: Arc<dyn Externaler> = Arc::new(common::fake());
    c.publish_handle("kubernetes", k);
    c.add_plugin(Arc::new(Outside));
    Ok(())
}

/// `kubernetes` without the handle.
fn bare_kubernetes(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {}
    c.add_plugin(Arc::new(Outside));
    Ok(())
}

/// Another plugin (its handler is not named kubernetes).
fn other(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {}
    c.add_plugin(testkit::Fixed::rcode(ResponseCode::NoError));
    Ok(())
}

async fn start(
    corefile: &str,
    k: fn(&mut Setup<'_>) -> Result<(), SetupError>,
) -> Result<(Server, SocketAddr), String> {
    let mut registry = Registry::new();
    registry.add(DESCRIPTOR);
    registry.add(Descriptor::new("kubernetes", k));
    registry.add(Descriptor::new("whoami", other));
    let source = Source {
        filename: "Corefile".into(),
        text: corefile.as_bytes().to_vec(),
        default_port: "53".into(),
    };
    let instance = load(source, &registry, &Metrics::new(), None).map_err(|e| e.to_string())?;
    let server = Server::start(instance).await.map_err(|e| e.to_string())?;
    let addr = SocketAddr::from(([127, 0, 0, 1], server.listeners()[0].addr.port()));
    Ok((server, addr))
}

fn query(id: u16, name: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_targets_are_looked_up_through_the_server() {
    let (server, addr) = start(
        ".:0 {\n    k8s_external example.org\n    kubernetes cluster.local\n}\n",
        kubernetes,
    )
    .await
    .expect("starts");
    let (a, srv) = tokio::task::spawn_blocking(move || {
        (
            testkit::udp_exchange(addr, &query(1, "ext.ns.example.org.", RecordType::A)),
            testkit::tcp_exchange(addr, &query(2, "ext.ns.example.org.", RecordType::SRV)),
        )
    })
    .await
    .expect("client");
    let rrs: Vec<String> = a
        .answers
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.ttl, r.data))
        .collect();
    assert_eq!(
        rrs,
        [
            "ext.ns.example.org. 30 lb.example.net.",
            "lb.example.net. 77 203.0.113.7"
        ]
    );
    assert!(a.metadata.authoritative);
    assert_eq!(srv.answers.len(), 1);
    let extra: Vec<String> = srv
        .additionals
        .iter()
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    assert_eq!(extra, ["lb.example.net. 203.0.113.7"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_needs_kubernetes_with_the_handle() {
    let err = start(
        ".:0 {\n    k8s_external example.org\n    whoami\n}\n",
        kubernetes,
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(err, "plugin/k8s_external: kubernetes plugin not loaded");
    let err = start(
        ".:0 {\n    k8s_external example.org\n    kubernetes\n}\n",
        bare_kubernetes,
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(
        err,
        "plugin/k8s_external: kubernetes plugin does not implement the Externaler interface"
    );
}

//! autopath in a real server: Corefiles loaded with a registry of autopath and stand-ins for
//! the plugins after it, queries over UDP and TCP from a plain socket.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use common::{Answerer, FakeKubernetes};
use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RData, RecordType};
use ferrodns_plugin::{AutoPather, Descriptor, Metrics, Registry, Setup, SetupError};
use ferrodns_plugin_autopath::DESCRIPTOR;
use ferrodns_plugin_test::{self as testkit, TempDir};
use ferrodns_server::{Server, Source, load};

fn answers() -> Arc<Answerer> {
    Answerer::new(
        vec![
            ("web.svc.cluster.local.", Ipv4Addr::new(10, 0, 0, 1), 30),
            ("web.b.example.", Ipv4Addr::new(192, 0, 2, 1), 60),
        ],
        vec![],
    )
}

/// `kubernetes`: publishes a search path for 127.0.0.1 and answers as [`answers`].
fn kubernetes(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {}
    let k8s: Arc<dyn AutoPather> = Arc::new(FakeKubernetes {
        path: vec![
            "ns.svc.cluster.local.".into(),
            "svc.cluster.local.".into(),
            "cluster.local.".into(),
            String::new(),
        ],
        only: Some("127.0.0.1".parse().expect("ip")),
    });
    c.publish_handle("kubernetes", k8s);
    c.add_plugin(answers());
    Ok(())
}

/// `answer`: answers as [`answers`] and offers no search path.
fn answer(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {}
    c.add_plugin(answers());
    Ok(())
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.add(DESCRIPTOR);
    registry.add(Descriptor::new("kubernetes", kubernetes));
    registry.add(Descriptor::new("answerer", answer));
    registry
}

fn query(id: u16, name: &str) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii(name).expect("name"),
        RecordType::A,
    ));
    m
}

async fn start(corefile: &str, metrics: &Metrics) -> Result<(Server, SocketAddr), String> {
    let source = Source {
        filename: "Corefile".into(),
        text: corefile.as_bytes().to_vec(),
        default_port: "53".into(),
    };
    let instance = load(source, &registry(), metrics, None).map_err(|e| e.to_string())?;
    let server = Server::start(instance).await.map_err(|e| e.to_string())?;
    let addr = SocketAddr::from(([127, 0, 0, 1], server.listeners()[0].addr.port()));
    Ok((server, addr))
}

fn assert_cname_then_a(m: &Message, asked: &str, target: &str, ttl: u32) {
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert_eq!(m.queries[0].name().to_ascii(), asked);
    assert_eq!(m.answers.len(), 2, "{m:?}");
    assert_eq!(m.answers[0].name.to_ascii(), asked);
    assert_eq!(m.answers[0].ttl, ttl);
    let RData::CNAME(t) = &m.answers[0].data else {
        panic!("not a CNAME: {m:?}");
    };
    assert_eq!(t.0.to_ascii(), target);
    assert_eq!(m.answers[1].name.to_ascii(), target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_path_from_the_kubernetes_plugin() {
    let metrics = Metrics::new();
    let (server, addr) = start(
        ".:0 {\n    autopath @kubernetes\n    kubernetes cluster.local\n}\n",
        &metrics,
    )
    .await
    .expect("starts");
    let label = server.listeners()[0].label.clone();
    let (udp, tcp) = tokio::task::spawn_blocking(move || {
        (
            testkit::udp_exchange(addr, &query(1, "web.ns.svc.cluster.local.")),
            testkit::tcp_exchange(addr, &query(2, "Web.NS.svc.cluster.local.")),
        )
    })
    .await
    .expect("client");
    assert_cname_then_a(
        &udp,
        "web.ns.svc.cluster.local.",
        "web.svc.cluster.local.",
        30,
    );
    assert_cname_then_a(
        &tcp,
        "Web.NS.svc.cluster.local.",
        "Web.svc.cluster.local.",
        30,
    );
    let series = format!("coredns_autopath_success_total{{server=\"{label}\"}} 2");
    let exposition = metrics.encode();
    assert!(
        exposition.lines().any(|l| l == series),
        "{series} in\n{exposition}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_path_from_a_resolv_conf() {
    let dir = TempDir::new("autopath-server");
    let path = dir.write("resolv.conf", "search a.example b.example\n");
    let corefile = format!(".:0 {{\n    autopath {path}\n    answerer\n}}\n");
    let (server, addr) = start(&corefile, &Metrics::new()).await.expect("starts");
    let (hit, miss) = tokio::task::spawn_blocking(move || {
        (
            testkit::udp_exchange(addr, &query(3, "web.a.example.")),
            testkit::udp_exchange(addr, &query(4, "none.a.example.")),
        )
    })
    .await
    .expect("client");
    assert_cname_then_a(&hit, "web.a.example.", "web.b.example.", 60);
    assert_eq!(miss.metadata.response_code, ResponseCode::NXDomain);
    assert!(miss.answers.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_without_search_paths_fails_the_start() {
    let err = start(
        ".:0 {\n    autopath @answerer\n    answerer\n}\n",
        &Metrics::new(),
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(
        err,
        "plugin/autopath: answerer does not implement the AutoPather interface"
    );
    // A plugin the block does not have is no error: there is just no search path.
    let (server, addr) = start(
        ".:0 {\n    autopath @kubernetes\n    answerer\n}\n",
        &Metrics::new(),
    )
    .await
    .expect("starts");
    let m = tokio::task::spawn_blocking(move || {
        testkit::udp_exchange(addr, &query(5, "web.ns.svc.cluster.local."))
    })
    .await
    .expect("client");
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    server.stop().await;
}

//! The handler with a resolv.conf search path and with a plugin's, through the test kit.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use common::{Answerer, FakeKubernetes};
use ferrodns_plugin::proto::op::{Message, ResponseCode};
use ferrodns_plugin::proto::rr::{RData, RecordType};
use ferrodns_plugin::{AutoPather, Metrics, Plugin, PluginError, Reply, Shared};
use ferrodns_plugin_autopath::DESCRIPTOR;
use ferrodns_plugin_test::{self as testkit, Fixed, TempDir};

/// The autopath handler of `line` (a resolv.conf written to a temp dir is `{RESOLV}`).
fn autopath(
    line: &str,
    resolv: &str,
) -> (Arc<dyn Plugin>, Metrics, TempDir, ferrodns_plugin::Handles) {
    let dir = TempDir::new("autopath");
    let path = dir.write("resolv.conf", resolv);
    let metrics = Metrics::new();
    let shared = Shared::new(metrics.clone());
    let text = line.replace("{RESOLV}", &path);
    let settings = testkit::setup_with(&DESCRIPTOR, &text, &shared).expect("setup");
    let plugin = settings.plugins[0].clone();
    (plugin, metrics, dir, settings.handles.clone())
}

fn answerer() -> Arc<Answerer> {
    Answerer::new(
        vec![
            ("web.b.example.", Ipv4Addr::new(192, 0, 2, 1), 42),
            ("web.b.example.", Ipv4Addr::new(192, 0, 2, 2), 40),
            ("host.", Ipv4Addr::new(192, 0, 2, 9), 7),
        ],
        vec!["empty.c.example."],
    )
}

async fn serve(chain: &[Arc<dyn Plugin>], name: &str) -> Message {
    let mut req = testkit::request(name, RecordType::A);
    match testkit::run(chain, &mut req).await {
        Ok(Reply::Message(m)) => *m,
        other => panic!("unexpected outcome {other:?}"),
    }
}

const RESOLV: &str = "nameserver 10.0.0.1\nsearch A.example b.example c.example\noptions ndots:5\n";

#[tokio::test]
async fn found_in_a_later_element_gets_a_cname_from_the_asked_name() {
    let (ap, metrics, _dir, _) = autopath("autopath {RESOLV}", RESOLV);
    let next = answerer();
    let chain: Vec<Arc<dyn Plugin>> = vec![ap, next.clone()];
    let m = serve(&chain, "Web.A.Example.").await;
    assert_eq!(
        next.asked(),
        ["web.a.example.", "web.b.example."],
        "the walk stops at the first answer"
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.queries[0].name().to_ascii(), "Web.A.Example.");
    assert_eq!(m.answers.len(), 3);
    let cname = &m.answers[0];
    assert_eq!(cname.name.to_ascii(), "Web.A.Example.");
    assert_eq!(cname.ttl, 42, "the TTL of the first record it points at");
    let RData::CNAME(target) = &cname.data else {
        panic!("not a CNAME: {cname:?}");
    };
    // The owner of the answer as the next plugin wrote it: the expanded name, the base's case.
    assert_eq!(target.0.to_ascii(), "Web.b.example.");
    assert!(m.metadata.authoritative);
    let exposition = metrics.encode();
    assert!(
        exposition
            .lines()
            .any(|l| l == "coredns_autopath_success_total{server=\"dns://:53\"} 1"),
        "{exposition}"
    );
}

#[tokio::test]
async fn the_last_element_is_the_name_as_asked() {
    let (ap, _, _dir, _) = autopath("autopath {RESOLV}", "search a.example b.example\n");
    let next = answerer();
    let chain: Vec<Arc<dyn Plugin>> = vec![ap, next.clone()];
    let m = serve(&chain, "host.a.example.").await;
    assert_eq!(
        next.asked(),
        ["host.a.example.", "host.b.example.", "host."]
    );
    assert_eq!(m.answers.len(), 2);
    let RData::CNAME(target) = &m.answers[0].data else {
        panic!("not a CNAME: {m:?}");
    };
    assert_eq!(target.0.to_ascii(), "host.");
    assert_eq!(m.answers[0].ttl, 7);
}

#[tokio::test]
async fn nodata_is_an_answer_without_a_cname() {
    let (ap, metrics, _dir, _) = autopath("autopath {RESOLV}", RESOLV);
    let chain: Vec<Arc<dyn Plugin>> = vec![ap, answerer()];
    let m = serve(&chain, "empty.a.example.").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(m.queries[0].name().to_ascii(), "empty.a.example.");
    assert!(metrics.encode().contains("coredns_autopath_success_total"));
}

#[tokio::test]
async fn all_nxdomain_sends_the_first_reply_as_it_is() {
    let (ap, metrics, _dir, _) = autopath("autopath {RESOLV}", RESOLV);
    let next = answerer();
    let chain: Vec<Arc<dyn Plugin>> = vec![ap, next.clone()];
    let m = serve(&chain, "None.A.example.").await;
    assert_eq!(next.asked().len(), 4);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // The first element's query, whose search part is the normalised (lowercased) element.
    assert_eq!(m.queries[0].name().to_ascii(), "None.a.example.");
    assert!(!metrics.encode().contains("coredns_autopath_success_total{"));
}

#[tokio::test]
async fn names_outside_the_first_element_or_the_zones_pass_unchanged() {
    let (ap, _, _dir, _) = autopath("autopath {RESOLV}", RESOLV);
    let next = answerer();
    let chain: Vec<Arc<dyn Plugin>> = vec![ap.clone(), next.clone()];
    let m = serve(&chain, "web.b.example.").await;
    assert_eq!(next.asked(), ["web.b.example."]);
    assert_eq!(m.answers.len(), 2);

    let (ap, _, _dir, _) = autopath("autopath other.example {RESOLV}", RESOLV);
    let next = answerer();
    let chain: Vec<Arc<dyn Plugin>> = vec![ap, next.clone()];
    serve(&chain, "web.a.example.").await;
    assert_eq!(next.asked(), ["web.a.example."]);
}

#[tokio::test]
async fn the_first_element_itself_is_a_servfail_error() {
    let (ap, _, _dir, _) = autopath("autopath {RESOLV}", RESOLV);
    let chain: Vec<Arc<dyn Plugin>> = vec![ap, answerer()];
    let mut req = testkit::request("A.example.", RecordType::A);
    match testkit::run(&chain, &mut req).await {
        Err(PluginError { rcode, message, .. }) => {
            assert_eq!(rcode, ResponseCode::ServFail);
            assert_eq!(
                message,
                "trimzone: overshot qname: A.example.for zone a.example."
            );
        }
        other => panic!("unexpected outcome {other:?}"),
    }
}

#[tokio::test]
async fn an_error_of_the_next_plugin_ends_the_walk() {
    let (ap, _, _dir, _) = autopath("autopath {RESOLV}", RESOLV);
    let chain: Vec<Arc<dyn Plugin>> =
        vec![ap, Fixed::new(Err(PluginError::servfail("plugin/x: down")))];
    let mut req = testkit::request("web.a.example.", RecordType::A);
    let out = testkit::run(&chain, &mut req).await;
    assert!(matches!(out, Err(PluginError { ref message, .. }) if message == "plugin/x: down"));

    // A next plugin that wrote nothing (SERVFAIL without an error) is skipped; when the first
    // element's was such, its rcode is the outcome.
    let (ap, _, _dir, _) = autopath("autopath {RESOLV}", RESOLV);
    let chain: Vec<Arc<dyn Plugin>> =
        vec![ap, Fixed::new(Ok(Reply::Rcode(ResponseCode::ServFail)))];
    let mut req = testkit::request("web.a.example.", RecordType::A);
    let out = testkit::run(&chain, &mut req).await;
    assert!(
        matches!(out, Ok(Reply::Rcode(ResponseCode::ServFail))),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_plugin_gives_the_search_path_per_client() {
    let (ap, _, _dir, handles) = autopath("autopath @kubernetes", "");
    let k8s: Arc<dyn AutoPather> = Arc::new(FakeKubernetes {
        path: vec![
            "ns.svc.cluster.local.".into(),
            "svc.cluster.local.".into(),
            "cluster.local.".into(),
            "b.example.".into(),
            String::new(),
        ],
        only: Some("127.0.0.1".parse().expect("ip")),
    });
    handles.publish("kubernetes", k8s);
    let next = answerer();
    let chain: Vec<Arc<dyn Plugin>> = vec![ap, next.clone()];
    let m = serve(&chain, "web.ns.svc.cluster.local.").await;
    assert_eq!(
        next.asked(),
        [
            "web.ns.svc.cluster.local.",
            "web.svc.cluster.local.",
            "web.cluster.local.",
            "web.b.example."
        ]
    );
    assert_eq!(m.answers.len(), 3);

    // Another client: no search path known, the query passes unchanged.
    let mut req = testkit::request("web.ns.svc.cluster.local.", RecordType::A);
    req.src = "192.0.2.50:5353".parse().expect("addr");
    let _ = testkit::run(&chain, &mut req).await;
    assert_eq!(next.asked().len(), 5);
}

#[tokio::test]
async fn a_missing_plugin_leaves_the_query_alone() {
    let (ap, _, _dir, _) = autopath("autopath @kubernetes", "");
    let next = answerer();
    let chain: Vec<Arc<dyn Plugin>> = vec![ap, next.clone()];
    serve(&chain, "web.a.example.").await;
    assert_eq!(next.asked(), ["web.a.example."]);
}

#[tokio::test]
async fn an_element_that_makes_no_name_is_skipped() {
    // kubernetes' path for the root zone has the element ".": `host..` is no name.
    let (ap, _, _dir, handles) = autopath("autopath @kubernetes", "");
    let k8s: Arc<dyn AutoPather> = Arc::new(FakeKubernetes {
        path: vec!["ns.svc.".into(), "svc.".into(), ".".into(), String::new()],
        only: None,
    });
    handles.publish("kubernetes", k8s);
    let next = answerer();
    let chain: Vec<Arc<dyn Plugin>> = vec![ap, next.clone()];
    let m = serve(&chain, "host.ns.svc.").await;
    assert_eq!(next.asked(), ["host.ns.svc.", "host.svc.", "host."]);
    assert_eq!(m.answers.len(), 2);
}

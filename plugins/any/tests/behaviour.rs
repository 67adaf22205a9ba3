//! The any handler: ANY gets the HINFO answer, other types go on.

use std::sync::Arc;

use ferrodns_plugin::proto::op::ResponseCode;
use ferrodns_plugin::proto::rr::{DNSClass, RData, RecordType};
use ferrodns_plugin::{Plugin, Reply};
use ferrodns_plugin_any::Any;
use ferrodns_plugin_test::{self as testkit, Fixed};

#[tokio::test]
async fn any_query_gets_hinfo() {
    let chain: Vec<Arc<dyn Plugin>> = vec![Arc::new(Any), Fixed::rcode(ResponseCode::Refused)];
    let mut req = testkit::request("ExAmple.org.", RecordType::ANY);
    let Ok(Reply::Message(m)) = testkit::run(&chain, &mut req).await else {
        panic!("no message");
    };
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!m.metadata.authoritative);
    assert!(m.metadata.recursion_desired);
    assert_eq!(m.answers.len(), 1);
    let rr = &m.answers[0];
    assert_eq!(rr.name.to_string(), "ExAmple.org.");
    assert_eq!(rr.ttl, 8482);
    assert_eq!(rr.dns_class, DNSClass::IN);
    let RData::HINFO(h) = &rr.data else {
        panic!("not HINFO: {rr:?}");
    };
    assert_eq!(&*h.cpu, b"ANY obsoleted");
    assert_eq!(&*h.os, b"See RFC 8482");
}

#[tokio::test]
async fn other_types_pass_through() {
    let chain: Vec<Arc<dyn Plugin>> = vec![Arc::new(Any), Fixed::rcode(ResponseCode::Refused)];
    for t in [RecordType::A, RecordType::MX, RecordType::HINFO] {
        let mut req = testkit::request("example.org.", t);
        let Ok(Reply::Message(m)) = testkit::run(&chain, &mut req).await else {
            panic!("no message");
        };
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{t}");
        assert!(m.answers.is_empty());
    }
}

#[tokio::test]
async fn last_in_chain_fails_other_types() {
    let chain: Vec<Arc<dyn Plugin>> = vec![Arc::new(Any)];
    let mut req = testkit::request("example.org.", RecordType::A);
    let err = testkit::run(&chain, &mut req)
        .await
        .err()
        .map(|e| e.message);
    assert_eq!(err.as_deref(), Some("plugin/any: no next plugin found"));
}

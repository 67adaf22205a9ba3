//! What the whoami plugin answers: the client's address and port in the additional section,
//! byte for byte as CoreDNS writes it.

use std::net::SocketAddr;
use std::sync::Arc;

use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{DNSClass, Name, RData, RecordType};
use ferrodns_plugin::proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use ferrodns_plugin::{Plugin, Protocol, Reply, Request};
use ferrodns_plugin_test::{self as testkit, Fixed};
use ferrodns_plugin_whoami::Whoami;

fn uncompressed(msg: &Message) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    msg.emit(&mut enc).expect("encode");
    buf
}

async fn serve(req: &mut Request) -> Message {
    let chain: Vec<Arc<dyn Plugin>> = vec![Arc::new(Whoami), Fixed::rcode(ResponseCode::Refused)];
    match testkit::run(&chain, req).await {
        Ok(Reply::Message(m)) => *m,
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test]
async fn ipv4_client_gets_a_and_srv() {
    let mut req = testkit::request("Example.ORG.", RecordType::AAAA);
    let msg = serve(&mut req).await;
    assert_eq!(msg.metadata.id, 4242);
    assert_eq!(msg.metadata.message_type, MessageType::Response);
    assert!(msg.metadata.authoritative);
    assert!(msg.metadata.recursion_desired);
    assert!(!msg.metadata.recursion_available);
    assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
    assert!(msg.answers.is_empty());
    assert!(msg.authorities.is_empty());
    assert_eq!(msg.additionals.len(), 2);

    let a = &msg.additionals[0];
    assert_eq!(a.name.to_ascii(), "Example.ORG.");
    assert_eq!(a.record_type(), RecordType::A);
    assert_eq!(a.ttl, 0);
    assert_eq!(a.dns_class, DNSClass::IN);
    assert_eq!(
        a.data,
        RData::A(std::net::Ipv4Addr::new(127, 0, 0, 1).into())
    );

    let srv = &msg.additionals[1];
    assert_eq!(srv.name.to_ascii(), "_udp.Example.ORG.");
    assert_eq!(srv.ttl, 0);
    match &srv.data {
        RData::SRV(s) => {
            assert_eq!(s.priority, 0);
            assert_eq!(s.weight, 0);
            assert_eq!(s.port, 40212);
            assert_eq!(s.target, Name::root());
        }
        other => panic!("not an SRV: {other:?}"),
    }
}

#[tokio::test]
async fn wire_bytes_match_coredns() {
    // What CoreDNS v1.14.7 sent for `example.org. A` from 127.0.0.1 (client port patched to
    // the test kit's 40212 = 0x9d14, ID to 4242 = 0x1092).
    let want = hex("1092 8500 0001 0000 0000 0002
         076578616d706c65036f726700 0001 0001
         076578616d706c65036f726700 0001 0001 00000000 0004 7f000001
         045f756470076578616d706c65036f726700 0021 0001 00000000 0007 0000 0000 9d14 00");
    let mut req = testkit::request("example.org.", RecordType::A);
    let msg = serve(&mut req).await;
    assert_eq!(uncompressed(&msg), want);
}

#[tokio::test]
async fn ipv6_client_gets_aaaa_and_tcp_srv() {
    let mut req = testkit::request("example.org.", RecordType::A);
    req.protocol = Protocol::Tcp;
    req.src = "[2001:db8::53]:5300".parse::<SocketAddr>().expect("addr");
    let msg = serve(&mut req).await;
    let aaaa = &msg.additionals[0];
    assert_eq!(aaaa.record_type(), RecordType::AAAA);
    assert_eq!(
        aaaa.data,
        RData::AAAA(
            "2001:db8::53"
                .parse::<std::net::Ipv6Addr>()
                .expect("ip")
                .into()
        )
    );
    let srv = &msg.additionals[1];
    assert_eq!(srv.name.to_ascii(), "_tcp.example.org.");
    match &srv.data {
        RData::SRV(s) => assert_eq!(s.port, 5300),
        other => panic!("not an SRV: {other:?}"),
    }
}

#[tokio::test]
async fn ipv4_mapped_client_is_ipv4() {
    let mut req = testkit::request("example.org.", RecordType::A);
    req.src = "[::ffff:192.0.2.7]:1000"
        .parse::<SocketAddr>()
        .expect("addr");
    let msg = serve(&mut req).await;
    assert_eq!(
        msg.additionals[0].data,
        RData::A(std::net::Ipv4Addr::new(192, 0, 2, 7).into())
    );
}

#[tokio::test]
async fn root_query() {
    // CoreDNS: `A IN .` gives `_udp.` as the SRV owner (55 bytes).
    let want = hex("1092 8500 0001 0000 0000 0002
         00 0001 0001
         00 0001 0001 00000000 0004 7f000001
         045f75647000 0021 0001 00000000 0007 0000 0000 9d14 00");
    let mut req = testkit::request(".", RecordType::A);
    let msg = serve(&mut req).await;
    assert_eq!(msg.additionals[1].name.to_ascii(), "_udp.");
    assert_eq!(uncompressed(&msg), want);
}

#[tokio::test]
async fn any_type_and_class_is_answered_with_query_class() {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    let mut q = Query::query(
        Name::from_ascii("version.bind.").expect("name"),
        RecordType::TXT,
    );
    q.set_query_class(DNSClass::CH);
    m.add_query(q);
    let mut req = testkit::from_message(m, Protocol::Udp);
    let msg = serve(&mut req).await;
    assert!(!msg.metadata.recursion_desired);
    assert_eq!(msg.queries.len(), 1);
    assert_eq!(msg.additionals[0].dns_class, DNSClass::CH);
    assert_eq!(msg.additionals[1].dns_class, DNSClass::CH);
}

#[tokio::test]
async fn notify_does_not_copy_rd() {
    let mut m = Message::new(9, MessageType::Query, OpCode::Notify);
    m.metadata.recursion_desired = true;
    m.metadata.checking_disabled = true;
    m.add_query(Query::query(
        Name::from_ascii("example.org.").expect("name"),
        RecordType::SOA,
    ));
    let mut req = testkit::from_message(m, Protocol::Udp);
    let msg = serve(&mut req).await;
    assert_eq!(msg.metadata.op_code, OpCode::Notify);
    assert!(!msg.metadata.recursion_desired);
    assert!(!msg.metadata.checking_disabled);
    assert!(msg.metadata.authoritative);
}

#[tokio::test]
async fn too_long_srv_owner_is_sent_compressed_as_coredns_does() {
    // 4 labels of 63 bytes: 253 characters, 255 bytes on the wire; `_udp.` does not fit in a
    // name, yet CoreDNS sends it as the label `_udp` and a pointer to the question's name.
    let label = "a".repeat(63);
    let name = format!("{label}.{label}.{label}.{}.", "b".repeat(61));
    let mut req = testkit::request(&name, RecordType::A);
    let chain: Vec<Arc<dyn Plugin>> = vec![Arc::new(Whoami)];
    let out = testkit::run(&chain, &mut req).await.expect("no error");
    let Reply::Wire(bytes) = out else {
        panic!("expected a wire reply, got {out:?}");
    };
    // Header: the request's ID, QR AA RD, one question, two additional records.
    assert_eq!(&bytes[..2], &req.id().to_be_bytes());
    assert_eq!(&bytes[2..12], &[0x85, 0x00, 0, 1, 0, 0, 0, 0, 0, 2]);
    // The question, then the records exactly as CoreDNS's bytes show them.
    let question_end = 12 + 255 + 4;
    assert_eq!(&bytes[12..question_end], &req.raw[12..question_end]);
    let port = req.src.port().to_be_bytes();
    let mut tail = vec![0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1];
    tail.extend_from_slice(&[4, b'_', b'u', b'd', b'p', 0xc0, 0x0c, 0, 33, 0, 1]);
    tail.extend_from_slice(&[0, 0, 0, 0, 0, 7, 0, 0, 0, 0, port[0], port[1], 0]);
    assert_eq!(&bytes[question_end..], &tail[..]);
}

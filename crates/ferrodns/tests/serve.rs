//! The binary serving real queries over real sockets: whoami over UDP and TCP, dispatch by
//! zone, the class and EDNS rules.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, RData, RecordType};

fn whoami_checks(r: &hickory_proto::op::Message, owner: &str, proto: &str) {
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.metadata.authoritative, "AA");
    assert!(r.answers.is_empty());
    assert_eq!(r.additionals.len(), 2, "{r:?}");
    let a = &r.additionals[0];
    assert_eq!(a.name.to_ascii(), owner);
    assert_eq!(a.ttl, 0);
    match &a.data {
        RData::A(ip) => assert_eq!(ip.0.to_string(), "127.0.0.1"),
        other => panic!("expected A, got {other:?}"),
    }
    let srv = &r.additionals[1];
    assert_eq!(srv.name.to_ascii(), format!("_{proto}.{owner}"));
    match &srv.data {
        RData::SRV(s) => {
            assert_eq!(s.target.to_ascii(), ".");
            assert!(s.port > 0);
        }
        other => panic!("expected SRV, got {other:?}"),
    }
}

#[test]
fn whoami_answers_over_udp_and_tcp() {
    let srv = Running::start(".:0 {\n    bind 127.0.0.1\n    whoami\n}\n", &[]);
    assert_eq!(srv.banner.len(), 1);
    assert!(
        srv.banner[0].starts_with(".:") && srv.banner[0].ends_with(" on 127.0.0.1"),
        "{:?}",
        srv.banner
    );
    let q = query("WhoAmI.Example.org.", RecordType::A);
    whoami_checks(&udp(srv.addr(), &q), "WhoAmI.Example.org.", "udp");
    whoami_checks(&tcp(srv.addr(), &q), "WhoAmI.Example.org.", "tcp");
    // The root gets `_udp.` for its SRV owner.
    let r = udp(srv.addr(), &query(".", RecordType::NS));
    assert_eq!(r.additionals[1].name.to_ascii(), "_udp.");
}

#[test]
fn longest_zone_wins_and_unknown_zones_are_refused() {
    let corefile = "example.org:0 {\n    bind 127.0.0.1\n    whoami\n}\n\
                    sub.example.org {\n    bind 127.0.0.1\n    errors\n}\n";
    // Both blocks must share one port: put them on the same explicit port.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let corefile = corefile
        .replace(":0", &format!(":{port}"))
        .replace("sub.example.org {", &format!("sub.example.org:{port} {{"));
    let srv = Running::start(&corefile, &[]);
    assert_eq!(srv.banner.len(), 2, "{:?}", srv.banner);
    // Under example.org: whoami answers.
    let r = udp(srv.addr(), &query("a.example.org.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    // Under sub.example.org: that block only has errors, which calls next: there is none,
    // so SERVFAIL.
    let r = udp(srv.addr(), &query("x.sub.example.org.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    // A DS query for sub.example.org goes to the parent side (the shortest zone): whoami.
    let r = udp(srv.addr(), &query("sub.example.org.", RecordType::DS));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    // No zone: REFUSED, question echoed, RA and AA clear.
    let r = udp(srv.addr(), &query("example.com.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert_eq!(r.queries.len(), 1);
    assert!(!r.metadata.recursion_available && !r.metadata.authoritative);
    assert!(r.metadata.recursion_desired, "RD copied");
    assert!(r.edns.is_none());
}

#[test]
fn class_and_edns_rules() {
    let srv = Running::start(".:0 {\n    bind 127.0.0.1\n    whoami\n}\n", &[]);
    // CHAOS class without chaos/forward: REFUSED.
    let r = udp(
        srv.addr(),
        &query_class("version.bind.", RecordType::TXT, DNSClass::CH),
    );
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    // The OPT record is echoed with the client's size and DO bit.
    let r = udp(
        srv.addr(),
        &with_edns(query("a.example.", RecordType::A), 1232, true, 0),
    );
    let e = r.edns.as_ref().expect("OPT echoed");
    assert_eq!(e.max_payload(), 1232);
    assert!(e.flags().dnssec_ok);
    assert_eq!(e.version(), 0);
    // ... also on error replies.
    let r = udp(
        srv.addr(),
        &with_edns(
            query_class("x.", RecordType::A, DNSClass::CH),
            1400,
            false,
            0,
        ),
    );
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert_eq!(r.edns.as_ref().map(|e| e.max_payload()), Some(1400));
    // EDNS version 1: BADVERS, with an OPT of version 0, before any plugin runs.
    let r = udp(
        srv.addr(),
        &with_edns(query("a.example.", RecordType::A), 4096, false, 1),
    );
    // 16 is BADVERS here (hickory decodes the shared value 16 as BADSIG).
    assert_eq!(u16::from(r.metadata.response_code), 16);
    assert!(r.additionals.is_empty());
    assert_eq!(r.edns.as_ref().map(|e| e.version()), Some(0));
}

#[test]
fn reverse_cidr_keys_split_into_zones() {
    let srv = Running::start("10.0.0.0/15:0 {\n    bind 127.0.0.1\n    whoami\n}\n", &[]);
    let mut zones: Vec<String> = srv
        .banner
        .iter()
        .map(|b| b.split(':').next().unwrap().to_string())
        .collect();
    zones.sort();
    assert_eq!(zones, vec!["0.10.in-addr.arpa.", "1.10.in-addr.arpa."]);
    let r = udp(
        srv.addr(),
        &query("4.3.1.10.in-addr.arpa.", RecordType::PTR),
    );
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let r = udp(
        srv.addr(),
        &query("4.3.2.10.in-addr.arpa.", RecordType::PTR),
    );
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
}

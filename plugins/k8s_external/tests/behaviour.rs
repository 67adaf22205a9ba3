//! The handler with a stand-in kubernetes, through the test kit.

mod common;

use std::sync::Arc;

use common::{SERIAL, fake};
use ferrodns_plugin::proto::op::{Message, ResponseCode};
use ferrodns_plugin::proto::rr::{Record, RecordType};
use ferrodns_plugin::{Externaler, Plugin, Reply};
use ferrodns_plugin_k8s_external::DESCRIPTOR;
use ferrodns_plugin_test::{self as testkit, Fixed};

fn external(text: &str) -> Arc<dyn Plugin> {
    let settings = testkit::setup(&DESCRIPTOR, text).expect("setup");
    let k: Arc<dyn Externaler> = Arc::new(fake());
    settings.handles.publish("kubernetes", k);
    settings.plugins[0].clone()
}

async fn ask(plugin: &Arc<dyn Plugin>, name: &str, qtype: RecordType) -> Message {
    let chain = vec![plugin.clone(), Fixed::rcode(ResponseCode::Refused)];
    let mut req = testkit::request(name, qtype);
    match testkit::run(&chain, &mut req).await {
        Ok(Reply::Message(m)) => *m,
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn text(rrs: &[Record]) -> Vec<String> {
    rrs.iter()
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect()
}

#[tokio::test]
async fn apex_soa_and_ns_with_glue() {
    let p = external("k8s_external example.org");
    let m = ask(&p, "example.org.", RecordType::SOA).await;
    assert!(m.metadata.authoritative);
    assert_eq!(
        text(&m.answers),
        [format!(
            "example.org. 5 SOA ns1.dns.example.org. hostmaster.dns.example.org. {SERIAL} 7200 1800 86400 5"
        )]
    );
    let m = ask(&p, "Example.ORG.", RecordType::NS).await;
    assert_eq!(text(&m.answers), ["example.org. 5 NS ns1.dns.example.org."]);
    assert_eq!(
        text(&m.additionals),
        [
            "ns1.dns.Example.ORG. 5 A 192.0.2.53",
            "ns1.dns.Example.ORG. 5 AAAA 2001:db8::53"
        ]
    );
    let m = ask(&p, "example.org.", RecordType::A).await;
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
}

#[tokio::test]
async fn sub_apex_names() {
    let p = external("k8s_external example.org {\n ttl 60\n}");
    let m = ask(&p, "NS1.dns.example.org.", RecordType::A).await;
    assert_eq!(text(&m.answers), ["NS1.dns.example.org. 60 A 192.0.2.53"]);
    let m = ask(&p, "ns1.dns.example.org.", RecordType::AAAA).await;
    assert_eq!(
        text(&m.answers),
        ["ns1.dns.example.org. 60 AAAA 2001:db8::53"]
    );
    let m = ask(&p, "ns1.dns.example.org.", RecordType::MX).await;
    assert!(m.answers.is_empty());
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.authorities.len(), 1);
    let m = ask(&p, "dns.example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.authorities.len(), 1);
    for nx in ["ns2.dns.example.org.", "a.ns1.dns.example.org."] {
        let m = ask(&p, nx, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{nx}");
        assert_eq!(
            text(&m.authorities),
            [format!(
                "example.org. 60 SOA ns1.dns.example.org. hostmaster.dns.example.org. {SERIAL} 7200 1800 86400 60"
            )]
        );
    }
}

#[tokio::test]
async fn other_apex_label() {
    let p = external("k8s_external example.org {\n apex zone\n}");
    let m = ask(&p, "ns1.zone.example.org.", RecordType::A).await;
    assert_eq!(m.answers.len(), 1);
    let m = ask(&p, "example.org.", RecordType::NS).await;
    assert_eq!(
        text(&m.answers),
        ["example.org. 5 NS ns1.zone.example.org."]
    );
}

#[tokio::test]
async fn addresses_deduplicated_at_the_plugin_ttl() {
    let p = external("k8s_external example.org");
    let m = ask(&p, "Svc1.ns.example.org.", RecordType::A).await;
    assert!(m.metadata.authoritative);
    assert_eq!(
        text(&m.answers),
        [
            "Svc1.ns.example.org. 5 A 192.0.2.10",
            "Svc1.ns.example.org. 5 A 192.0.2.11"
        ]
    );
    let m = ask(&p, "svc1.ns.example.org.", RecordType::AAAA).await;
    assert_eq!(
        text(&m.answers),
        ["svc1.ns.example.org. 5 AAAA 2001:db8::10"]
    );
    // A type with no records here: NODATA with the SOA.
    let m = ask(&p, "svc1.ns.example.org.", RecordType::TXT).await;
    assert!(m.answers.is_empty());
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.authorities.len(), 1);
}

#[tokio::test]
async fn srv_targets_from_keys_with_addresses_in_additional() {
    let p = external("k8s_external example.org");
    let m = ask(&p, "svc1.ns.example.org.", RecordType::SRV).await;
    assert_eq!(
        text(&m.answers),
        [
            "svc1.ns.example.org. 30 SRV 0 25 80 svc1.ns.example.org.",
            "svc1.ns.example.org. 30 SRV 0 25 443 svc1.ns.example.org.",
        ]
    );
    assert_eq!(
        text(&m.additionals),
        [
            "svc1.ns.example.org. 5 A 192.0.2.10",
            "svc1.ns.example.org. 5 AAAA 2001:db8::10",
            "svc1.ns.example.org. 5 A 192.0.2.11",
        ]
    );
    // Endpoints: a target per endpoint; one without a port is left out.
    let m = ask(&p, "hl.ns.example.org.", RecordType::SRV).await;
    assert_eq!(
        text(&m.answers),
        [
            "hl.ns.example.org. 30 SRV 0 33 80 pod-a.hl.ns.example.org.",
            "hl.ns.example.org. 30 SRV 0 33 80 pod-b.hl.ns.example.org.",
        ]
    );
    assert_eq!(m.additionals.len(), 2);
}

#[tokio::test]
async fn cname_for_a_host_name() {
    let p = external("k8s_external example.org");
    // No server to look the target up through here: only the CNAME (the lookup's failure is
    // ignored, as in CoreDNS).
    let m = ask(&p, "ext.ns.example.org.", RecordType::A).await;
    assert_eq!(
        text(&m.answers),
        ["ext.ns.example.org. 30 CNAME lb.example.net."]
    );
    let m = ask(&p, "ext.ns.example.org.", RecordType::SRV).await;
    assert_eq!(
        text(&m.answers),
        ["ext.ns.example.org. 30 SRV 0 100 8080 lb.example.net."]
    );
}

#[tokio::test]
async fn ptr_names_in_the_first_zone() {
    let p = external("k8s_external example.org example.com 10.2.0.192.in-addr.arpa");
    let m = ask(&p, "10.2.0.192.in-addr.arpa.", RecordType::PTR).await;
    // That zone's apex: NODATA. Served from a zone that holds it instead:
    assert!(m.answers.is_empty());
    let p = external("k8s_external example.org in-addr.arpa");
    let m = ask(&p, "10.2.0.192.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(
        text(&m.answers),
        [
            "10.2.0.192.in-addr.arpa. 5 PTR svc1.ns.example.org.",
            "10.2.0.192.in-addr.arpa. 5 PTR other.ns.example.org.",
        ]
    );
}

#[tokio::test]
async fn nxdomain_and_nodata_carry_the_soa_and_fallthrough_passes_nxdomain_only() {
    let p = external("k8s_external example.org");
    let m = ask(&p, "none.ns.example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities.len(), 1);
    let m = ask(&p, "other.example.net.", RecordType::A).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::Refused,
        "outside the zones"
    );

    let p = external("k8s_external example.org {\n fallthrough\n}");
    let m = ask(&p, "none.ns.example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused, "passed on");
    let m = ask(&p, "ns.example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.authorities.len(), 1);
}

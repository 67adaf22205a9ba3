//! The dns64 handler: when it translates, how it builds the AAAA reply, and its metric.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::{A, AAAA, CNAME, SOA};
use ferrodns_plugin::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use ferrodns_plugin::{Lookup, Metrics, Plugin, PluginError, Reply, Request, async_trait};
use ferrodns_plugin_dns64::{Config, Dns64, parse_prefix};
use ferrodns_plugin_test::{self as testkit, Fixed};

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("name")
}

fn soa(ttl: u32) -> Record {
    Record::from_rdata(
        name("example.org."),
        ttl,
        RData::SOA(SOA::new(
            name("ns.example.org."),
            name("h.example.org."),
            1,
            7200,
            3600,
            86400,
            30,
        )),
    )
}

fn reply(rcode: ResponseCode, answers: Vec<Record>, authorities: Vec<Record>) -> Message {
    let mut m = Message::new(0, MessageType::Response, OpCode::Query);
    m.metadata.response_code = rcode;
    m.answers = answers;
    m.authorities = authorities;
    m
}

/// The server's lookup, answering the A query with a fixed reply and recording the questions.
struct FakeLookup {
    a: Message,
    asked: Mutex<Vec<(String, RecordType)>>,
}

#[async_trait]
impl Lookup for FakeLookup {
    async fn lookup(
        &self,
        _from: &Request,
        name: Name,
        qtype: RecordType,
    ) -> Result<Message, PluginError> {
        self.asked
            .lock()
            .expect("lock")
            .push((name.to_string(), qtype));
        Ok(self.a.clone())
    }
}

struct Run {
    out: Result<Reply, PluginError>,
    asked: Vec<(String, RecordType)>,
    metrics: String,
}

async fn run(cfg: Config, src: &str, qtype: RecordType, original: Message, a: Message) -> Run {
    let metrics = Metrics::new();
    let chain: Vec<Arc<dyn Plugin>> = vec![
        Arc::new(Dns64::new(cfg, &metrics)),
        Fixed::new(Ok(Reply::message(original))),
    ];
    let lookup = Arc::new(FakeLookup {
        a,
        asked: Mutex::new(Vec::new()),
    });
    let mut req = testkit::request("WWW.Example.org.", qtype);
    req.src = src.parse::<SocketAddr>().expect("addr");
    req.set_upstream(lookup.clone(), 0);
    let out = testkit::run(&chain, &mut req).await;
    let asked = lookup.asked.lock().expect("lock").clone();
    Run {
        out,
        asked,
        metrics: metrics.encode(),
    }
}

fn msg(r: &Result<Reply, PluginError>) -> &Message {
    match r {
        Ok(Reply::Message(m)) => m,
        other => panic!("not a message: {other:?}"),
    }
}

fn a_rr(owner: &str, ttl: u32, ip: [u8; 4]) -> Record {
    Record::from_rdata(
        name(owner),
        ttl,
        RData::A(A::new(ip[0], ip[1], ip[2], ip[3])),
    )
}

fn aaaa_rr(owner: &str, ttl: u32, ip: &str) -> Record {
    Record::from_rdata(name(owner), ttl, RData::AAAA(AAAA(ip.parse().expect("ip"))))
}

const V6: &str = "[2001:db8::1]:5353";
const V4: &str = "192.0.2.9:5353";

#[tokio::test]
async fn nodata_is_synthesised_from_the_a_records() {
    let a = reply(
        ResponseCode::NoError,
        vec![
            a_rr("www.example.org.", 300, [192, 0, 2, 1]),
            a_rr("www.example.org.", 300, [192, 0, 2, 2]),
        ],
        vec![],
    );
    let original = reply(ResponseCode::NoError, vec![], vec![soa(120)]);
    let r = run(Config::default(), V6, RecordType::AAAA, original, a).await;
    let m = msg(&r.out);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.queries[0].name().to_string(), "WWW.Example.org.");
    assert!(!m.metadata.authoritative);
    assert_eq!(
        m.answers,
        vec![
            aaaa_rr("www.example.org.", 120, "64:ff9b::192.0.2.1"),
            aaaa_rr("www.example.org.", 120, "64:ff9b::192.0.2.2"),
        ]
    );
    // The A query went through the server, for the lowercased name.
    assert_eq!(
        r.asked,
        vec![("www.example.org.".to_string(), RecordType::A)]
    );
    assert!(
        r.metrics
            .contains("coredns_dns64_requests_translated_total{server=\"dns://:53\"} 1"),
        "{}",
        r.metrics
    );
}

#[tokio::test]
async fn ttl_is_the_smaller_of_a_and_soa_and_600_without_soa() {
    let a = reply(
        ResponseCode::NoError,
        vec![
            a_rr("www.example.org.", 60, [192, 0, 2, 1]),
            a_rr("www.example.org.", 3600, [192, 0, 2, 2]),
        ],
        vec![],
    );
    let original = reply(ResponseCode::NoError, vec![], vec![]);
    let r = run(Config::default(), V6, RecordType::AAAA, original, a).await;
    let ttls: Vec<u32> = msg(&r.out).answers.iter().map(|r| r.ttl).collect();
    assert_eq!(ttls, vec![60, 600]);
}

#[tokio::test]
async fn a_reply_sections_flags_and_cnames_are_carried_over() {
    let mut a = reply(
        ResponseCode::NoError,
        vec![
            Record::from_rdata(
                name("www.example.org."),
                300,
                RData::CNAME(CNAME(name("web.example.net."))),
            ),
            a_rr("web.example.net.", 300, [198, 51, 100, 7]),
        ],
        vec![soa(50)],
    );
    a.metadata.truncation = true;
    a.additionals = vec![a_rr("ns.example.net.", 10, [203, 0, 113, 1])];
    let original = reply(ResponseCode::NoError, vec![], vec![soa(900)]);
    let r = run(Config::default(), V6, RecordType::AAAA, original, a.clone()).await;
    let m = msg(&r.out);
    assert!(m.metadata.truncation);
    assert_eq!(m.answers[0], a.answers[0]);
    assert_eq!(
        m.answers[1],
        aaaa_rr("web.example.net.", 300, "64:ff9b::198.51.100.7")
    );
    assert_eq!(m.authorities, a.authorities);
    assert_eq!(m.additionals, a.additionals);
}

#[tokio::test]
async fn an_aaaa_answer_is_kept_unless_translate_all() {
    let a = reply(
        ResponseCode::NoError,
        vec![a_rr("www.example.org.", 300, [192, 0, 2, 1])],
        vec![],
    );
    let original = reply(
        ResponseCode::NoError,
        vec![aaaa_rr("www.example.org.", 300, "2001:db8::5")],
        vec![],
    );
    let r = run(
        Config::default(),
        V6,
        RecordType::AAAA,
        original.clone(),
        a.clone(),
    )
    .await;
    assert_eq!(msg(&r.out).answers, original.answers);
    assert!(r.asked.is_empty());
    assert!(
        !r.metrics
            .contains("coredns_dns64_requests_translated_total{")
    );

    let cfg = Config {
        translate_all: true,
        ..Config::default()
    };
    let r = run(cfg, V6, RecordType::AAAA, original, a).await;
    assert_eq!(
        msg(&r.out).answers,
        vec![aaaa_rr("www.example.org.", 300, "64:ff9b::192.0.2.1")]
    );
}

#[tokio::test]
async fn nxdomain_is_never_translated() {
    let a = reply(
        ResponseCode::NoError,
        vec![a_rr("www.example.org.", 300, [192, 0, 2, 1])],
        vec![],
    );
    let original = reply(ResponseCode::NXDomain, vec![], vec![soa(60)]);
    let cfg = Config {
        translate_all: true,
        ..Config::default()
    };
    let r = run(cfg, V6, RecordType::AAAA, original.clone(), a).await;
    assert_eq!(msg(&r.out).metadata.response_code, ResponseCode::NXDomain);
    assert!(r.asked.is_empty());
}

#[tokio::test]
async fn ipv4_clients_only_with_allow_ipv4() {
    let a = reply(
        ResponseCode::NoError,
        vec![a_rr("www.example.org.", 300, [192, 0, 2, 1])],
        vec![],
    );
    let original = reply(ResponseCode::NoError, vec![], vec![]);
    for src in [V4, "[::ffff:192.0.2.9]:53"] {
        let r = run(
            Config::default(),
            src,
            RecordType::AAAA,
            original.clone(),
            a.clone(),
        )
        .await;
        assert!(msg(&r.out).answers.is_empty(), "{src}");
        assert!(r.asked.is_empty(), "{src}");
        let cfg = Config {
            allow_ipv4: true,
            ..Config::default()
        };
        let r = run(cfg, src, RecordType::AAAA, original.clone(), a.clone()).await;
        assert_eq!(msg(&r.out).answers.len(), 1, "{src}");
    }
}

#[tokio::test]
async fn other_types_pass_through() {
    let a = reply(
        ResponseCode::NoError,
        vec![a_rr("www.example.org.", 300, [192, 0, 2, 1])],
        vec![],
    );
    let original = reply(ResponseCode::NoError, vec![], vec![]);
    for t in [RecordType::A, RecordType::TXT] {
        let r = run(Config::default(), V6, t, original.clone(), a.clone()).await;
        assert!(msg(&r.out).answers.is_empty());
        assert!(r.asked.is_empty());
    }
}

#[tokio::test]
async fn custom_prefix_and_nodata_a_reply() {
    let cfg = Config {
        prefix: parse_prefix("2001:db8:122:344::/64").expect("prefix"),
        ..Config::default()
    };
    let a = reply(
        ResponseCode::NoError,
        vec![a_rr("www.example.org.", 300, [192, 0, 2, 33])],
        vec![],
    );
    let r = run(
        cfg,
        V6,
        RecordType::AAAA,
        reply(ResponseCode::NoError, vec![], vec![]),
        a,
    )
    .await;
    assert_eq!(
        msg(&r.out).answers,
        vec![aaaa_rr(
            "www.example.org.",
            300,
            "2001:db8:122:344:c0:2:2100:0"
        )]
    );
    // The A lookup itself is NXDOMAIN: the reply is NOERROR with its authority, as CoreDNS.
    let a = reply(ResponseCode::NXDomain, vec![], vec![soa(30)]);
    let r = run(
        Config::default(),
        V6,
        RecordType::AAAA,
        reply(ResponseCode::NoError, vec![], vec![]),
        a,
    )
    .await;
    let m = msg(&r.out);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities, vec![soa(30)]);
}

#[tokio::test]
async fn rcode_only_outcomes_pass_through() {
    let metrics = Metrics::new();
    let chain: Vec<Arc<dyn Plugin>> = vec![
        Arc::new(Dns64::new(Config::default(), &metrics)),
        Fixed::new(Ok(Reply::Rcode(ResponseCode::ServFail))),
    ];
    let mut req = testkit::request("example.org.", RecordType::AAAA);
    req.src = V6.parse().expect("addr");
    let out = testkit::run(&chain, &mut req).await;
    assert!(
        matches!(out, Ok(Reply::Rcode(ResponseCode::ServFail))),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_servfail_reply_is_translated_as_upstream_does() {
    let a = reply(
        ResponseCode::NoError,
        vec![a_rr("www.example.org.", 300, [192, 0, 2, 1])],
        vec![],
    );
    let original = reply(ResponseCode::ServFail, vec![], vec![]);
    let r = run(Config::default(), V6, RecordType::AAAA, original, a).await;
    let m = msg(&r.out);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
}

#[tokio::test]
async fn chaos_aaaa_passes_through() {
    let metrics = Metrics::new();
    let chain: Vec<Arc<dyn Plugin>> = vec![
        Arc::new(Dns64::new(Config::default(), &metrics)),
        Fixed::rcode(ResponseCode::NoError),
    ];
    let mut m = testkit::request("example.org.", RecordType::AAAA)
        .message()
        .clone();
    let q = m.queries[0].clone().set_query_class(DNSClass::CH).clone();
    m.queries = vec![q];
    let mut req = testkit::from_message(m, ferrodns_plugin::Protocol::Udp);
    req.src = V6.parse().expect("addr");
    let out = testkit::run(&chain, &mut req).await;
    assert_eq!(msg(&out).metadata.response_code, ResponseCode::NoError);
}

#[tokio::test]
async fn the_reply_carries_the_lookups_opt_record() {
    let metrics = Metrics::new();
    let a = reply(
        ResponseCode::NoError,
        vec![a_rr("www.example.org.", 300, [192, 0, 2, 1])],
        vec![],
    );
    let chain: Vec<Arc<dyn Plugin>> = vec![
        Arc::new(Dns64::new(Config::default(), &metrics)),
        Fixed::new(Ok(Reply::message(reply(
            ResponseCode::NoError,
            vec![],
            vec![],
        )))),
    ];
    let mut req = testkit::request_edns("www.example.org.", RecordType::AAAA, 1232, true);
    req.src = V6.parse().expect("addr");
    req.set_upstream(
        Arc::new(FakeLookup {
            a,
            asked: Mutex::new(Vec::new()),
        }),
        0,
    );
    let out = testkit::run(&chain, &mut req).await;
    let e = msg(&out).edns.as_ref().expect("an OPT record");
    assert_eq!(e.max_payload(), 1232);
    assert!(e.flags().dnssec_ok);
}

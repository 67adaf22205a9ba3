//! The acl handler on Corefile snippets: actions, type and source matching, rule selection by
//! zone, the replies' OPT record and the metrics (cases after CoreDNS's acl_test.go and more).

use std::net::SocketAddr;
use std::sync::Arc;

use ferrodns_plugin::proto::op::ResponseCode;
use ferrodns_plugin::proto::rr::RecordType;
use ferrodns_plugin::proto::rr::rdata::opt::EdnsOption;
use ferrodns_plugin::{Plugin, Reply, Shared};
use ferrodns_plugin_acl::DESCRIPTOR;
use ferrodns_plugin_test::{self as testkit, Fixed};

/// What came back, in short.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The next plugin answered (it answers NXDOMAIN so that a pass is told from a filter).
    Passed,
    /// REFUSED with EDE 15.
    Blocked,
    /// Empty NOERROR with EDE 17.
    Filtered,
    /// No reply.
    Dropped,
}

use Outcome::*;

/// The handler of `directives` (in a `.:53` block) followed by an NXDOMAIN answerer, and the
/// shared context holding its metrics.
fn chain(directives: &str) -> (Vec<Arc<dyn Plugin>>, Shared) {
    let shared = Shared::default();
    let block = testkit::setup_with(&DESCRIPTOR, directives, &shared)
        .unwrap_or_else(|e| panic!("{directives}: {e}"));
    let mut plugins = block.plugins;
    assert_eq!(plugins.len(), 1);
    plugins.push(Fixed::rcode(ResponseCode::NXDomain));
    (plugins, shared)
}

async fn outcome(plugins: &[Arc<dyn Plugin>], name: &str, qtype: RecordType, src: &str) -> Outcome {
    let mut req = testkit::request(name, qtype);
    req.src = SocketAddr::new(src.parse().unwrap_or_else(|_| panic!("{src}")), 40212);
    match testkit::run(plugins, &mut req).await {
        Ok(Reply::Drop) => Dropped,
        Ok(Reply::Message(m)) => {
            let ede = m.edns.as_ref().and_then(|e| {
                e.options().options.iter().find_map(|(_, o)| match o {
                    EdnsOption::Unknown(15, data) => Some(data.clone()),
                    _ => None,
                })
            });
            match (m.metadata.response_code, ede.as_deref()) {
                (ResponseCode::NXDomain, None) => Passed,
                (ResponseCode::Refused, Some([0, 15])) => Blocked,
                (ResponseCode::NoError, Some([0, 17])) if m.answers.is_empty() => Filtered,
                other => panic!("unexpected reply {other:?}: {m:?}"),
            }
        }
        other => panic!("unexpected outcome {other:?}"),
    }
}

/// (Corefile directives, query name, type, source, expected outcome)
type Case = (
    &'static str,
    &'static str,
    RecordType,
    &'static str,
    Outcome,
);

const CASES: &[Case] = &[
    // Blacklists.
    (
        "acl example.org {\nblock type A net 192.168.0.0/16\n}",
        "www.example.org.",
        RecordType::A,
        "192.168.0.2",
        Blocked,
    ),
    (
        "acl example.org {\nblock type A net 192.168.0.0/16\n}",
        "www.example.org.",
        RecordType::A,
        "192.167.0.2",
        Passed,
    ),
    (
        "acl example.org {\nblock type A net 192.168.0.0/16\n}",
        "www.example.org.",
        RecordType::AAAA,
        "192.168.0.2",
        Passed,
    ),
    (
        "acl example.org {\nblock type * net 192.168.0.0/16\n}",
        "www.example.org.",
        RecordType::TXT,
        "192.168.0.2",
        Blocked,
    ),
    (
        "acl example.org {\nblock type A net *\n}",
        "www.example.org.",
        RecordType::A,
        "10.1.0.2",
        Blocked,
    ),
    (
        "acl example.org {\nblock type A net *\n}",
        "www.example.org.",
        RecordType::A,
        "2001:db8::1",
        Blocked,
    ),
    (
        "acl example.org {\nblock type A net *\n}",
        "www.example.org.",
        RecordType::MX,
        "10.1.0.2",
        Passed,
    ),
    (
        "acl example.org {\nblock type A net 192.168.1.10\n}",
        "www.example.org.",
        RecordType::A,
        "192.168.1.10",
        Blocked,
    ),
    (
        "acl example.org {\nblock type A net 192.168.1.10\n}",
        "www.example.org.",
        RecordType::A,
        "192.168.1.11",
        Passed,
    ),
    // Filter.
    (
        "acl example.org {\nfilter type A net 192.168.0.0/16\n}",
        "www.example.org.",
        RecordType::A,
        "192.168.0.2",
        Filtered,
    ),
    (
        "acl example.org {\nfilter type A net 192.168.0.0/16\n}",
        "www.example.org.",
        RecordType::A,
        "192.169.0.2",
        Passed,
    ),
    // Whitelist.
    (
        "acl example.org {\nallow net 192.168.0.0/16\nblock\n}",
        "www.example.org.",
        RecordType::A,
        "192.168.0.2",
        Passed,
    ),
    (
        "acl example.org {\nallow net 192.168.0.0/16\nblock\n}",
        "www.example.org.",
        RecordType::A,
        "10.0.0.2",
        Blocked,
    ),
    (
        "acl example.org {\nallow net 192.168.0.0/16\nblock\n}",
        "www.example.org.",
        RecordType::A,
        "::1",
        Blocked,
    ),
    // Drop, and the first matching policy wins.
    (
        "acl example.org {\ndrop net 192.168.0.0/16\n}",
        "www.example.org.",
        RecordType::A,
        "192.168.0.2",
        Dropped,
    ),
    (
        "acl example.org {\nblock net 192.168.1.0/24\ndrop net 192.168.0.0/16\n}",
        "www.example.org.",
        RecordType::A,
        "192.168.1.2",
        Blocked,
    ),
    (
        "acl example.org {\nblock net 192.168.1.0/24\ndrop net 192.168.0.0/16\n}",
        "www.example.org.",
        RecordType::A,
        "192.168.2.2",
        Dropped,
    ),
    (
        "acl example.org {\ndrop type A net 192.168.0.0/16\nallow\n}",
        "www.example.org.",
        RecordType::A,
        "192.168.2.2",
        Dropped,
    ),
    (
        "acl example.org {\ndrop type A net 192.168.0.0/16\nallow\n}",
        "www.example.org.",
        RecordType::AAAA,
        "192.168.2.2",
        Passed,
    ),
    // Several types.
    (
        "acl {\nblock type TXT ANY CNAME\n}",
        "x.",
        RecordType::ANY,
        "10.0.0.1",
        Blocked,
    ),
    (
        "acl {\nblock type TXT ANY CNAME\n}",
        "x.",
        RecordType::CNAME,
        "10.0.0.1",
        Blocked,
    ),
    (
        "acl {\nblock type TXT ANY CNAME\n}",
        "x.",
        RecordType::A,
        "10.0.0.1",
        Passed,
    ),
    (
        "acl {\nblock type None\n}",
        "x.",
        RecordType::SRV,
        "10.0.0.1",
        Blocked,
    ),
    // Zones: the first rule whose zones hold the name is the only one judged... unless none of
    // its policies match, then the next rule is.
    (
        "acl a.example.org {\nblock net 192.168.1.0/24\n}",
        "www.a.example.org.",
        RecordType::A,
        "192.168.1.2",
        Blocked,
    ),
    (
        "acl a.example.org {\nblock net 192.168.1.0/24\n}",
        "www.b.example.org.",
        RecordType::A,
        "192.168.1.2",
        Passed,
    ),
    (
        "acl a.example.org {\nblock net 192.168.1.0/24\n}\nacl b.example.org {\nblock net 192.168.2.0/24\n}",
        "b.example.org.",
        RecordType::A,
        "192.168.2.2",
        Blocked,
    ),
    (
        "acl a.example.org {\nblock net 192.168.1.0/24\n}\nacl b.example.org {\nblock net 192.168.2.0/24\n}",
        "b.example.org.",
        RecordType::A,
        "192.168.1.2",
        Passed,
    ),
    (
        "acl example.org {\nallow net 10.0.0.0/8\n}\nacl {\nblock\n}",
        "x.example.org.",
        RecordType::A,
        "10.0.0.2",
        Passed,
    ),
    (
        "acl example.org {\nallow net 10.0.0.0/8\n}\nacl {\nblock\n}",
        "x.example.org.",
        RecordType::A,
        "11.0.0.2",
        Blocked,
    ),
    (
        "acl example.org {\nallow net 10.0.0.0/8\n}\nacl {\nblock\n}",
        "x.example.net.",
        RecordType::A,
        "10.0.0.2",
        Blocked,
    ),
    (
        "acl example.org {\nfilter\n}\nacl {\ndrop\n}",
        "X.EXAMPLE.ORG.",
        RecordType::A,
        "10.0.0.2",
        Filtered,
    ),
    (
        "acl example.org {\nfilter\n}\nacl {\ndrop\n}",
        "example.com.",
        RecordType::A,
        "10.0.0.2",
        Dropped,
    ),
    (
        "acl example.org",
        "example.org.",
        RecordType::A,
        "10.0.0.2",
        Passed,
    ),
    // IPv6 sources.
    (
        "acl example.org {\nblock type A net 2001:db8:abcd:0012::0/64\n}",
        "www.example.org.",
        RecordType::A,
        "2001:db8:abcd:0012::2",
        Blocked,
    ),
    (
        "acl example.org {\nblock type A net 2001:db8:abcd:0012::0/64\n}",
        "www.example.org.",
        RecordType::A,
        "2001:db8:abcd:0013::2",
        Passed,
    ),
    (
        "acl example.org {\nblock net 2001:db8:abcd:0012::0/64\n}",
        "www.example.org.",
        RecordType::A,
        "192.168.0.1",
        Passed,
    ),
    (
        "acl example.org {\nblock net 2001:db8:abcd:0012::1\n}",
        "www.example.org.",
        RecordType::A,
        "2001:db8:abcd:12::1",
        Blocked,
    ),
    (
        "acl example.org {\nblock net 2001:db8:abcd:0012::1\n}",
        "www.example.org.",
        RecordType::A,
        "2001:db8:abcd:12::2",
        Passed,
    ),
    (
        "acl example.org {\nallow net 2001:db8:abcd:0012::0/64\nblock net 2001:db8:abcd:0012::0/48\n}",
        "www.example.org.",
        RecordType::A,
        "2001:db8:abcd:12::2",
        Passed,
    ),
    (
        "acl example.org {\nallow net 2001:db8:abcd:0012::0/64\nblock net 2001:db8:abcd:0012::0/48\n}",
        "www.example.org.",
        RecordType::A,
        "2001:db8:abcd:13::2",
        Blocked,
    ),
    (
        "acl example.org {\ndrop net 2001:db8:abcd:0012::0/64\n}",
        "www.example.org.",
        RecordType::A,
        "2001:db8:abcd:12::2",
        Dropped,
    ),
    // An IPv4 client on a dual-stack socket is an IPv4 client; a network written in IPv6 form
    // never holds it.
    (
        "acl {\nblock net 127.0.0.0/8\n}",
        "x.",
        RecordType::A,
        "::ffff:127.0.0.1",
        Blocked,
    ),
    (
        "acl {\nblock net ::ffff:127.0.0.0/104\n}",
        "x.",
        RecordType::A,
        "::ffff:127.0.0.1",
        Passed,
    ),
    (
        "acl {\nblock net ::ffff:127.0.0.0/104\n}",
        "x.",
        RecordType::A,
        "127.0.0.1",
        Passed,
    ),
    (
        "acl {\nblock net ::/0\n}",
        "x.",
        RecordType::A,
        "127.0.0.1",
        Passed,
    ),
    (
        "acl {\nblock net 0.0.0.0/0\n}",
        "x.",
        RecordType::A,
        "::1",
        Passed,
    ),
];

#[tokio::test]
async fn table() {
    for (directives, name, qtype, src, want) in CASES {
        let (plugins, _) = chain(directives);
        let got = outcome(&plugins, name, *qtype, src).await;
        assert_eq!(&got, want, "{directives} / {name} {qtype} from {src}");
    }
}

#[tokio::test]
async fn block_and_filter_replies_carry_an_opt_with_the_extended_error() {
    let (plugins, _) = chain("acl {\nblock type A\nfilter type AAAA\n}");
    for (qtype, rcode, info) in [
        (RecordType::A, ResponseCode::Refused, 15u8),
        (RecordType::AAAA, ResponseCode::NoError, 17u8),
    ] {
        let mut req = testkit::request("WWW.example.org.", qtype);
        let Ok(Reply::Message(m)) = testkit::run(&plugins, &mut req).await else {
            panic!("no message");
        };
        assert_eq!(m.metadata.id, 4242);
        assert_eq!(m.metadata.response_code, rcode);
        assert!(m.metadata.recursion_desired);
        assert!(!m.metadata.authoritative);
        assert!(!m.metadata.recursion_available);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.queries[0].name().to_string(), "WWW.example.org.");
        assert!(m.answers.is_empty() && m.authorities.is_empty() && m.additionals.is_empty());
        let Some(e) = m.edns.as_ref() else {
            panic!("no OPT: {m:?}");
        };
        assert_eq!(e.max_payload(), 4096);
        assert!(e.flags().dnssec_ok);
        assert_eq!(
            e.options()
                .options
                .iter()
                .map(|(_, o)| o.clone())
                .collect::<Vec<_>>(),
            vec![EdnsOption::Unknown(15, vec![0, info])]
        );
    }
}

#[tokio::test]
async fn last_in_chain_an_allowed_query_has_no_next_plugin() {
    let shared = Shared::default();
    let block = testkit::setup_with(&DESCRIPTOR, "acl", &shared).unwrap_or_else(|e| panic!("{e}"));
    let mut req = testkit::request("example.org.", RecordType::A);
    let err = testkit::run(&block.plugins, &mut req)
        .await
        .err()
        .map(|e| e.message);
    assert_eq!(err.as_deref(), Some("plugin/acl: no next plugin found"));
}

#[tokio::test]
async fn metrics_count_each_outcome_with_server_zone_and_view() {
    let (plugins, shared) = chain(
        "acl example.org {\nblock type A\nfilter type AAAA\ndrop type MX\n}\nacl {\nblock type TXT\n}",
    );
    for (name, qtype) in [
        ("a.example.org.", RecordType::A),
        ("a.example.org.", RecordType::A),
        ("a.example.org.", RecordType::AAAA),
        ("a.example.org.", RecordType::MX),
        ("a.example.org.", RecordType::SRV),
        ("example.net.", RecordType::TXT),
        ("example.net.", RecordType::A),
    ] {
        outcome(&plugins, name, qtype, "127.0.0.1").await;
    }
    let text = shared.metrics.encode();
    for line in [
        "coredns_acl_blocked_requests_total{server=\"dns://:53\",view=\"\",zone=\"example.org.\"} 2",
        "coredns_acl_blocked_requests_total{server=\"dns://:53\",view=\"\",zone=\".\"} 1",
        "coredns_acl_filtered_requests_total{server=\"dns://:53\",view=\"\",zone=\"example.org.\"} 1",
        "coredns_acl_dropped_requests_total{server=\"dns://:53\",view=\"\",zone=\"example.org.\"} 1",
        "coredns_acl_allowed_requests_total{server=\"dns://:53\",view=\"\"} 2",
        "# HELP coredns_acl_blocked_requests Counter of DNS requests being blocked.",
        "# TYPE coredns_acl_allowed_requests counter",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
}

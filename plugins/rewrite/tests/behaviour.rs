//! Behaviour of each rule kind on the request and on the reply.

use std::sync::{Arc, Mutex};

use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::{A, CNAME, MX, SRV};
use ferrodns_plugin::proto::rr::{Name, RData, Record, RecordType};
use ferrodns_plugin::{Lookup, Next, Plugin, PluginError, Reply, Request, async_trait};
use ferrodns_plugin_rewrite::DESCRIPTOR;
use ferrodns_plugin_test as testkit;

type Build = dyn Fn(&Request) -> Result<Reply, PluginError> + Send + Sync;

/// A backend that records what it saw and answers with `build`.
struct Backend {
    seen: Mutex<Vec<Request>>,
    build: Box<Build>,
}

impl Backend {
    fn new(
        build: impl Fn(&Request) -> Result<Reply, PluginError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Backend {
            seen: Mutex::new(Vec::new()),
            build: Box::new(build),
        })
    }
    fn last(&self) -> Request {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("backend was called")
    }
}

#[async_trait]
impl Plugin for Backend {
    fn name(&self) -> &'static str {
        "backend"
    }
    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        self.seen.lock().unwrap().push(req.clone());
        (self.build)(req)
    }
}

fn reply_with(req: &Request, records: Vec<Record>) -> Reply {
    let mut m = Message::new(req.id(), MessageType::Response, OpCode::Query);
    m.queries = req.message().queries.clone();
    m.answers = records;
    Reply::message(m)
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// Answers an A record owned by the question name, a CNAME to `target.<qname>` and an MX.
fn echo_backend() -> Arc<Backend> {
    Backend::new(|req| {
        let q = req.qname();
        let target = Name::from_ascii(format!("target.{q}")).unwrap();
        Ok(reply_with(
            req,
            vec![
                Record::from_rdata(q.clone(), 300, RData::A(A::new(192, 0, 2, 1))),
                Record::from_rdata(q.clone(), 5, RData::CNAME(CNAME(target.clone()))),
                Record::from_rdata(q.clone(), 60, RData::MX(MX::new(10, target))),
            ],
        ))
    })
}

async fn run(
    directives: &str,
    backend: Arc<Backend>,
    mut req: Request,
) -> (Result<Reply, PluginError>, Request) {
    let block = testkit::setup(&DESCRIPTOR, directives).expect("setup");
    let mut chain = block.plugins.clone();
    chain.push(backend);
    let out = testkit::run(&chain, &mut req).await;
    (out, req)
}

fn msg(r: Result<Reply, PluginError>) -> Message {
    match r.expect("reply") {
        Reply::Message(m) => *m,
        other => panic!("not a message: {other:?}"),
    }
}

#[tokio::test]
async fn exact_name_is_rewritten_and_mapped_back() {
    let b = echo_backend();
    let (out, _) = run(
        "rewrite name foo.example. bar.example.",
        b.clone(),
        testkit::request("Foo.Example.", RecordType::A),
    )
    .await;
    assert_eq!(b.last().qname(), name("bar.example."));
    let m = msg(out);
    assert_eq!(m.queries[0].name(), &name("Foo.Example."));
    assert_eq!(m.answers[0].name, name("foo.example."));
    // answer auto also maps values that end in the new name.
    match &m.answers[1].data {
        RData::CNAME(c) => assert_eq!(c.0, name("target.foo.example.")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn suffix_without_auto_keeps_the_new_names() {
    let b = echo_backend();
    let (out, _) = run(
        "rewrite name suffix .a. .b.",
        b.clone(),
        testkit::request("x.a.", RecordType::A),
    )
    .await;
    assert_eq!(b.last().qname(), name("x.b."));
    let m = msg(out);
    assert_eq!(m.queries[0].name(), &name("x.a."));
    assert_eq!(m.answers[0].name, name("x.b."));
}

#[tokio::test]
async fn suffix_with_auto_maps_names_and_values_back() {
    let b = echo_backend();
    let (out, _) = run(
        "rewrite name suffix .a. .b. answer auto",
        b,
        testkit::request("x.a.", RecordType::A),
    )
    .await;
    let m = msg(out);
    assert_eq!(m.answers[0].name, name("x.a."));
    match &m.answers[2].data {
        RData::MX(mx) => assert_eq!(mx.exchange, name("target.x.a.")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn prefix_and_substring() {
    let b = echo_backend();
    let _ = run(
        "rewrite name prefix www web",
        b.clone(),
        testkit::request("www.x.", RecordType::A),
    )
    .await;
    // The prefix is normalized to `www.` and the replacement to `web.`.
    assert_eq!(b.last().qname(), name("web.x."));
    let b = echo_backend();
    let _ = run(
        "rewrite name substring aa bb",
        b.clone(),
        testkit::request("aaxaa.x.", RecordType::A),
    )
    .await;
    // Both arguments are normalized (`aa.`, `bb.`), so only `aa.` is replaced.
    assert_eq!(b.last().qname(), name("aaxbb.x."));
}

#[tokio::test]
async fn regex_with_answer_name_and_value() {
    let b = echo_backend();
    let (out, _) = run(
        "rewrite stop name regex (.*)\\.corp\\. {1}.internal. answer name (.*)\\.internal\\. {1}.corp. answer value target\\.(.*)\\.internal\\. t.{1}.corp.",
        b.clone(),
        testkit::request("api.corp.", RecordType::A),
    )
    .await;
    assert_eq!(b.last().qname(), name("api.internal."));
    let m = msg(out);
    assert_eq!(m.answers[0].name, name("api.corp."));
    match &m.answers[1].data {
        RData::CNAME(c) => assert_eq!(c.0, name("t.api.corp.")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn type_and_class_rewrites_restore_the_question() {
    let b = echo_backend();
    let (out, _) = run(
        "rewrite type A AAAA",
        b.clone(),
        testkit::request("x.", RecordType::A),
    )
    .await;
    assert_eq!(b.last().qtype(), RecordType::AAAA);
    assert_eq!(msg(out).queries[0].query_type(), RecordType::A);
    let b = echo_backend();
    let (out, _) = run(
        "rewrite class IN CH",
        b.clone(),
        testkit::request("x.", RecordType::A),
    )
    .await;
    assert_eq!(u16::from(b.last().qclass()), 3);
    assert_eq!(u16::from(msg(out).queries[0].query_class()), 1);
}

#[tokio::test]
async fn continue_only_rules_leave_the_question_rewritten() {
    let b = echo_backend();
    let (out, _) = run(
        "rewrite continue type A TXT",
        b,
        testkit::request("x.", RecordType::A),
    )
    .await;
    assert_eq!(msg(out).queries[0].query_type(), RecordType::TXT);
}

#[tokio::test]
async fn stop_ends_the_rules() {
    let b = echo_backend();
    let _ = run(
        "rewrite continue name a. b.\nrewrite stop type A TXT\nrewrite name b. c.",
        b.clone(),
        testkit::request("a.", RecordType::A),
    )
    .await;
    let seen = b.last();
    assert_eq!(seen.qname(), name("b."));
    assert_eq!(seen.qtype(), RecordType::TXT);
}

#[tokio::test]
async fn ttls_are_clamped() {
    let b = echo_backend();
    let (out, _) = run(
        "rewrite ttl regex .* 10-100",
        b,
        testkit::request("x.", RecordType::A),
    )
    .await;
    let ttls: Vec<u32> = msg(out).answers.iter().map(|r| r.ttl).collect();
    assert_eq!(ttls, vec![100, 10, 60]);
}

#[tokio::test]
async fn rcode_of_a_bare_failure_is_rewritten() {
    let b = Backend::new(|_| Ok(Reply::Rcode(ResponseCode::ServFail)));
    let (out, _) = run(
        "rewrite rcode x. SERVFAIL REFUSED",
        b,
        testkit::request("x.", RecordType::A),
    )
    .await;
    let m = msg(out);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!(m.queries[0].name(), &name("x."));
}

#[tokio::test]
async fn rcode_of_an_answer_is_rewritten() {
    let b = Backend::new(|req| {
        let Reply::Message(mut m) = reply_with(req, vec![]) else {
            unreachable!()
        };
        m.metadata.response_code = ResponseCode::NXDomain;
        Ok(Reply::Message(m))
    });
    let (out, _) = run(
        "rewrite rcode suffix x. NXDOMAIN 0",
        b,
        testkit::request("a.x.", RecordType::A),
    )
    .await;
    assert_eq!(msg(out).metadata.response_code, ResponseCode::NoError);
}

#[tokio::test]
async fn invalid_name_is_servfail_with_the_question_restored() {
    let b = echo_backend();
    let (out, req) = run(
        "rewrite continue type A TXT\nrewrite name regex (.*) {1}{1}{1}{1}{1}{1}{1}{1}",
        b,
        testkit::request("abcdefghij.", RecordType::A),
    )
    .await;
    let err = out.unwrap_err();
    assert_eq!(err.rcode, ResponseCode::ServFail);
    assert!(
        err.message
            .starts_with("invalid name after rewrite: abcdefghij."),
        "{}",
        err.message
    );
    assert_eq!(req.qtype(), RecordType::A);
    assert_eq!(req.qname(), name("abcdefghij."));
}

fn options(m: &Message) -> Vec<(u16, Vec<u8>)> {
    use ferrodns_plugin::proto::rr::rdata::opt::EdnsOption;
    m.edns
        .as_ref()
        .map(|e| {
            e.options()
                .options
                .iter()
                .map(|(c, o)| {
                    let data = match o {
                        EdnsOption::Unknown(_, d) => d.clone(),
                        _ => Vec::new(),
                    };
                    (u16::from(*c), data)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn edns0_local_set_is_seen_and_echoed() {
    let b = Backend::new(|req| Ok(reply_with(req, vec![])));
    let (out, _) = run(
        "rewrite edns0 local set 0xffee 0xabcd",
        b.clone(),
        testkit::request("x.", RecordType::A),
    )
    .await;
    assert_eq!(
        options(b.last().message()),
        vec![(0xffee, vec![0xab, 0xcd])]
    );
    let m = msg(out);
    assert_eq!(m.edns.as_ref().map(|e| e.max_payload()), Some(4096));
    assert_eq!(options(&m), vec![(0xffee, vec![0xab, 0xcd])]);
}

#[tokio::test]
async fn edns0_revert_hides_the_option_from_the_client() {
    let b = Backend::new(|req| Ok(reply_with(req, vec![])));
    let (out, _) = run(
        "rewrite edns0 local set 0xffee hello revert",
        b.clone(),
        testkit::request_edns("x.", RecordType::A, 1232, false),
    )
    .await;
    assert_eq!(
        options(b.last().message()),
        vec![(0xffee, b"hello".to_vec())]
    );
    assert_eq!(options(&msg(out)), vec![]);
}

#[tokio::test]
async fn edns0_variables_nsid_and_subnet() {
    let b = Backend::new(|req| Ok(reply_with(req, vec![])));
    let _ = run(
        "rewrite continue edns0 local set 0xffe0 {qname}\nrewrite continue edns0 local set 0xffe1 {client_ip}\nrewrite continue edns0 nsid set\nrewrite edns0 subnet set 24 56",
        b.clone(),
        testkit::request("X.", RecordType::A),
    )
    .await;
    assert_eq!(
        options(b.last().message()),
        vec![
            (0xffe0, b"X.".to_vec()),
            (0xffe1, vec![127, 0, 0, 1]),
            (3, vec![]),
            (8, vec![0, 1, 24, 0, 127, 0, 0]),
        ]
    );
}

#[tokio::test]
async fn edns0_unset_removes() {
    let b = Backend::new(|req| Ok(reply_with(req, vec![])));
    let mut req = testkit::request_edns("x.", RecordType::A, 1232, false);
    req.message_mut()
        .edns
        .as_mut()
        .unwrap()
        .options_mut()
        .options
        .push((
            65000.into(),
            ferrodns_plugin::proto::rr::rdata::opt::EdnsOption::Unknown(65000, vec![1]),
        ));
    let _ = run("rewrite edns0 local unset 65000", b.clone(), req).await;
    assert_eq!(options(b.last().message()), vec![]);
}

struct FixedLookup;

#[async_trait]
impl Lookup for FixedLookup {
    async fn lookup(
        &self,
        _from: &Request,
        name: Name,
        _qtype: RecordType,
    ) -> Result<Message, PluginError> {
        let mut m = Message::new(0, MessageType::Response, OpCode::Query);
        m.answers.push(Record::from_rdata(
            name,
            30,
            RData::A(A::new(192, 0, 2, 99)),
        ));
        Ok(m)
    }
}

#[tokio::test]
async fn cname_target_is_rewritten_and_resolved() {
    let b = Backend::new(|req| {
        Ok(reply_with(
            req,
            vec![
                Record::from_rdata(req.qname(), 60, RData::CNAME(CNAME(name("old.example.")))),
                Record::from_rdata(name("old.example."), 60, RData::A(A::new(10, 0, 0, 1))),
            ],
        ))
    });
    let mut req = testkit::request("start.example.", RecordType::A);
    req.set_upstream(Arc::new(FixedLookup), 0);
    let (out, _) = run("rewrite cname exact old.example. new.example.", b, req).await;
    let m = msg(out);
    assert_eq!(m.answers.len(), 2);
    match &m.answers[0].data {
        RData::CNAME(c) => assert_eq!(c.0, name("new.example.")),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.answers[1].name, name("new.example."));
    assert_eq!(m.answers[1].data, RData::A(A::new(192, 0, 2, 99)));
}

#[tokio::test]
async fn srv_value_is_mapped_by_answer_auto() {
    let b = Backend::new(|req| {
        let q = req.qname();
        let t = Name::from_ascii(format!("host.{q}")).unwrap();
        Ok(reply_with(
            req,
            vec![Record::from_rdata(q, 60, RData::SRV(SRV::new(0, 0, 53, t)))],
        ))
    });
    let (out, _) = run(
        "rewrite name exact a.x. b.y.",
        b,
        testkit::request("a.x.", RecordType::SRV),
    )
    .await;
    match &msg(out).answers[0].data {
        RData::SRV(s) => assert_eq!(s.target, name("host.a.x.")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn no_matching_rule_passes_through() {
    let b = echo_backend();
    let (out, _) = run(
        "rewrite name a. b.",
        b.clone(),
        testkit::request("z.", RecordType::A),
    )
    .await;
    assert_eq!(b.last().qname(), name("z."));
    assert!(!b.last().is_modified());
    assert_eq!(msg(out).answers[0].name, name("z."));
}

/// CoreDNS's rewrite_test.go TestRewrite: what the next plugin sees for each query.
#[tokio::test]
async fn coredns_rewrite_table() {
    let conf = r#"rewrite stop name from.nl. to.nl.
rewrite stop name regex (core)\.(dns)\.(rocks)\.(nl) {2}.{1}.{3}.{4} answer name (dns)\.(core)\.(rocks)\.(nl) {2}.{1}.{3}.{4}
rewrite stop name exact from.exact.nl. to.nl.
rewrite stop name prefix prefix to
rewrite stop name suffix .suffix. .nl.
rewrite stop name substring from.substring to
rewrite stop name regex (f.*m)\.regex\.(nl) to.{2}
rewrite continue name regex consul\.(rocks) core.dns.{1}
rewrite stop name core.dns.rocks to.nl.
rewrite continue class HS CH
rewrite stop class CH IN
rewrite stop type ANY HINFO"#;
    use RecordType::*;
    let cases: &[(&str, RecordType, u16, &str, RecordType, u16)] = &[
        ("from.nl.", A, 1, "to.nl.", A, 1),
        ("a.nl.", A, 1, "a.nl.", A, 1),
        ("a.nl.", A, 3, "a.nl.", A, 1),
        ("a.nl.", ANY, 1, "a.nl.", HINFO, 1),
        ("from.nl.", ANY, 1, "to.nl.", ANY, 1),
        ("from.exact.nl.", A, 1, "to.nl.", A, 1),
        ("prefix.nl.", A, 1, "to.nl.", A, 1),
        ("to.suffix.", A, 1, "to.nl.", A, 1),
        ("from.substring.nl.", A, 1, "to.nl.", A, 1),
        ("from.regex.nl.", A, 1, "to.nl.", A, 1),
        ("consul.rocks.", A, 1, "to.nl.", A, 1),
        ("a.nl.", ANY, 3, "a.nl.", ANY, 1),
        ("a.nl.", ANY, 4, "a.nl.", ANY, 1),
        ("core.dns.rocks.nl.", A, 1, "dns.core.rocks.nl.", A, 1),
    ];
    for (from, ft, fc, to, tt, tc) in cases {
        let mut req = testkit::request(from, *ft);
        req.message_mut().queries[0].set_query_class((*fc).into());
        let b = echo_backend();
        let _ = run(conf, b.clone(), req).await;
        let seen = b.last();
        assert_eq!(seen.qname(), name(to), "{from}");
        assert_eq!(seen.qtype(), *tt, "{from}");
        assert_eq!(u16::from(seen.qclass()), *tc, "{from}");
    }
}

/// CoreDNS's name_test.go TestRewriteNamePrefixSuffixAutoAnswer: the name the next plugin sees
/// and the answer owner after `answer auto`.
#[tokio::test]
async fn coredns_prefix_suffix_auto_answer() {
    let cases = [
        (
            "prefix foo bar answer auto",
            "foo.example.com.",
            "bar.example.com.",
            "foo.example.com.",
        ),
        (
            "prefix foo. bar. answer auto",
            "foo.example.com.",
            "bar.example.com.",
            "foo.example.com.",
        ),
        (
            "suffix com org answer auto",
            "foo.example.com.",
            "foo.example.org.",
            "foo.example.com.",
        ),
        (
            "suffix .com .org answer auto",
            "foo.example.com.",
            "foo.example.org.",
            "foo.example.com.",
        ),
        (
            "suffix .ingress.coredns.rocks nginx.coredns.rocks answer auto",
            "coredns.ingress.coredns.rocks.",
            "corednsnginx.coredns.rocks.",
            "coredns.ingress.coredns.rocks.",
        ),
    ];
    for (rule, question, rewritten, expected) in cases {
        let b = echo_backend();
        let (out, _) = run(
            &format!("rewrite stop name {rule}"),
            b.clone(),
            testkit::request(question, RecordType::A),
        )
        .await;
        assert_eq!(b.last().qname(), name(rewritten), "{rule}");
        assert_eq!(msg(out).answers[0].name, name(expected), "{rule}");
    }
}

/// CoreDNS's name_test.go TestRewriteIllegalName.
#[tokio::test]
async fn coredns_illegal_name() {
    let (out, _) = run(
        "rewrite name example.org. example..org.",
        echo_backend(),
        testkit::request("example.org.", RecordType::A),
    )
    .await;
    assert!(out.unwrap_err().message.contains("invalid name"));
}

/// Wire replies (from forward or cache) are decoded only when reply rules or the question
/// restore need it.
#[tokio::test]
async fn wire_replies() {
    let wire = |req: &Request| {
        let Reply::Message(m) = reply_with(
            req,
            vec![Record::from_rdata(
                req.qname(),
                300,
                RData::A(A::new(192, 0, 2, 1)),
            )],
        ) else {
            unreachable!()
        };
        Ok(Reply::Wire(m.to_vec().unwrap().into()))
    };
    let (out, _) = run(
        "rewrite name a.x. b.x.",
        Backend::new(wire),
        testkit::request("a.x.", RecordType::A),
    )
    .await;
    let m = msg(out);
    assert_eq!(m.queries[0].name(), &name("a.x."));
    assert_eq!(m.answers[0].name, name("a.x."));
    let (out, _) = run(
        "rewrite name a.x. b.x.",
        Backend::new(wire),
        testkit::request("z.x.", RecordType::A),
    )
    .await;
    assert!(matches!(out, Ok(Reply::Wire(_))));
}

//! Rendering, matching, fallthrough, rcode, ederror, CNAME chasing and metrics.

use std::sync::Arc;

use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::A;
use ferrodns_plugin::proto::rr::rdata::opt::EdnsOption;
use ferrodns_plugin::proto::rr::{Name, RData, Record, RecordType};
use ferrodns_plugin::{Lookup, PluginError, Reply, Request, Shared, async_trait};
use ferrodns_plugin_template::DESCRIPTOR;
use ferrodns_plugin_test::{self as testkit, Fixed};

async fn run_with(
    shared: &Shared,
    directives: &str,
    mut req: Request,
) -> Result<Reply, PluginError> {
    let block = testkit::setup_with(&DESCRIPTOR, directives, shared).expect("setup");
    let mut chain = block.plugins.clone();
    chain.push(Fixed::rcode(ResponseCode::NotImp));
    testkit::run(&chain, &mut req).await
}

async fn run(directives: &str, req: Request) -> Result<Reply, PluginError> {
    run_with(&Shared::default(), directives, req).await
}

fn msg(r: Result<Reply, PluginError>) -> Message {
    match r.expect("reply") {
        Reply::Message(m) => *m,
        other => panic!("not a message: {other:?}"),
    }
}

fn txt(r: &Record) -> Vec<String> {
    match &r.data {
        RData::TXT(t) => t
            .txt_data
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect(),
        other => panic!("not TXT: {other:?}"),
    }
}

fn texts(rs: &[Record]) -> Vec<String> {
    rs.iter().map(|r| r.to_string()).collect()
}

const GROUPS: &str = r#"template IN A example. {
    match ^ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)[.]example[.]$
    answer "{{ .Name }} 60 IN A 10.0.{{ .Group.a }}.{{ index .Match 2 }}"
    additional "extra.example. 30 IN TXT {{ .Zone }} {{ .Class }} {{ .Type }} {{ .Remote }}"
    authority "example. 60 IN NS ns.example."
}"#;

#[tokio::test]
async fn renders_every_section_authoritatively() {
    let m = msg(run(GROUPS, testkit::request("IP-1-2.example.", RecordType::A)).await);
    assert!(m.metadata.authoritative);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.queries[0].name().to_string(), "IP-1-2.example.");
    assert_eq!(m.answers[0].name.to_string(), "ip-1-2.example.");
    assert_eq!(m.answers[0].data, RData::A(A::new(10, 0, 1, 2)));
    assert_eq!(m.answers[0].ttl, 60);
    assert_eq!(texts(&m.authorities).len(), 1);
    assert_eq!(
        txt(&m.additionals[0]),
        vec!["example.", "IN", "A", "127.0.0.1"]
    );
}

#[tokio::test]
async fn zone_match_without_regex_match_is_servfail() {
    let r = run(GROUPS, testkit::request("other.example.", RecordType::A)).await;
    assert!(
        matches!(r, Ok(Reply::Rcode(ResponseCode::ServFail))),
        "{r:?}"
    );
}

#[tokio::test]
async fn other_zones_and_types_go_next() {
    let r = msg(run(GROUPS, testkit::request("ip-1-2.elsewhere.", RecordType::A)).await);
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);
    let r = msg(run(GROUPS, testkit::request("ip-1-2.example.", RecordType::MX)).await);
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);
}

#[tokio::test]
async fn fallthrough_goes_next_only_for_its_zones() {
    let conf = "template IN A example. {\n match ^a\\.\n answer \"{{ .Name }} 60 IN A 192.0.2.1\"\n fallthrough sub.example.\n}";
    let r = msg(run(conf, testkit::request("b.sub.example.", RecordType::A)).await);
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);
    let r = run(conf, testkit::request("b.example.", RecordType::A)).await;
    assert!(matches!(r, Ok(Reply::Rcode(ResponseCode::ServFail))));
}

#[tokio::test]
async fn first_matching_template_wins() {
    let conf = "template IN A {\n match ^x\\.\n answer \"{{ .Name }} 60 IN A 192.0.2.1\"\n fallthrough\n}\ntemplate IN A {\n answer \"{{ .Name }} 60 IN A 192.0.2.2\"\n}";
    let m = msg(run(conf, testkit::request("x.example.", RecordType::A)).await);
    assert_eq!(m.answers[0].data, RData::A(A::new(192, 0, 2, 1)));
    let m = msg(run(conf, testkit::request("y.example.", RecordType::A)).await);
    assert_eq!(m.answers[0].data, RData::A(A::new(192, 0, 2, 2)));
}

#[tokio::test]
async fn rcode_and_ederror() {
    let conf = "template ANY ANY invalid {\n rcode NXDOMAIN\n authority \"invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)\"\n ederror 21 \"Blocked\"\n}";
    let mut req = testkit::request("x.invalid.", RecordType::A);
    req.zone = "invalid.".into();
    let block = testkit::setup(&DESCRIPTOR, conf);
    assert!(block.is_ok());
    let m = msg(run(conf, testkit::request("x.invalid.", RecordType::A)).await);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let e = m.edns.expect("opt");
    assert_eq!(e.max_payload(), 4096);
    assert!(e.flags().dnssec_ok);
    let opts: Vec<_> = e
        .options()
        .options
        .iter()
        .map(|(c, o)| (u16::from(*c), o.clone()))
        .collect();
    assert_eq!(
        opts,
        vec![(
            15,
            EdnsOption::Unknown(15, [&[0u8, 21][..], b"Blocked"].concat())
        )]
    );
}

#[tokio::test]
async fn rcode_servfail_writes_nothing() {
    let r = run(
        "template IN A {\n rcode SERVFAIL\n}",
        testkit::request("x.", RecordType::A),
    )
    .await;
    assert!(matches!(r, Ok(Reply::Rcode(ResponseCode::ServFail))));
}

#[tokio::test]
async fn execution_and_rr_failures_are_servfail_and_counted() {
    let shared = Shared::default();
    let conf = "template IN A t. {\n answer \"{{ .Name }} 60 IN A {{ index .Match 4 }}\"\n}\ntemplate IN A r. {\n answer \"{{ .Name }} 60 IN A nope\"\n}\ntemplate IN A ok. {\n answer \"{{ .Name }} 60 IN A 192.0.2.1\"\n}";
    let e = run_with(&shared, conf, testkit::request("x.t.", RecordType::A))
        .await
        .unwrap_err();
    assert_eq!(e.rcode, ResponseCode::ServFail);
    assert!(
        e.message
            .contains("error calling index: index out of range: 4"),
        "{}",
        e.message
    );
    let e = run_with(&shared, conf, testkit::request("x.r.", RecordType::A))
        .await
        .unwrap_err();
    assert_eq!(e.rcode, ResponseCode::ServFail);
    let _ = msg(run_with(&shared, conf, testkit::request("x.ok.", RecordType::A)).await);
    let text = shared.metrics.encode();
    assert!(text.contains(r#"coredns_template_matches_total{class="IN",server="dns://:53",type="A",view="",zone="ok."} 1"#), "{text}");
    assert!(text.contains(r#"coredns_template_template_failures_total{class="IN",section="answer",server="dns://:53",template="{{.Name}} 60 IN A {{index .Match 4}}",type="A",view="",zone="t."} 1"#), "{text}");
    assert!(text.contains(r#"coredns_template_rr_failures_total{class="IN",section="answer",server="dns://:53",template="{{.Name}} 60 IN A nope",type="A",view="",zone="r."} 1"#), "{text}");
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
        m.metadata.truncation = true;
        m.answers.push(Record::from_rdata(
            name,
            30,
            RData::A(A::new(192, 0, 2, 99)),
        ));
        Ok(m)
    }
}

#[tokio::test]
async fn cname_answers_are_chased_for_a_and_aaaa_only() {
    let conf = "template IN ANY {\n answer \"{{ .Name }} 60 IN CNAME target.example.\"\n}";
    let mut req = testkit::request("alias.example.", RecordType::A);
    req.set_upstream(Arc::new(FixedLookup), 0);
    let m = msg(run(conf, req).await);
    assert_eq!(m.answers.len(), 2);
    assert_eq!(m.answers[1].name.to_string(), "target.example.");
    assert!(m.metadata.truncation);
    let mut req = testkit::request("alias.example.", RecordType::TXT);
    req.set_upstream(Arc::new(FixedLookup), 0);
    let m = msg(run(conf, req).await);
    assert_eq!(m.answers.len(), 1);
}

#[tokio::test]
async fn any_query_uses_the_template_type_and_class() {
    let conf = "template IN MX {\n answer \"{{ .Name }} 60 IN TXT {{ .Type }} {{ .Class }}\"\n}";
    let m = msg(run(conf, testkit::request("x.", RecordType::ANY)).await);
    assert_eq!(txt(&m.answers[0]), vec!["MX", "IN"]);
}

/// From CoreDNS's template_test.go: the execution errors, word for word.
#[tokio::test]
async fn coredns_execution_error_texts() {
    let conf = "template ANY ANY example. {\n answer \"{{ .Name }} 60 IN TXT \\\"{{ index .Match 2 }}\\\"\"\n}";
    let e = run(conf, testkit::request("test.example.", RecordType::ANY))
        .await
        .unwrap_err();
    assert_eq!(
        e.message,
        r#"template: answer:1:26: executing "answer" at <index .Match 2>: error calling index: index out of range: 2"#
    );
    let conf = "template ANY ANY example. {\n answer \"{{ .Name }} 60 IN TXT \\\"{{ parseInt \\\"gg\\\" 16 8 }}\\\"\"\n}";
    let e = run(conf, testkit::request("test.example.", RecordType::ANY))
        .await
        .unwrap_err();
    assert_eq!(
        e.message,
        r#"template: answer:1:26: executing "answer" at <parseInt "gg" 16 8>: error calling parseInt: strconv.ParseUint: parsing "gg": invalid syntax"#
    );
}

/// From CoreDNS's template_test.go: a rendering that is only a name is not a record.
#[tokio::test]
async fn coredns_non_rr_templates() {
    for section in ["answer", "additional", "authority"] {
        let conf = format!("template ANY ANY example. {{\n {section} \"{{{{ .Name }}}}\"\n}}");
        let e = run(&conf, testkit::request("test.example.", RecordType::ANY))
            .await
            .unwrap_err();
        assert_eq!(e.rcode, ResponseCode::ServFail, "{section}");
    }
}

/// From CoreDNS's template_test.go: MX without a class, NS/A without TTLs, metadata.
#[tokio::test]
async fn coredns_sections_and_metadata() {
    let conf = r#"template IN ANY example. {
 match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
 answer "{{ .Meta \"foo\" }}-{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
 additional "{{ .Meta \"bar\" }}.example. IN A 203.0.113.8"
 authority "example. IN NS {{ .Meta \"bar\" }}.example.com."
}"#;
    let mut req = testkit::request("ip-10-95-12-8.example.", RecordType::A);
    req.enable_metadata();
    req.set_metadata("foo", "myfoo");
    req.set_metadata("bar", "mybar");
    let m = msg(run(conf, req).await);
    assert_eq!(
        m.answers[0].name.to_string(),
        "myfoo-ip-10-95-12-8.example."
    );
    assert_eq!(m.answers[0].data, RData::A(A::new(10, 95, 12, 8)));
    assert_eq!(m.additionals[0].name.to_string(), "mybar.example.");
    assert_eq!(m.additionals[0].ttl, 3600);
    assert_eq!(m.authorities[0].ttl, 3600);
    let conf = "template IN MX example. {\n answer \"{{ .Name }} 60 MX 10 {{ .Name }}\"\n}";
    let m = msg(run(
        conf,
        testkit::request("ip-10-95-12-8.example.", RecordType::MX),
    )
    .await);
    assert_eq!(m.answers[0].record_type(), RecordType::MX);
}

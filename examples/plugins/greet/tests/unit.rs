//! The greet plugin through the test kit, without sockets: the directive's errors, what it
//! answers, what it hands on, and its counter.

use std::net::SocketAddr;
use std::sync::Arc;

use ferrodns_example_greet::{DESCRIPTOR, NAME};
use ferrodns_plugin::proto::op::{Message, ResponseCode};
use ferrodns_plugin::proto::rr::{RData, RecordType};
use ferrodns_plugin::{Metrics, Plugin, Reply, Request, Setup, Shared};
use ferrodns_plugin_test::{self as testkit, Fixed};

/// The handler `directives` set up in a `.:53` block.
fn greet(directives: &str) -> Arc<dyn Plugin> {
    let block =
        testkit::setup(&DESCRIPTOR, directives).unwrap_or_else(|e| panic!("{directives}: {e}"));
    assert_eq!(block.plugins.len(), 1, "{directives}");
    block.plugins[0].clone()
}

/// Run `plugin` with a terminal handler answering REFUSED after it, so that a REFUSED reply
/// means "handed to the next plugin".
async fn serve(plugin: &Arc<dyn Plugin>, req: &mut Request) -> Message {
    let chain = vec![plugin.clone(), Fixed::rcode(ResponseCode::Refused)];
    match testkit::run(&chain, req).await {
        Ok(Reply::Message(m)) => *m,
        other => panic!("unexpected outcome {other:?}"),
    }
}

/// The texts of the reply's single TXT answer, with its TTL and owner.
fn txt_answer(m: &Message) -> (String, u32, Vec<String>) {
    assert_eq!(m.answers.len(), 1, "one answer: {m:?}");
    let rr = &m.answers[0];
    let RData::TXT(txt) = &rr.data else {
        panic!("not a TXT record: {rr:?}");
    };
    let texts = txt
        .txt_data
        .iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    (rr.name.to_ascii(), rr.ttl, texts)
}

fn assert_handed_on(m: &Message, what: &str) {
    assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{what}");
    assert!(m.answers.is_empty(), "{what}");
}

fn assert_nodata(m: &Message, what: &str) {
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{what}");
    assert!(m.metadata.authoritative, "{what}");
    assert!(m.answers.is_empty(), "{what}");
    assert_eq!(m.queries.len(), 1, "{what}: the question is copied");
}

#[test]
fn valid_directives() {
    for input in [
        "greet",
        "greet example.org example.net",
        "greet {\n}",
        "greet example.org {\ntext \"hello from ferrodns\"\nttl 0\nfallthrough\n}",
        "greet {\nttl 2147483647\nfallthrough a.example.org b.example.org\n}",
        "greet {\ntext \"\"\n}",
    ] {
        let block = testkit::setup(&DESCRIPTOR, input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(block.plugins.len(), 1, "{input}");
        assert_eq!(block.plugins[0].name(), NAME, "{input}");
    }
}

#[test]
fn directive_errors_name_file_and_line() {
    // The test kit wraps the lines in `.:53 {`, so the directive is on line 2 of "Testfile".
    let long = "x".repeat(215);
    let long_text = format!("greet {{\ntext {long}\n}}");
    let cases = [
        (
            "greet {\ntext\n}",
            "plugin/greet: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'text'",
        ),
        (
            "greet {\ntext hello there\n}",
            "plugin/greet: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'there'",
        ),
        (
            "greet {\n\nttl\n}",
            "plugin/greet: Testfile:4 - Error during parsing: Wrong argument count or unexpected line ending after 'ttl'",
        ),
        (
            "greet {\nttl -1\n}",
            "plugin/greet: Testfile:3 - Error during parsing: ttl needs a whole number of seconds from 0 to 2147483647, got '-1'",
        ),
        (
            "greet {\nttl 2147483648\n}",
            "plugin/greet: Testfile:3 - Error during parsing: ttl needs a whole number of seconds from 0 to 2147483647, got '2147483648'",
        ),
        (
            "greet {\nttl 1m\n}",
            "plugin/greet: Testfile:3 - Error during parsing: ttl needs a whole number of seconds from 0 to 2147483647, got '1m'",
        ),
        (
            "greet {\ntext hi\ncolour blue\n}",
            "plugin/greet: Testfile:4 - Error during parsing: unknown property 'colour'",
        ),
        (
            long_text.as_str(),
            "plugin/greet: Testfile:3 - Error during parsing: text is 215 bytes long, at most 214 fit in the answer",
        ),
        (
            "greet\ngreet example.org",
            "plugin/greet: this plugin can only be used once per Server Block",
        ),
    ];
    for (input, want) in cases {
        let err = testkit::setup(&DESCRIPTOR, input).expect_err(input);
        assert_eq!(err.to_string(), want, "{input}");
    }
}

#[test]
fn longest_text_that_fits_is_accepted() {
    let input = format!("greet {{\ntext {}\n}}", "x".repeat(214));
    testkit::setup(&DESCRIPTOR, &input).unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn txt_query_gets_greeting_and_client_address() {
    let plugin = greet("greet example.org {\ntext \"hi there\"\nttl 60\n}");
    let mut req = testkit::request("www.Example.ORG.", RecordType::TXT);
    let m = serve(&plugin, &mut req).await;
    assert_eq!(m.metadata.id, req.id());
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert!(m.metadata.recursion_desired, "RD is copied");
    assert_eq!(m.queries, req.message().queries, "the question is copied");
    let (owner, ttl, texts) = txt_answer(&m);
    assert_eq!(
        owner, "www.Example.ORG.",
        "the owner is the query name as sent"
    );
    assert_eq!(ttl, 60);
    assert_eq!(texts, ["hi there, 127.0.0.1"]);
}

#[tokio::test]
async fn defaults_are_hello_and_30_seconds() {
    let plugin = greet("greet");
    let mut req = testkit::request("anything.test.", RecordType::TXT);
    let (_, ttl, texts) = txt_answer(&serve(&plugin, &mut req).await);
    assert_eq!(ttl, 30);
    assert_eq!(texts, ["hello, 127.0.0.1"]);
}

#[tokio::test]
async fn ipv4_mapped_client_is_written_as_ipv4() {
    let plugin = greet("greet");
    let mut req = testkit::request("example.org.", RecordType::TXT);
    // What a dual-stack socket reports for an IPv4 client.
    req.src = "[::ffff:192.0.2.7]:5353"
        .parse::<SocketAddr>()
        .expect("addr");
    let (_, _, texts) = txt_answer(&serve(&plugin, &mut req).await);
    assert_eq!(texts, ["hello, 192.0.2.7"]);

    let mut req = testkit::request("example.org.", RecordType::TXT);
    req.src = "[2001:db8::53]:5353".parse::<SocketAddr>().expect("addr");
    let (_, _, texts) = txt_answer(&serve(&plugin, &mut req).await);
    assert_eq!(texts, ["hello, 2001:db8::53"]);
}

#[tokio::test]
async fn other_types_in_zone_get_nodata() {
    let plugin = greet("greet example.org");
    for qtype in [
        RecordType::A,
        RecordType::AAAA,
        RecordType::MX,
        RecordType::ANY,
    ] {
        let mut req = testkit::request("www.example.org.", qtype);
        let m = serve(&plugin, &mut req).await;
        assert_nodata(&m, &format!("{qtype}"));
    }
}

#[tokio::test]
async fn names_outside_the_zones_go_to_the_next_plugin() {
    let plugin = greet("greet example.org {\nfallthrough\n}");
    for (name, qtype) in [
        ("example.net.", RecordType::TXT),
        ("org.", RecordType::TXT),
        ("notexample.org.", RecordType::TXT),
        ("example.net.", RecordType::A),
    ] {
        let mut req = testkit::request(name, qtype);
        let m = serve(&plugin, &mut req).await;
        assert_handed_on(&m, &format!("{name} {qtype}"));
    }
}

#[tokio::test]
async fn outside_the_zones_with_nothing_after_it_is_an_error() {
    let plugin = greet("greet example.org");
    let mut req = testkit::request("example.net.", RecordType::TXT);
    let err = testkit::run(&[plugin], &mut req)
        .await
        .err()
        .map(|e| e.message);
    assert_eq!(err.as_deref(), Some("plugin/greet: no next plugin found"));
}

#[tokio::test]
async fn fallthrough_hands_other_types_on_in_its_zones_only() {
    let plugin = greet("greet example.org {\nfallthrough sub.example.org\n}");
    // In a fallthrough zone: not TXT goes on, TXT is still answered.
    let mut req = testkit::request("x.sub.example.org.", RecordType::A);
    assert_handed_on(&serve(&plugin, &mut req).await, "A in sub.example.org");
    let mut req = testkit::request("x.sub.example.org.", RecordType::TXT);
    let (_, _, texts) = txt_answer(&serve(&plugin, &mut req).await);
    assert_eq!(texts, ["hello, 127.0.0.1"]);
    // Elsewhere in its zones: NODATA.
    let mut req = testkit::request("x.example.org.", RecordType::A);
    assert_nodata(&serve(&plugin, &mut req).await, "A in example.org");

    // Without zones, `fallthrough` covers every name.
    let plugin = greet("greet example.org {\nfallthrough\n}");
    let mut req = testkit::request("x.example.org.", RecordType::A);
    assert_handed_on(
        &serve(&plugin, &mut req).await,
        "A with fallthrough for all",
    );
}

#[tokio::test]
async fn zones_default_to_the_server_blocks() {
    // A block `example.org:53 { greet }`: the test kit's `setup` always uses `.:53`, so run the
    // descriptor's setup on a block of our own.
    let mut block = testkit::block(&["example.org."]);
    let shared = Shared::default();
    let disp = testkit::dispenser(NAME, "greet").expect("dispenser");
    let mut c = Setup::new(disp, &mut block, &shared);
    (DESCRIPTOR.setup)(&mut c).expect("setup");
    let plugin = block.plugins[0].clone();

    let mut req = testkit::request("www.example.org.", RecordType::TXT);
    txt_answer(&serve(&plugin, &mut req).await);
    let mut req = testkit::request("www.example.net.", RecordType::TXT);
    assert_handed_on(&serve(&plugin, &mut req).await, "outside the block's zone");
}

#[tokio::test]
async fn zone_arguments_are_normalised() {
    let plugin = greet("greet dns://Example.ORG:53 10.0.0.0/24");
    let mut req = testkit::request("www.example.org.", RecordType::TXT);
    txt_answer(&serve(&plugin, &mut req).await);
    let mut req = testkit::request("7.0.0.10.in-addr.arpa.", RecordType::TXT);
    txt_answer(&serve(&plugin, &mut req).await);
    let mut req = testkit::request("7.1.0.10.in-addr.arpa.", RecordType::TXT);
    assert_handed_on(&serve(&plugin, &mut req).await, "outside 10.0.0.0/24");
}

/// The value of one series in the Prometheus text `metrics` shows, if it is there.
fn series_value(metrics: &Metrics, series: &str) -> Option<f64> {
    metrics.encode().lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.parse().ok()
    })
}

#[test]
fn nothing_is_exported_before_a_block_uses_greet() {
    // The counter is labelled by server: no series before the first answer, so the descriptor
    // registers nothing at process start.
    let text = testkit::startup_metrics(&DESCRIPTOR);
    assert!(!text.contains("greet"), "{text}");
}

#[tokio::test]
async fn counter_counts_txt_answers_per_server() {
    let metrics = Metrics::new();
    let shared = Shared::new(metrics.clone());
    let block = testkit::setup_with(&DESCRIPTOR, "greet example.org", &shared).expect("setup");
    let plugin = block.plugins[0].clone();
    let series = r#"coredns_greet_answers_total{server="dns://:53"}"#;
    assert_eq!(
        series_value(&metrics, series),
        None,
        "no series before a query"
    );
    assert!(!metrics.encode().contains("coredns_greet"));

    for (name, qtype) in [
        ("a.example.org.", RecordType::TXT),
        ("b.example.org.", RecordType::TXT),
        ("a.example.org.", RecordType::A),   // NODATA: not counted
        ("a.example.net.", RecordType::TXT), // handed on: not counted
        ("c.example.org.", RecordType::TXT),
    ] {
        let mut req = testkit::request(name, qtype);
        serve(&plugin, &mut req).await;
    }
    assert_eq!(series_value(&metrics, series), Some(3.0));
    let text = metrics.encode();
    assert!(
        text.contains("# TYPE coredns_greet_answers counter"),
        "{text}"
    );
    assert!(
        text.contains(
            "# HELP coredns_greet_answers Counter of TXT answers given by the greet plugin."
        ),
        "{text}"
    );

    // Another server label is another series of the same family.
    let mut req = testkit::request("example.org.", RecordType::TXT);
    req.server = "dns://:1053".into();
    serve(&plugin, &mut req).await;
    assert_eq!(series_value(&metrics, series), Some(3.0));
    let other = r#"coredns_greet_answers_total{server="dns://:1053"}"#;
    assert_eq!(series_value(&metrics, other), Some(1.0));

    // A plugin set up again on the same registry (another block, or after a reload) counts on
    // in the same family.
    let shared = Shared::new(metrics.clone());
    let block = testkit::setup_with(&DESCRIPTOR, "greet", &shared).expect("setup");
    let mut req = testkit::request("example.com.", RecordType::TXT);
    serve(&block.plugins[0], &mut req).await;
    assert_eq!(series_value(&metrics, series), Some(4.0));
}

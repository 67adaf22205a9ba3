//! Request-path behaviour of the log plugin, with CoreDNS v1.14.7's lines as the reference.

use ferrodns_plugin_test::capture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::{CNAME, NS, SOA};
use ferrodns_plugin::proto::rr::{Name, RData, Record, RecordType};
use ferrodns_plugin::{Next, Plugin, PluginError, Protocol, Reply, Request, async_trait};
use ferrodns_plugin_log::DESCRIPTOR;
use ferrodns_plugin_test::{self as testkit, Fixed};
use ferrodns_plugin_whoami::Whoami;

fn logger(directives: &str) -> Arc<dyn Plugin> {
    let block = testkit::setup(&DESCRIPTOR, directives).unwrap_or_else(|e| panic!("{e}"));
    block.plugins[0].clone()
}

async fn run_log(
    directives: &str,
    next: Arc<dyn Plugin>,
    req: &mut Request,
) -> (Result<Reply, PluginError>, Vec<String>) {
    let (captured, _guard) = capture::capture();
    let chain = vec![logger(directives), next];
    let out = testkit::run(&chain, req).await;
    (out, captured.messages("querylog"))
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("name")
}

/// A terminal plugin that sleeps (in tokio time) and then answers NOERROR: the duration the
/// `{duration}` tests measure, not a wait.
struct Slow(Duration);

#[async_trait]
impl Plugin for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }
    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        tokio::time::sleep(self.0).await;
        Ok(Reply::message(ferrodns_plugin_log::rcode_reply(
            req.message(),
            ResponseCode::NoError,
        )))
    }
}

/// A terminal plugin that records metadata and answers with a message.
struct WithMetadata;

#[async_trait]
impl Plugin for WithMetadata {
    fn name(&self) -> &'static str {
        "meta"
    }
    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        req.set_metadata("test/upstream", "192.0.2.1:53");
        let mut m = ferrodns_plugin_log::rcode_reply(req.message(), ResponseCode::NoError);
        m.metadata.recursion_available = true;
        m.metadata.authentic_data = true;
        m.metadata.truncation = true;
        Ok(Reply::message(m))
    }
}

fn reply_with(rcode: ResponseCode, f: impl FnOnce(&mut Message)) -> Arc<Fixed> {
    let mut m = Message::new(0, MessageType::Response, OpCode::Query);
    m.metadata.response_code = rcode;
    f(&mut m);
    Fixed::new(Ok(Reply::message(m)))
}

fn soa() -> Record {
    Record::from_rdata(
        name("example.org."),
        300,
        RData::SOA(SOA::new(
            name("ns.example.org."),
            name("hostmaster.example.org."),
            1,
            2,
            3,
            4,
            5,
        )),
    )
}

#[tokio::test(start_paused = true)]
async fn default_format_matches_coredns() {
    // CoreDNS: `[INFO] 127.0.0.1:42877 - 4660 "A IN example.org. udp 29 false 512" NOERROR
    // qr,aa,rd 91 0.000191687s` for the same query answered by whoami.
    let mut req = testkit::request("exAmple.org.", RecordType::A);
    let (out, lines) = run_log("log", Arc::new(Whoami), &mut req).await;
    assert!(matches!(out, Ok(Reply::Message(_))));
    assert_eq!(
        lines,
        vec![
            r#"127.0.0.1:40212 - 4242 "A IN example.org. udp 29 false 512" NOERROR qr,aa,rd 91 0s"#
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn ipv6_client_with_edns() {
    // CoreDNS answered `AAAA IN example.org.` from [::1] with OPT 1232 in 103 bytes before the
    // OPT echo, and logs that size.
    let mut req = testkit::request_edns("example.org.", RecordType::AAAA, 1232, true);
    req.src = "[::1]:50759".parse::<SocketAddr>().expect("addr");
    let (_, lines) = run_log("log", Arc::new(Whoami), &mut req).await;
    assert_eq!(
        lines,
        vec![
            r#"[::1]:50759 - 4242 "AAAA IN example.org. udp 40 true 1232" NOERROR qr,aa,rd 103 0s"#
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn combined_format_and_tcp() {
    let mut req = testkit::request("example.org.", RecordType::MX);
    req.protocol = Protocol::Tcp;
    let (_, lines) = run_log("log . {combined}", Arc::new(Whoami), &mut req).await;
    assert_eq!(
        lines,
        vec![
            r#"127.0.0.1:40212 - 4242 "MX IN example.org. tcp 29 false 65535" NOERROR qr,aa,rd 91 0s "0""#
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn error_rcode_without_write_is_logged_as_the_server_reply() {
    // CoreDNS: `"A IN example.org. udp 29 false 512" SERVFAIL qr,rd 29` when the chain fails.
    let mut req = testkit::request("example.org.", RecordType::A);
    let next = Fixed::new(Err(PluginError::servfail("plugin/x: boom")));
    let (out, lines) = run_log("log", next, &mut req).await;
    match out {
        Err(e) => assert_eq!(e.message, "plugin/x: boom"),
        other => panic!("error not passed through: {other:?}"),
    }
    assert_eq!(
        lines,
        vec![r#"127.0.0.1:40212 - 4242 "A IN example.org. udp 29 false 512" SERVFAIL qr,rd 29 0s"#]
    );

    let mut req = testkit::request("example.org.", RecordType::A);
    let next = Fixed::new(Ok(Reply::Rcode(ResponseCode::Refused)));
    let (out, lines) = run_log("log . \"{rcode} {>rflags} {rsize}\"", next, &mut req).await;
    assert!(matches!(out, Ok(Reply::Rcode(ResponseCode::Refused))));
    assert_eq!(lines, vec!["REFUSED qr,rd 29"]);
}

#[tokio::test(start_paused = true)]
async fn nothing_written_prints_dashes() {
    // CoreDNS with `acl { drop }`: `-|-|0|-|IN|A|0|29`.
    let format = "log . \"{>rflags}|{rcode}|{rsize}|{/x}|{class}|{type}|{>opcode}|{size}\"";
    for next in [
        Fixed::new(Ok(Reply::Drop)),
        Fixed::new(Ok(Reply::Rcode(ResponseCode::NoError))),
        Fixed::new(Err(PluginError::with_rcode(ResponseCode::NXDomain, "odd"))),
    ] {
        let mut req = testkit::request("example.org.", RecordType::A);
        let (_, lines) = run_log(format, next, &mut req).await;
        assert_eq!(lines, vec!["-|-|0|-|IN|A|0|29"]);
    }
}

#[tokio::test(start_paused = true)]
async fn duration_is_seconds_in_shortest_form() {
    let mut req = testkit::request("example.org.", RecordType::A);
    let next: Arc<dyn Plugin> = Arc::new(Slow(Duration::from_millis(1500)));
    let (_, lines) = run_log("log . {duration}", next, &mut req).await;
    assert_eq!(lines, vec!["1.5s"]);

    let mut req = testkit::request("example.org.", RecordType::A);
    let next: Arc<dyn Plugin> = Arc::new(Slow(Duration::from_millis(37)));
    let (_, lines) = run_log("log . {duration}", next, &mut req).await;
    assert_eq!(lines, vec!["0.037s"]);
}

#[tokio::test(start_paused = true)]
async fn class_filters() {
    let nxdomain = || reply_with(ResponseCode::NXDomain, |m| m.authorities.push(soa()));
    let nodata = || reply_with(ResponseCode::NoError, |m| m.authorities.push(soa()));
    let answer = || {
        reply_with(ResponseCode::NoError, |m| {
            m.answers.push(Record::from_rdata(
                name("example.org."),
                60,
                RData::CNAME(CNAME(name("other.org."))),
            ))
        })
    };
    let delegation = || {
        reply_with(ResponseCode::NoError, |m| {
            m.authorities.push(Record::from_rdata(
                name("example.org."),
                60,
                RData::NS(NS(name("ns.example.org."))),
            ))
        })
    };
    let servfail = || reply_with(ResponseCode::ServFail, |_| {});
    let refused_err = || Fixed::new(Err(PluginError::with_rcode(ResponseCode::Refused, "no")));

    let denial = "log . {rcode} {\n class denial\n}";
    let success = "log . {rcode} {\n class success\n}";
    let error = "log . {rcode} {\n class error\n}";
    let cases: Vec<(&str, Arc<Fixed>, bool)> = vec![
        (denial, nxdomain(), true),
        (denial, nodata(), true),
        (denial, answer(), false),
        (denial, servfail(), false),
        (success, answer(), true),
        (success, delegation(), true),
        (success, nodata(), false),
        (success, nxdomain(), false),
        (error, servfail(), true),
        (error, refused_err(), true),
        (error, answer(), false),
        (error, nxdomain(), false),
    ];
    for (i, (directive, next, logged)) in cases.into_iter().enumerate() {
        let mut req = testkit::request("example.org.", RecordType::A);
        let (_, lines) = run_log(directive, next, &mut req).await;
        assert_eq!(
            lines.len(),
            usize::from(logged),
            "case {i}: {directive} {lines:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn first_matching_name_wins() {
    let directives = "log example.org \"org {name}\"\nlog Example.ORG example.net \"second {name}\"\nlog . \"root {name}\"";
    let cases = [
        ("www.EXAMPLE.org.", "org www.example.org."),
        ("example.net.", "second example.net."),
        ("example.com.", "root example.com."),
        ("org.", "root org."),
    ];
    for (qname, want) in cases {
        let mut req = testkit::request(qname, RecordType::A);
        let (_, lines) = run_log(directives, Arc::new(Whoami), &mut req).await;
        assert_eq!(lines, vec![want.to_string()], "{qname}");
    }
}

#[tokio::test(start_paused = true)]
async fn names_out_of_scope_are_served_silently() {
    let mut req = testkit::request("example.net.", RecordType::A);
    let (out, lines) = run_log("log example.org", Arc::new(Whoami), &mut req).await;
    assert!(lines.is_empty());
    match out {
        Ok(Reply::Message(m)) => assert_eq!(m.additionals.len(), 2),
        other => panic!("not served: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn every_placeholder() {
    let format = "log . \"{type}|{name}|{class}|{proto}|{size}|{remote}|{port}|{local}|{>id}|{>opcode}|{>do}|{>bufsize}|{rcode}|{rsize}|{duration}|{>rflags}|{/test/upstream}|{/missing}|{xyz}|{/log/class}|{>ID}|}\"";
    let mut req = testkit::request_edns("Www.Example.ORG.", RecordType::TXT, 4096, true);
    req.protocol = Protocol::Tcp;
    req.src = "[2001:db8::1]:5353".parse::<SocketAddr>().expect("addr");
    req.local = "[::]:53".parse::<SocketAddr>().expect("addr");
    req.enable_metadata();
    let (_, lines) = run_log(format, Arc::new(WithMetadata), &mut req).await;
    // rsize: header 12 + question 21 (no OPT in the reply the plugin wrote).
    assert_eq!(
        lines,
        vec![
            "TXT|www.example.org.|IN|tcp|44|[2001:db8::1]|5353|[::]|4242|0|true|65535|NOERROR|33|0s|qr,tc,rd,ra,ad|192.0.2.1:53|-|{xyz}|success|{>ID}|}"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn wire_replies_are_measured_uncompressed() {
    let mut req = testkit::request("example.org.", RecordType::A);
    let mut m = ferrodns_plugin_log::rcode_reply(req.message(), ResponseCode::NoError);
    m.metadata.recursion_available = true;
    m.answers.push(Record::from_rdata(
        name("example.org."),
        60,
        RData::CNAME(CNAME(name("www.example.org."))),
    ));
    let wire = m.to_vec().expect("encode");
    // Compressed: owner and target point back into the question.
    assert_eq!(wire.len(), 29 + 2 + 10 + 6);
    let next = Fixed::new(Ok(Reply::Wire(Bytes::from(wire))));
    let (out, lines) = run_log("log . \"{rcode} {>rflags} {rsize}\"", next, &mut req).await;
    assert!(matches!(out, Ok(Reply::Wire(_))));
    assert_eq!(
        lines,
        vec![format!("NOERROR qr,rd,ra {}", 29 + 13 + 10 + 17)]
    );
}

#[tokio::test(start_paused = true)]
async fn extended_and_unnamed_rcodes() {
    let mut req = testkit::request("example.org.", RecordType::A);
    let next = reply_with(ResponseCode::BADCOOKIE, |_| {});
    let (_, lines) = run_log("log . {rcode}", next, &mut req).await;
    assert_eq!(lines, vec!["BADCOOKIE"]);

    let mut req = testkit::request("example.org.", RecordType::A);
    let next = reply_with(ResponseCode::Unknown(3000), |_| {});
    let (_, lines) = run_log("log . {rcode}", next, &mut req).await;
    assert_eq!(lines, vec!["3000"]);
}

//! Behaviour of the cache against a scripted backend, on tokio's paused clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Backend, Rig, Script, a, soa, ttls};
use ferrodns_plugin::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{FastAnswer, Plugin, Protocol, Reply, WireQuery};
use ferrodns_plugin_test as testkit;

fn q(name: &str) -> ferrodns_plugin::Request {
    testkit::request(name, RecordType::A)
}

fn advance(secs: u64) -> impl Future<Output = ()> {
    tokio::time::advance(Duration::from_secs(secs))
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn positive() -> Arc<Backend> {
    let b = Backend::new();
    b.set(
        "example.org.",
        Script::answer(vec![a("example.org.", 300, [192, 0, 2, 1])]),
    );
    b
}

#[tokio::test(start_paused = true)]
async fn miss_then_hit_with_aa_and_decrementing_ttl() {
    let rig = Rig::new("cache", positive());
    let m1 = rig.ask(q("example.org.")).await;
    assert!(
        !m1.metadata.authoritative,
        "a miss passes the upstream's AA"
    );
    assert_eq!(ttls(&m1), [300]);
    advance(2).await;
    let reply = rig.ask_reply(q("example.org.")).await;
    assert!(
        matches!(reply, Reply::Wire(_)),
        "hits are served as wire bytes"
    );
    let mut reply = reply;
    let m2 = reply.decoded().cloned().unwrap();
    assert!(m2.metadata.authoritative);
    assert_eq!(m2.metadata.id, 4242);
    assert_eq!(ttls(&m2), [298]);
    assert_eq!(rig.backend.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn ttl_is_capped_on_the_first_reply_too() {
    let rig = Rig::new("cache 30", positive());
    assert_eq!(ttls(&rig.ask(q("example.org.")).await), [30]);
    assert_eq!(ttls(&rig.ask(q("example.org.")).await), [30]);
    advance(31).await;
    rig.ask(q("example.org.")).await;
    assert_eq!(rig.backend.calls(), 2, "expired after 30s");
}

#[tokio::test(start_paused = true)]
async fn short_ttls_are_raised_to_the_minimum() {
    let b = Backend::new();
    b.set(
        "example.org.",
        Script::answer(vec![a("example.org.", 1, [192, 0, 2, 1])]),
    );
    let rig = Rig::new("cache", b);
    assert_eq!(ttls(&rig.ask(q("example.org.")).await), [5]);
    advance(4).await;
    assert_eq!(ttls(&rig.ask(q("example.org.")).await), [1]);
    advance(1).await;
    rig.ask(q("example.org.")).await;
    assert_eq!(rig.backend.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn success_min_and_max_ttl() {
    let b = Backend::new();
    b.set(
        "short.example.org.",
        Script::answer(vec![a("short.example.org.", 3, [1, 1, 1, 1])]),
    );
    b.set(
        "long.example.org.",
        Script::answer(vec![a("long.example.org.", 9000, [1, 1, 1, 1])]),
    );
    let rig = Rig::new("cache {\n success 100 60 20\n}", b);
    assert_eq!(ttls(&rig.ask(q("short.example.org.")).await), [20]);
    assert_eq!(ttls(&rig.ask(q("long.example.org.")).await), [60]);
}

#[tokio::test(start_paused = true)]
async fn denial_uses_soa_record_ttl_and_denial_cap() {
    let b = Backend::new();
    b.set(
        "nx.example.org.",
        Script::rcode(ResponseCode::NXDomain, vec![soa("example.org.", 600)]),
    );
    let rig = Rig::new("cache", b.clone());
    assert_eq!(ttls(&rig.ask(q("nx.example.org.")).await), [600]);
    let hit = rig.ask(q("nx.example.org.")).await;
    assert_eq!(hit.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(rig.backend.calls(), 1);
    assert_eq!((rig.cache.success_len(), rig.cache.denial_len()), (0, 1));

    let rig = Rig::new("cache {\n denial 100 10\n}", b);
    assert_eq!(ttls(&rig.ask(q("nx.example.org.")).await), [10]);
}

#[tokio::test(start_paused = true)]
async fn uncacheable_replies() {
    let b = Backend::new();
    b.set(
        "nosoa.example.org.",
        Script::rcode(ResponseCode::NXDomain, vec![]),
    );
    b.set(
        "refused.example.org.",
        Script::rcode(ResponseCode::Refused, vec![]),
    );
    let mut tc = Script::answer(vec![a("tc.example.org.", 300, [1, 2, 3, 4])]);
    tc.truncated = true;
    b.set("tc.example.org.", tc);
    b.set(
        "nodata.example.org.",
        Script::answer(vec![a("other.example.org.", 300, [1, 2, 3, 4])]),
    );
    let rig = Rig::new("cache", b);
    for name in [
        "nosoa.example.org.",
        "refused.example.org.",
        "tc.example.org.",
        "nodata.example.org.",
    ] {
        rig.ask(q(name)).await;
        rig.ask(q(name)).await;
    }
    assert_eq!(rig.backend.calls(), 8, "nothing was cached");
    assert_eq!((rig.cache.success_len(), rig.cache.denial_len()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn servfail_cached_for_five_seconds_or_not_at_all() {
    let b = Backend::new();
    b.set(
        "fail.example.org.",
        Script::rcode(ResponseCode::ServFail, vec![]),
    );
    let rig = Rig::new("cache", b.clone());
    rig.ask(q("fail.example.org.")).await;
    rig.ask(q("fail.example.org.")).await;
    assert_eq!(rig.backend.calls(), 1);
    advance(5).await;
    rig.ask(q("fail.example.org.")).await;
    assert_eq!(rig.backend.calls(), 2);

    let rig = Rig::new("cache {\n servfail 0\n}", b);
    rig.ask(q("fail.example.org.")).await;
    rig.ask(q("fail.example.org.")).await;
    assert_eq!(rig.backend.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn do_and_cd_split_the_cache_case_does_not() {
    let rig = Rig::new("cache", positive());
    rig.ask(q("example.org.")).await;
    rig.ask(q("EXAMPLE.org.")).await;
    assert_eq!(rig.backend.calls(), 1);
    rig.ask(testkit::request_edns(
        "example.org.",
        RecordType::A,
        1232,
        true,
    ))
    .await;
    assert_eq!(rig.backend.calls(), 2);
    rig.ask(testkit::request_edns(
        "example.org.",
        RecordType::A,
        1232,
        false,
    ))
    .await;
    assert_eq!(
        rig.backend.calls(),
        2,
        "EDNS without DO shares the plain entry"
    );
    let mut m = q("example.org.").message().clone();
    m.metadata.checking_disabled = true;
    rig.ask(testkit::from_message(m.clone(), Protocol::Udp))
        .await;
    rig.ask(testkit::from_message(m, Protocol::Udp)).await;
    assert_eq!(rig.backend.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn hit_keeps_client_spelling_and_copies_rd_cd() {
    let rig = Rig::new("cache", positive());
    rig.ask(q("example.org.")).await;
    let mut m = q("ExAmPlE.OrG.").message().clone();
    m.metadata.recursion_desired = false;
    m.metadata.id = 7;
    let hit = rig.ask(testkit::from_message(m, Protocol::Udp)).await;
    assert_eq!(hit.queries[0].name().to_ascii(), "ExAmPlE.OrG.");
    assert_eq!(hit.answers[0].name.to_ascii(), "example.org.");
    assert!(!hit.metadata.recursion_desired);
    assert_eq!(hit.metadata.id, 7);
    assert!(hit.metadata.recursion_available);
}

#[tokio::test(start_paused = true)]
async fn ad_rules_and_ad_on_upstream_query() {
    let b = Backend::new();
    let mut s = Script::answer(vec![a("example.org.", 300, [192, 0, 2, 1])]);
    s.flags_ad = true;
    b.set("example.org.", s);
    let rig = Rig::new("cache", b);
    let miss = rig.ask(q("example.org.")).await;
    assert!(
        !miss.metadata.authentic_data,
        "cleared for a client without DO or AD"
    );
    let sent = rig.backend.last.lock().unwrap().clone().unwrap();
    assert!(
        sent.message().metadata.authentic_data,
        "AD set on the upstream query"
    );
    assert!(!rig.ask(q("example.org.")).await.metadata.authentic_data);
    let mut m = q("example.org.").message().clone();
    m.metadata.authentic_data = true;
    assert!(
        rig.ask(testkit::from_message(m, Protocol::Udp))
            .await
            .metadata
            .authentic_data
    );
}

#[tokio::test(start_paused = true)]
async fn keepttl_serves_the_original_ttl() {
    let rig = Rig::new("cache {\n keepttl\n}", positive());
    rig.ask(q("example.org.")).await;
    advance(100).await;
    assert_eq!(ttls(&rig.ask(q("example.org.")).await), [300]);
}

#[tokio::test(start_paused = true)]
async fn disable_success_and_denial_zones() {
    let b = positive();
    b.set(
        "nx.example.org.",
        Script::rcode(ResponseCode::NXDomain, vec![soa("example.org.", 60)]),
    );
    let rig = Rig::new(
        "cache {\n disable success\n disable denial example.net\n}",
        b,
    );
    rig.ask(q("example.org.")).await;
    rig.ask(q("example.org.")).await;
    assert_eq!(rig.backend.calls(), 2);
    rig.ask(q("nx.example.org.")).await;
    rig.ask(q("nx.example.org.")).await;
    assert_eq!(
        rig.backend.calls(),
        3,
        "denial still cached outside example.net"
    );
}

#[tokio::test(start_paused = true)]
async fn zones_limit_what_is_cached() {
    let b = Backend::echo();
    let rig = Rig::new("cache 30 example.org", b);
    rig.ask(q("a.example.net.")).await;
    rig.ask(q("a.example.net.")).await;
    assert_eq!(rig.backend.calls(), 2);
    rig.ask(q("a.example.org.")).await;
    rig.ask(q("a.example.org.")).await;
    assert_eq!(rig.backend.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn metrics_count_requests_hits_misses_and_entries() {
    let b = positive();
    b.set(
        "nx.example.org.",
        Script::rcode(ResponseCode::NXDomain, vec![soa("example.org.", 60)]),
    );
    let rig = Rig::new("cache", b);
    rig.ask(q("example.org.")).await;
    rig.ask(q("example.org.")).await;
    rig.ask(q("example.org.")).await;
    rig.ask(q("nx.example.org.")).await;
    rig.ask(q("nx.example.org.")).await;
    let text = rig.metrics();
    let l = r#"server="dns://:53",view="",zones=".""#;
    let lt = |t: &str| format!(r#"server="dns://:53",type="{t}",view="",zones=".""#);
    for want in [
        format!("coredns_cache_requests_total{{{l}}} 5"),
        format!("coredns_cache_misses_total{{{l}}} 2"),
        format!("coredns_cache_hits_total{{{}}} 2", lt("success")),
        format!("coredns_cache_hits_total{{{}}} 1", lt("denial")),
        format!("coredns_cache_entries{{{}}} 1", lt("success")),
        format!("coredns_cache_entries{{{}}} 1", lt("denial")),
        "# TYPE coredns_cache_entries gauge".to_string(),
        "# TYPE coredns_cache_hits counter".to_string(),
    ] {
        assert!(text.contains(&want), "missing {want} in\n{text}");
    }
    // As in CoreDNS, series nobody touched yet are not exported.
    for absent in [
        "coredns_cache_evictions_total{",
        "coredns_cache_prefetch_total{",
        "coredns_cache_drops_total{",
        "coredns_cache_served_stale_total{",
    ] {
        assert!(!text.contains(absent), "{absent} present in\n{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn capacity_bounds_entries_and_counts_evictions() {
    let rig = Rig::new("cache {\n success 10\n}", Backend::echo());
    for i in 0..3000 {
        rig.ask(q(&format!("n{i}.example.org."))).await;
    }
    assert!(
        rig.cache.success_len() <= 1024,
        "{}",
        rig.cache.success_len()
    );
    assert!(rig.cache.success_len() > 900);
    let text = rig.metrics();
    let line = text
        .lines()
        .find(|l| l.starts_with("coredns_cache_evictions_total{") && l.contains("success"))
        .unwrap();
    let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(n as usize, 3000 - rig.cache.success_len());
}

#[tokio::test(start_paused = true)]
async fn concurrent_identical_misses_send_one_query() {
    let b = positive();
    *b.delay.lock().unwrap() = Duration::from_millis(100);
    let rig = Arc::new(Rig::new("cache", b));
    let mut tasks = Vec::new();
    for i in 0..50u16 {
        let rig = rig.clone();
        tasks.push(tokio::spawn(async move {
            let mut m = q("example.org.").message().clone();
            m.metadata.id = i;
            rig.ask(testkit::from_message(m, Protocol::Udp)).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let m = t.await.unwrap();
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.metadata.id, i as u16);
    }
    assert_eq!(rig.backend.calls(), 1);
    assert_eq!(rig.cache.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn prefetch_refreshes_popular_entries() {
    let b = Backend::new();
    b.set(
        "example.org.",
        Script::answer(vec![a("example.org.", 10, [192, 0, 2, 1])]),
    );
    let rig = Rig::new("cache {\n prefetch 1 1m 50%\n}", b);
    rig.ask(q("example.org.")).await;
    advance(2).await;
    rig.ask(q("example.org.")).await; // TTL 8 > 5: no prefetch
    settle().await;
    assert_eq!(rig.backend.calls(), 1);
    advance(4).await;
    let m = rig.ask(q("example.org.")).await; // TTL 4 <= 5: prefetch
    assert_eq!(ttls(&m), [4]);
    settle().await;
    assert_eq!(rig.backend.calls(), 2);
    let sent = rig.backend.last.lock().unwrap().clone().unwrap();
    assert_eq!(
        sent.protocol,
        Protocol::Tcp,
        "prefetches go out as TCP, as CoreDNS's"
    );
    assert_eq!(
        ttls(&rig.ask(q("example.org.")).await),
        [10],
        "refreshed entry"
    );
    assert!(
        rig.metrics()
            .contains("coredns_cache_prefetch_total{server=\"dns://:53\",view=\"\",zones=\".\"} 1")
    );
    assert_eq!(
        rig.front.calls(),
        4,
        "the prefetch starts at the cache: the plugin before it saw only the 4 client queries"
    );
}

#[tokio::test(start_paused = true)]
async fn serve_stale_immediate_serves_ttl_zero_and_refreshes() {
    let rig = Rig::new("cache 5 {\n serve_stale\n}", positive());
    rig.ask(q("example.org.")).await;
    advance(7).await;
    let stale = rig.ask(q("example.org.")).await;
    assert_eq!(ttls(&stale), [0]);
    settle().await;
    assert_eq!(rig.backend.calls(), 2, "refreshed in the background");
    assert_eq!(
        rig.front.calls(),
        2,
        "the refresh did not pass the plugin before the cache"
    );
    assert_eq!(ttls(&rig.ask(q("example.org.")).await), [5]);
    assert!(rig.metrics().contains(
        "coredns_cache_served_stale_total{server=\"dns://:53\",view=\"\",zones=\".\"} 1"
    ));
    // Past the stale window the entry is a miss.
    advance(3600 + 10).await;
    rig.ask(q("example.org.")).await;
    assert_eq!(rig.backend.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn serve_stale_response_ttl() {
    let rig = Rig::new("cache 5 {\n serve_stale 1h immediate 30s\n}", positive());
    rig.ask(q("example.org.")).await;
    advance(6).await;
    assert_eq!(ttls(&rig.ask(q("example.org.")).await), [30]);
}

#[tokio::test(start_paused = true)]
async fn serve_stale_verify_asks_first() {
    let b = positive();
    let rig = Rig::new("cache 5 {\n serve_stale 1h verify\n}", b.clone());
    rig.ask(q("example.org.")).await;
    advance(6).await;
    let m = rig.ask(q("example.org.")).await;
    assert_eq!(rig.backend.calls(), 2);
    assert_eq!(ttls(&m), [5], "the verified fresh answer");
    // Upstream now fails: the stale entry is served.
    advance(6).await;
    b.set(
        "example.org.",
        Script::rcode(ResponseCode::ServFail, vec![]),
    );
    let m = rig.ask(q("example.org.")).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(ttls(&m), [0]);
}

#[tokio::test(start_paused = true)]
async fn cached_servfail_yields_to_success() {
    let b = Backend::new();
    b.set(
        "flap.example.org.",
        Script::rcode(ResponseCode::ServFail, vec![]),
    );
    let rig = Rig::new("cache 5 {\n serve_stale\n}", b.clone());
    // A success stored first, then (after it went stale) a SERVFAIL refresh.
    b.set(
        "flap.example.org.",
        Script::answer(vec![a("flap.example.org.", 300, [1, 2, 3, 4])]),
    );
    rig.ask(q("flap.example.org.")).await;
    b.set(
        "flap.example.org.",
        Script::rcode(ResponseCode::ServFail, vec![]),
    );
    advance(6).await;
    let m = rig.ask(q("flap.example.org.")).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "stale success served"
    );
}

fn wire_query(name: &str, id: u16, opt: Option<(u16, bool)>) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    if let Some((size, dnssec_ok)) = opt {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

/// The query as the server's dispatcher hands it to the hook: with the listener's label (the
/// test kit's requests come in on `dns://:53`).
fn at_server(q: WireQuery<'_>) -> WireQuery<'_> {
    WireQuery {
        server: "dns://:53",
        ..q
    }
}

#[tokio::test(start_paused = true)]
async fn fast_hook_answers_hits_from_wire() {
    let rig = Rig::new("cache", positive());
    let hook = rig.cache.fast_hook().unwrap();
    let mut out = Vec::with_capacity(65535);
    let raw = wire_query("eXaMpLe.OrG.", 0x1234, Some((1232, false)));
    let wq = at_server(WireQuery::parse(&raw).unwrap());
    assert_eq!(
        hook.answer(&wq, &mut out),
        FastAnswer::Pass,
        "a miss passes"
    );
    rig.ask(q("example.org.")).await;
    advance(3).await;
    out.clear();
    assert_eq!(hook.answer(&wq, &mut out), FastAnswer::Answered);
    assert_eq!(&out[0..2], &[0x12, 0x34], "ID");
    assert_eq!(
        &out[12..12 + 14],
        &raw[12..12 + 14],
        "question bytes, 0x20 case kept"
    );
    let m = Message::from_vec(&out).unwrap();
    assert!(m.metadata.authoritative);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(ttls(&m), [297]);
    assert_eq!(m.edns.as_ref().map(|e| e.max_payload()), Some(1232));
    assert_eq!(m.answers[0].name.to_ascii(), "example.org.");
    // The same bytes as the async path gives, once the server has added the OPT.
    let raw_plain = wire_query("eXaMpLe.OrG.", 0x1234, None);
    out.clear();
    assert_eq!(
        hook.answer(&at_server(WireQuery::parse(&raw_plain).unwrap()), &mut out),
        FastAnswer::Answered
    );
    let fast_plain = out.clone();
    let mut slow = rig
        .ask_reply(testkit::from_message(
            Message::from_vec(&raw_plain).unwrap(),
            Protocol::Udp,
        ))
        .await;
    let Reply::Wire(slow_bytes) = &mut slow else {
        panic!("hit not in wire form")
    };
    assert_eq!(&fast_plain[..], &slow_bytes[..]);
    // Stale and DO-keyed lookups pass.
    let raw_do = wire_query("example.org.", 1, Some((1232, true)));
    out.clear();
    assert_eq!(
        hook.answer(&at_server(WireQuery::parse(&raw_do).unwrap()), &mut out),
        FastAnswer::Pass
    );
    // A listener the slow path has not seen yet passes once (its counters are made there).
    out.clear();
    let other = WireQuery {
        server: "dns://127.0.0.2:53",
        ..wq
    };
    assert_eq!(hook.answer(&other, &mut out), FastAnswer::Pass);
    advance(400).await;
    out.clear();
    assert_eq!(hook.answer(&wq, &mut out), FastAnswer::Pass, "expired");
    let text = rig.metrics();
    assert!(text.contains("coredns_cache_hits_total{server=\"dns://:53\",type=\"success\",view=\"\",zones=\".\"} 3"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn fast_hook_passes_when_the_reply_does_not_fit() {
    let b = Backend::new();
    let many: Vec<_> = (0..60u8)
        .map(|i| a("big.example.org.", 300, [10, 0, 0, i]))
        .collect();
    b.set("big.example.org.", Script::answer(many));
    let rig = Rig::new("cache", b);
    rig.ask(q("big.example.org.")).await;
    let hook = rig.cache.fast_hook().unwrap();
    let mut out = Vec::new();
    let raw = wire_query("big.example.org.", 9, None);
    assert_eq!(
        hook.answer(&at_server(WireQuery::parse(&raw).unwrap()), &mut out),
        FastAnswer::Pass
    );
    let raw = wire_query("big.example.org.", 9, Some((4096, false)));
    out.clear();
    assert_eq!(
        hook.answer(&at_server(WireQuery::parse(&raw).unwrap()), &mut out),
        FastAnswer::Answered
    );
    assert_eq!(Message::from_vec(&out).unwrap().answers.len(), 60);
}

#[tokio::test(start_paused = true)]
async fn mismatched_question_is_dropped_not_cached() {
    let b = Backend::new();
    let mut s = Script::answer(vec![a("other.example.org.", 300, [1, 2, 3, 4])]);
    s.question = Some("other.example.org.".into());
    b.set("example.org.", s);
    let rig = Rig::new("cache", b);
    rig.ask(q("example.org.")).await;
    rig.ask(q("example.org.")).await;
    assert_eq!(rig.backend.calls(), 2);
    assert!(
        rig.metrics()
            .contains("coredns_cache_drops_total{server=\"dns://:53\",view=\"\",zones=\".\"} 2")
    );
}

fn signed_reply(expiration: u32, inception: u32) -> Message {
    use ferrodns_plugin::proto::rr::RData;
    use ferrodns_plugin::proto::rr::rdata::NULL;
    let mut m = Message::new(0, MessageType::Response, OpCode::Query);
    m.add_answer(a("example.org.", 300, [192, 0, 2, 1]));
    let mut sig = vec![0, 1, 8, 2, 0, 0, 1, 44];
    sig.extend_from_slice(&expiration.to_be_bytes());
    sig.extend_from_slice(&inception.to_be_bytes());
    sig.extend_from_slice(&[0, 1, 0]); // key tag, signer "."
    sig.extend_from_slice(&[1, 2, 3, 4]); // signature
    m.add_answer(ferrodns_plugin::proto::rr::Record::from_rdata(
        Name::from_ascii("example.org.").unwrap(),
        300,
        RData::Unknown {
            code: RecordType::RRSIG,
            rdata: NULL::with(sig),
        },
    ));
    let mut e = Edns::new();
    e.set_dnssec_ok(true);
    m.set_edns(e);
    m
}

#[tokio::test(start_paused = true)]
async fn expired_signatures_are_not_cached_for_do_replies() {
    for (exp, inc, cached) in [(1000u32, 0u32, 0usize), (u32::MAX, 0, 1)] {
        let shared = ferrodns_plugin::Shared::default();
        let mut d = testkit::dispenser("cache", "cache").unwrap();
        let cfg = ferrodns_plugin_cache::config::parse(&mut d, &[".".to_string()]).unwrap();
        let families = ferrodns_plugin_cache::metrics::Families::register(&shared.metrics);
        let cache = ferrodns_plugin_cache::Cache::new(cfg, families);
        let plugins: Vec<Arc<dyn Plugin>> = vec![
            cache.clone(),
            testkit::Fixed::new(Ok(Reply::message(signed_reply(exp, inc)))),
        ];
        let mut req = testkit::request_edns("example.org.", RecordType::A, 1232, true);
        testkit::run(&plugins, &mut req).await.unwrap();
        assert_eq!(cache.success_len(), cached, "expiration {exp}");
    }
}

#[tokio::test(start_paused = true)]
async fn serve_stale_verify_with_timeout_refreshes_from_the_cache_on() {
    let b = positive();
    let rig = Rig::new("cache 5 {\n serve_stale 1h verify 100ms\n}", b.clone());
    rig.ask(q("example.org.")).await;
    advance(6).await;
    // A quick upstream: the verified answer is served.
    let m = rig.ask(q("example.org.")).await;
    assert_eq!(ttls(&m), [5], "the verified fresh answer");
    assert_eq!(rig.backend.calls(), 2);
    // A slow upstream: the stale entry is served when the timeout passes, and the refresh
    // still lands in the cache afterwards.
    advance(6).await;
    *b.delay.lock().unwrap() = Duration::from_secs(1);
    b.set(
        "example.org.",
        Script::answer(vec![a("example.org.", 300, [192, 0, 2, 7])]),
    );
    let m = rig.ask(q("example.org.")).await;
    assert_eq!(ttls(&m), [0], "stale, the refresh did not come in time");
    advance(2).await;
    settle().await;
    assert_eq!(rig.backend.calls(), 3);
    *b.delay.lock().unwrap() = Duration::ZERO;
    let m = rig.ask(q("example.org.")).await;
    assert_eq!(ttls(&m), [5], "the background refresh was stored");
    assert_eq!(
        m.answers[0].data,
        ferrodns_plugin::proto::rr::RData::A(ferrodns_plugin::proto::rr::rdata::A::new(
            192, 0, 2, 7
        ))
    );
    assert_eq!(
        rig.front.calls(),
        4,
        "the refreshes did not pass the plugin before the cache"
    );
    assert_eq!(rig.backend.calls(), 3);
}

/// After the cache: sets the labels `file` and `forward` set, then asks the backend.
struct Labeller;

#[ferrodns_plugin::async_trait]
impl Plugin for Labeller {
    fn name(&self) -> &'static str {
        "labeller"
    }
    async fn serve(
        &self,
        req: &mut ferrodns_plugin::Request,
        next: ferrodns_plugin::Next,
    ) -> Result<Reply, ferrodns_plugin::PluginError> {
        req.set_metadata("zone/wildcard", "*.example.org.");
        req.set_metadata("forward/upstream", "192.0.2.53:53");
        next.serve(req).await
    }
}

#[tokio::test(start_paused = true)]
async fn labels_reach_the_client_request_and_the_wildcard_is_kept_for_hits() {
    let rig = Rig::new("cache", positive());
    let chain: Vec<Arc<dyn Plugin>> =
        vec![rig.cache.clone(), Arc::new(Labeller), rig.backend.clone()];
    let mut req = q("example.org.");
    req.enable_metadata();
    testkit::run(&chain, &mut req).await.expect("miss");
    assert_eq!(
        req.metadata("zone/wildcard").as_deref(),
        Some("*.example.org.")
    );
    assert_eq!(
        req.metadata("forward/upstream").as_deref(),
        Some("192.0.2.53:53")
    );
    // A hit: the stored wildcard only (nothing after the cache ran).
    let mut req = q("example.org.");
    req.enable_metadata();
    testkit::run(&chain, &mut req).await.expect("hit");
    assert_eq!(rig.backend.calls(), 1);
    assert_eq!(
        req.metadata("zone/wildcard").as_deref(),
        Some("*.example.org.")
    );
    assert_eq!(req.metadata("forward/upstream"), None);
    // Without metadata nothing is recorded, and nothing was stored for the entry.
    let rig = Rig::new("cache", positive());
    let chain: Vec<Arc<dyn Plugin>> =
        vec![rig.cache.clone(), Arc::new(Labeller), rig.backend.clone()];
    let mut req = q("example.org.");
    testkit::run(&chain, &mut req).await.expect("miss");
    let mut req = q("example.org.");
    req.enable_metadata();
    testkit::run(&chain, &mut req).await.expect("hit");
    assert_eq!(req.metadata("zone/wildcard"), None);
}

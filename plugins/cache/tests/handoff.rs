//! Hand-off: a cache filled through real queries exports its entries, a fresh cache built from
//! a Corefile imports them and answers them as its own, within its own bounds. On tokio's
//! paused clock; the wall-clock gap between export and import is given explicitly where it
//! matters.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Backend, Rig, Script, a, soa, ttls};
use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{FastAnswer, Plugin, WireQuery};
use ferrodns_plugin_cache::handoff::{HandoffError, Imported};
use ferrodns_plugin_test as testkit;

const EXPORTED_AT: u64 = 1_700_000_000_000;

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

/// A positive answer for `example.org.` (TTL 300) and an NXDOMAIN for `nx.example.org.` (SOA
/// TTL 600).
fn backend() -> Arc<Backend> {
    let b = Backend::new();
    b.set(
        "example.org.",
        Script::answer(vec![a("example.org.", 300, [192, 0, 2, 1])]),
    );
    b.set(
        "nx.example.org.",
        Script::rcode(ResponseCode::NXDomain, vec![soa("example.org.", 600)]),
    );
    b
}

/// A cache from `corefile` that asked for both names once.
async fn filled(corefile: &str) -> Rig {
    let rig = Rig::new(corefile, backend());
    rig.ask(q("example.org.")).await;
    rig.ask(q("nx.example.org.")).await;
    assert_eq!(rig.backend.calls(), 2);
    rig
}

/// A fresh cache from `corefile` that took `state` in, `gap_ms` of wall-clock time after the
/// export.
fn imported(corefile: &str, state: &[u8], gap_ms: u64) -> (Rig, Imported) {
    let rig = Rig::new(corefile, backend());
    let done = rig.cache.import_state(state, EXPORTED_AT + gap_ms);
    (rig, done)
}

fn wire_query(name: &str, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

/// Where each record of a well-formed state ends, and its kind byte (see the format in
/// src/handoff.rs: a 12-byte header, then records framed by a 4-byte length).
fn frames(state: &[u8]) -> Vec<(usize, u8)> {
    let mut out = Vec::new();
    let mut at = 12;
    while at + 4 <= state.len() {
        let len = u32::from_be_bytes(state[at..at + 4].try_into().unwrap()) as usize;
        out.push((at + 4 + len, state[at + 4]));
        at += 4 + len;
    }
    out
}

/// The state without its listener-label records.
fn without_labels(state: &[u8]) -> Vec<u8> {
    let mut out = state[..12].to_vec();
    let mut start = 12;
    for (end, kind) in frames(state) {
        if kind != 2 {
            out.extend_from_slice(&state[start..end]);
        }
        start = end;
    }
    out
}

fn metric(text: &str, line_start: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(start_paused = true)]
async fn imported_entries_are_hits_with_the_ttl_counted_down() {
    let old = filled("cache").await;
    advance(10).await;
    // Through the plugin API, as the server does it.
    let state = old.cache.handoff_export().unwrap();
    assert!(state.starts_with(b"FDC1"));
    let new = Rig::new("cache", backend());
    new.cache.handoff_import(&state);
    assert_eq!((new.cache.success_len(), new.cache.denial_len()), (1, 1));

    let m = new.ask(q("example.org.")).await;
    assert_eq!(ttls(&m), [290]);
    assert_eq!(m.answers[0].name.to_ascii(), "example.org.");
    let nx = new.ask(q("nx.example.org.")).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(ttls(&nx), [590]);
    advance(5).await;
    assert_eq!(ttls(&new.ask(q("example.org.")).await), [285]);
    assert_eq!(new.backend.calls(), 0, "every answer came from the cache");
    // It expires when the original would have.
    advance(286).await;
    new.ask(q("example.org.")).await;
    assert_eq!(new.backend.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn wall_clock_time_between_export_and_import_counts() {
    let old = filled("cache").await;
    advance(10).await;
    let state = old.cache.export_state(EXPORTED_AT);
    let (new, done) = imported("cache", &state, 20_000);
    assert_eq!((done.success, done.denial, done.error), (1, 1, None));
    assert_eq!(ttls(&new.ask(q("example.org.")).await), [270]);
    assert_eq!(ttls(&new.ask(q("nx.example.org.")).await), [570]);
    assert_eq!(new.backend.calls(), 0);
    // A wall clock set back since the export counts as no time passed.
    let later = old.cache.export_state(EXPORTED_AT + 60_000);
    let (again, _) = imported("cache", &later, 0);
    assert_eq!(ttls(&again.ask(q("example.org.")).await), [290]);
}

#[tokio::test(start_paused = true)]
async fn expired_entries_are_left_out() {
    let old = filled("cache 30").await;
    advance(20).await;
    let state = old.cache.export_state(EXPORTED_AT);
    // 20s old with a TTL of 30: 11s later they have expired.
    let (new, done) = imported("cache 30", &state, 11_000);
    assert_eq!((done.success, done.denial, done.skipped), (0, 0, 2));
    assert_eq!((new.cache.success_len(), new.cache.denial_len()), (0, 0));
    new.ask(q("example.org.")).await;
    assert_eq!(new.backend.calls(), 1);
    // Expired in the old process: not even exported.
    advance(11).await;
    let state = old.cache.export_state(EXPORTED_AT);
    let (_, done) = imported("cache 30", &state, 0);
    assert_eq!(done, Imported::default());
}

#[tokio::test(start_paused = true)]
async fn the_importers_ttl_caps_apply() {
    let old = filled("cache").await;
    advance(10).await;
    let state = old.cache.export_state(EXPORTED_AT);
    let (new, _) = imported("cache {\n success 100 60\n denial 100 20\n}", &state, 0);
    assert_eq!(ttls(&new.ask(q("example.org.")).await), [60]);
    assert_eq!(ttls(&new.ask(q("nx.example.org.")).await), [20]);
    advance(21).await;
    new.ask(q("nx.example.org.")).await;
    assert_eq!(
        new.backend.calls(),
        1,
        "the denial entry lived 20s, not 590s"
    );
    // keepttl serves the clamped original TTL, never the predecessor's.
    let (keep, _) = imported("cache 45 {\n keepttl\n}", &state, 0);
    assert_eq!(ttls(&keep.ask(q("example.org.")).await), [45]);
}

#[tokio::test(start_paused = true)]
async fn disable_success_importer_takes_only_denials() {
    let old = filled("cache").await;
    let state = old.cache.export_state(EXPORTED_AT);
    let (new, done) = imported("cache {\n disable success\n}", &state, 0);
    assert_eq!((done.success, done.denial, done.skipped), (0, 1, 1));
    new.ask(q("example.org.")).await;
    new.ask(q("nx.example.org.")).await;
    assert_eq!(
        new.backend.calls(),
        1,
        "only the positive answer was asked for"
    );
    let (new, done) = imported("cache {\n disable denial example.org\n}", &state, 0);
    assert_eq!((done.success, done.denial), (1, 0));
    assert_eq!(new.cache.denial_len(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_importers_zones_apply() {
    let old = filled("cache").await;
    let state = old.cache.export_state(EXPORTED_AT);
    let (new, done) = imported("cache 3600 example.net", &state, 0);
    assert_eq!((done.success, done.denial, done.skipped), (0, 0, 2));
    assert_eq!((new.cache.success_len(), new.cache.denial_len()), (0, 0));
    let (new, done) = imported("cache 3600 nx.example.org", &state, 0);
    assert_eq!((done.success, done.denial), (0, 1));
    assert_eq!(new.cache.denial_len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_smaller_importer_keeps_to_its_capacity() {
    let old = Rig::new("cache", Backend::echo());
    for i in 0..3000 {
        old.ask(q(&format!("n{i}.example.org."))).await;
    }
    assert_eq!(old.cache.success_len(), 3000);
    let state = old.cache.export_state(EXPORTED_AT);
    let new = Rig::new("cache {\n success 10\n}", Backend::echo());
    let done = new.cache.import_state(&state, EXPORTED_AT);
    assert_eq!(
        done.success, 3000,
        "each was added, the store evicting as for any insert"
    );
    let cap = new.cache.capacities().0;
    assert_eq!(cap, 1024);
    let len = new.cache.success_len();
    assert!(len <= cap && len > cap * 9 / 10, "{len}");
    let text = new.metrics();
    assert!(
        !text.contains("coredns_cache_evictions_total{"),
        "making room for imports is not counted as evictions:\n{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn garbage_and_truncated_states_are_ignored() {
    let old = filled("cache").await;
    let state = old.cache.export_state(EXPORTED_AT);
    let cases: [(&[u8], HandoffError); 4] = [
        (b"", HandoffError::Truncated),
        (b"FD", HandoffError::Truncated),
        (b"hello, world, this is not ours", HandoffError::NotOurs),
        (b"FDC9\0\0\0\0\0\0\0\0", HandoffError::UnknownVersion(b'9')),
    ];
    for (bytes, want) in cases {
        let (new, done) = imported("cache", bytes, 0);
        assert_eq!(done.error, Some(want), "{bytes:?}");
        assert_eq!((new.cache.success_len(), new.cache.denial_len()), (0, 0));
    }
    // Every truncation: what is whole before the cut is kept, nothing after it.
    let whole = imported("cache", &state, 0).1;
    assert_eq!((whole.success, whole.denial, whole.error), (1, 1, None));
    let frames = frames(&state);
    for cut in 0..state.len() {
        let (new, done) = imported("cache", &state[..cut], 0);
        let n = new.cache.success_len() + new.cache.denial_len();
        let whole_entries = frames
            .iter()
            .filter(|(end, kind)| *end <= cut && *kind != 2)
            .count();
        assert_eq!(n, whole_entries, "cut at {cut}");
        assert_eq!(n, done.success + done.denial);
        let at_boundary = cut == 12 || frames.iter().any(|(end, _)| *end == cut);
        assert_eq!(done.error.is_none(), at_boundary, "cut at {cut}");
    }
    // Every byte flipped: no panic, never more than was exported, and the cache still answers.
    for at in 0..state.len() {
        let mut bad = state.clone();
        bad[at] ^= 0xa5;
        let (new, done) = imported("cache", &bad, 0);
        assert!(done.success + done.denial <= 2, "flip at {at}");
        // Whatever was taken in still decodes: damaged records are left out.
        for name in ["example.org.", "nx.example.org."] {
            let m = new.ask(q(name)).await;
            assert_eq!(m.queries[0].name().to_ascii(), name, "flip at {at}");
        }
        let hook = new.cache.fast_hook().unwrap();
        let raw = wire_query("example.org.", 1);
        let wq = WireQuery {
            server: "dns://:53",
            ..WireQuery::parse(&raw).unwrap()
        };
        let mut out = Vec::new();
        hook.answer(&wq, &mut out);
    }
    // Trailing garbage after whole records: the records are kept.
    let mut tail = state.clone();
    tail.extend_from_slice(&[0xff; 3]);
    let (_, done) = imported("cache", &tail, 0);
    assert_eq!((done.success, done.denial), (1, 1));
    assert_eq!(done.error, Some(HandoffError::Truncated));
}

#[tokio::test(start_paused = true)]
async fn the_fast_path_answers_imported_entries() {
    let old = filled("cache").await;
    advance(3).await;
    let state = old.cache.export_state(EXPORTED_AT);
    let (new, _) = imported("cache", &state, 0);
    let hook = new.cache.fast_hook().unwrap();
    let raw = wire_query("ExAmple.org.", 0x4242);
    // The listener label the predecessor counted under came with the state, so the first query
    // can already take the fast path.
    let wq = WireQuery {
        server: "dns://:53",
        ..WireQuery::parse(&raw).unwrap()
    };
    let mut out = Vec::new();
    assert_eq!(hook.answer(&wq, &mut out), FastAnswer::Answered);
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.metadata.id, 0x4242);
    assert_eq!(m.queries[0].name().to_ascii(), "ExAmple.org.");
    assert_eq!(ttls(&m), [297]);
    advance(7).await;
    out.clear();
    assert_eq!(hook.answer(&wq, &mut out), FastAnswer::Answered);
    assert_eq!(ttls(&Message::from_vec(&out).unwrap()), [290]);
    assert_eq!(new.backend.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn metrics_show_the_imported_entries_and_nothing_else() {
    let old = filled("cache").await;
    let state = old.cache.export_state(EXPORTED_AT);
    let (new, _) = imported("cache", &state, 0);
    let text = new.metrics();
    let lt = |t: &str| {
        format!(r#"coredns_cache_entries{{server="dns://:53",type="{t}",view="",zones="."}}"#)
    };
    assert_eq!(metric(&text, &lt("success")), Some(1), "{text}");
    assert_eq!(metric(&text, &lt("denial")), Some(1), "{text}");
    for absent in [
        "coredns_cache_requests_total{",
        "coredns_cache_hits_total{",
        "coredns_cache_misses_total{",
        "coredns_cache_evictions_total{",
    ] {
        assert!(!text.contains(absent), "{absent} present in\n{text}");
    }
    new.ask(q("example.org.")).await;
    let text = new.metrics();
    let hits = r#"coredns_cache_hits_total{server="dns://:53",type="success",view="",zones="."}"#;
    assert_eq!(metric(&text, hits), Some(1));
    // A listener that was not in the state starts with the counts on its first query.
    let (unlabelled, _) = imported("cache", &without_labels(&state), 0);
    assert!(!unlabelled.metrics().contains("coredns_cache_entries{"));
    unlabelled.ask(q("example.org.")).await;
    assert_eq!(
        metric(&unlabelled.metrics(), &lt("success")),
        Some(1),
        "{}",
        unlabelled.metrics()
    );
}

#[tokio::test(start_paused = true)]
async fn serve_stale_entries_are_carried_and_refreshed() {
    let old = filled("cache 5 {\n serve_stale\n}").await;
    advance(7).await;
    let state = old.cache.export_state(EXPORTED_AT);
    // Without serve_stale, a stale entry is an expired one.
    let (_, done) = imported("cache 5", &state, 0);
    assert_eq!((done.success, done.denial, done.skipped), (0, 0, 2));
    let (new, done) = imported("cache 5 {\n serve_stale\n}", &state, 0);
    assert_eq!((done.success, done.denial), (1, 1));
    let stale = new.ask(q("example.org.")).await;
    assert_eq!(ttls(&stale), [0]);
    settle().await;
    assert_eq!(new.backend.calls(), 1, "refreshed in the background");
    assert_eq!(ttls(&new.ask(q("example.org.")).await), [5]);
    assert!(new.metrics().contains(
        "coredns_cache_served_stale_total{server=\"dns://:53\",view=\"\",zones=\".\"} 1"
    ));
}

#[tokio::test(start_paused = true)]
async fn prefetch_works_on_imported_entries() {
    let b = Backend::new();
    b.set(
        "example.org.",
        Script::answer(vec![a("example.org.", 10, [192, 0, 2, 1])]),
    );
    let old = Rig::new("cache {\n prefetch 1 1m 50%\n}", b);
    old.ask(q("example.org.")).await;
    advance(6).await;
    let state = old.cache.export_state(EXPORTED_AT);
    let b = Backend::new();
    b.set(
        "example.org.",
        Script::answer(vec![a("example.org.", 10, [192, 0, 2, 1])]),
    );
    let new = Rig::new("cache {\n prefetch 1 1m 50%\n}", b);
    new.cache.import_state(&state, EXPORTED_AT);
    // TTL 4 of 10, under 50%: the hit is served and a prefetch starts.
    assert_eq!(ttls(&new.ask(q("example.org.")).await), [4]);
    settle().await;
    assert_eq!(new.backend.calls(), 1);
    assert_eq!(ttls(&new.ask(q("example.org.")).await), [10], "refreshed");
}

#[tokio::test(start_paused = true)]
async fn twenty_thousand_entries_hand_over_quickly() {
    let old = Rig::new("cache {\n success 20000\n}", Backend::echo());
    for i in 0..20_000 {
        old.ask(q(&format!("host-{i}.example.org."))).await;
    }
    let n = old.cache.success_len();
    assert!(n > 19_000, "{n}");
    let t = std::time::Instant::now();
    let state = old.cache.export_state(EXPORTED_AT);
    let exported = t.elapsed();
    let new = Rig::new("cache {\n success 20000\n}", Backend::echo());
    let t = std::time::Instant::now();
    let done = new.cache.import_state(&state, EXPORTED_AT);
    let imported = t.elapsed();
    eprintln!(
        "{n} entries, {} bytes: export {exported:?}, import {imported:?}",
        state.len()
    );
    assert_eq!(done.success, n);
    assert_eq!(new.cache.success_len(), n);
    // Loose enough for an unoptimised build on a busy machine.
    assert!(exported + imported < Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn the_last_good_answer_comes_along_under_prefer_positive() {
    use ferrodns_plugin::proto::rr::rdata::NS;
    use ferrodns_plugin::proto::rr::{RData, Record};
    let corefile = "cache 5 {\n serve_stale\n serve_stale_policy prefer_positive\n}";
    let b = backend();
    let old = Rig::new(corefile, b.clone());
    old.ask(q("example.org.")).await;
    advance(6).await;
    // The refresh of the stale answer brings a referral: stored, with the answer kept as the
    // last good one.
    let ns = Record::from_rdata(
        Name::from_ascii("example.org.").unwrap(),
        300,
        RData::NS(NS(Name::from_ascii("ns.example.net.").unwrap())),
    );
    b.set(
        "example.org.",
        Script::rcode(ResponseCode::NoError, vec![ns]),
    );
    assert_eq!(old.ask(q("example.org.")).await.answers.len(), 1);
    settle().await;
    assert_eq!(old.backend.calls(), 2);
    let state = old.cache.export_state(EXPORTED_AT);

    let (new, _) = imported(corefile, &state, 0);
    let m = new.ask(q("example.org.")).await;
    assert_eq!(m.answers.len(), 1, "the last good answer, not the referral");
    assert_eq!(ttls(&m), [0], "served stale");
    // Without the policy the last good answer is not taken: the referral answers.
    let (plain, _) = imported("cache 5 {\n serve_stale\n}", &state, 0);
    let m = plain.ask(q("example.org.")).await;
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
}

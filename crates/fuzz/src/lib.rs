//! Fuzz targets: one function per surface an attacker or a bad upstream can feed. Each takes
//! arbitrary bytes and must neither panic nor break the invariant it checks; a broken one
//! panics, which libFuzzer reports as a crash.
//!
//! The functions live here, in a stable-Rust workspace crate, so that two callers share them:
//! `fuzz/` (cargo-fuzz and libFuzzer, on nightly) explores, and `tests/replay.rs` replays the
//! committed corpus `fuzz/corpus/<target>/` on every `cargo test`, as CI does.
//!
//! Chains that can panic inside the server run with `debug` in their Corefile, which turns
//! CoreDNS's panic recovery off: a plugin panic ends the process instead of becoming SERVFAIL,
//! so the fuzzer sees it.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{
    Descriptor, FastAnswer, Metrics, Next, Plugin, PluginError, Protocol, Reply, Request, Setup,
    SetupError, WireQuery, async_trait,
};
use ferrodns_server::dispatch::Dispatcher;

/// A fuzz target: bytes in, a panic for a finding.
pub type Target = fn(&[u8]);

/// Every target by the name of its corpus folder and of its cargo-fuzz binary.
pub const TARGETS: &[(&str, Target)] = &[
    ("corefile", corefile),
    ("wire", wire),
    ("cache", cache),
    ("forward_reply", forward_reply),
    ("zonefile", zonefile),
    ("template", template),
    ("rewrite", rewrite),
];

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the fuzz targets");
    /// What the `fuzzupstream` plugin answers with, per input of the `cache` target.
    static UPSTREAM: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn block_on<F: Future>(f: F) -> F::Output {
    RUNTIME.with(|rt| rt.block_on(f))
}

/// Inputs that would make the parser read files of this machine (`import` of an absolute or
/// parent path, a glob over the file system): not a parser finding, and slow.
fn reads_files(data: &[u8]) -> bool {
    data.windows(6).any(|w| w.eq_ignore_ascii_case(b"import"))
        && data.iter().any(|&b| b == b'/' || b == b'*' || b == b'.')
}

// ---------------------------------------------------------------------------------------------
// The Corefile

/// The lexer, then the parser (snippets, environment substitution, keys) with the registry of
/// the ferrodns binary. Errors are fine; a panic or a hang is not.
pub fn corefile(data: &[u8]) {
    if reads_files(data) {
        return;
    }
    let _ = ferrodns_corefile::tokenize("Corefile", data);
    let registry = registry();
    let is_directive = |n: &str| registry.contains(n);
    let env = |k: &str| (k == "FUZZ").then(|| "example.org {\n".to_string());
    let opts = ferrodns_corefile::ParseOptions {
        is_directive: &is_directive,
        env: &env,
    };
    if let Ok(blocks) = ferrodns_corefile::parse("/nonexistent/Corefile", data, &opts) {
        // What the server does next with the keys.
        for b in &blocks {
            let _ = ferrodns_corefile::inspect_keys(b, "53");
        }
    }
}

fn registry() -> &'static ferrodns_plugin::Registry {
    static R: OnceLock<ferrodns_plugin::Registry> = OnceLock::new();
    R.get_or_init(|| {
        let mut r = ferrodns::registry();
        r.add(FUZZ_UPSTREAM);
        r
    })
}

// ---------------------------------------------------------------------------------------------
// The server's wire intake

const SERVE_COREFILE: &str = r#".:53 {
    debug
    any
    rewrite name exact rw.example.org. example.org.
    cache 30
    template IN A example.org {
        answer "{{ .Name }} 60 IN A 10.0.0.1"
        additional "{{ .Name }} 60 IN TXT \"{{ .Type }} {{ .Class }}\""
    }
    hosts {
        10.0.0.2 host.example.net
        fd00::2 host.example.net
        fallthrough
    }
    loadbalance
    whoami
}
"#;

const CACHE_COREFILE: &str = r#".:53 {
    debug
    cache 30 {
        prefetch 2 10m 10%
        serve_stale 1h
    }
    fuzzupstream
}
"#;

fn dispatcher(corefile: &'static str) -> Arc<Dispatcher> {
    let source = ferrodns_server::Source {
        filename: "Corefile".into(),
        text: corefile.as_bytes().to_vec(),
        default_port: "53".into(),
    };
    let instance = block_on(async {
        ferrodns_server::load(source, registry(), &Metrics::new(), None)
            .unwrap_or_else(|e| panic!("the fuzz Corefile loads: {}", e.0))
    });
    instance.listeners[0].dispatcher.clone()
}

fn serving() -> &'static Arc<Dispatcher> {
    static D: OnceLock<Arc<Dispatcher>> = OnceLock::new();
    D.get_or_init(|| dispatcher(SERVE_COREFILE))
}

fn caching() -> &'static Arc<Dispatcher> {
    static D: OnceLock<Arc<Dispatcher>> = OnceLock::new();
    D.get_or_init(|| dispatcher(CACHE_COREFILE))
}

const CLIENT: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3)),
    5353,
);
const LOCAL: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    53,
);

/// Check a reply to `query` sent over `protocol`: it carries the query's ID, and over UDP it
/// fits the size the client can take.
fn check_reply(query: &[u8], reply: &[u8], protocol: Protocol) {
    assert!(reply.len() >= 12, "a reply shorter than a header");
    assert_eq!(reply[..2], query[..2], "a reply with another ID");
    assert!(reply[2] & 0x80 != 0, "a reply without QR");
    if protocol == Protocol::Udp {
        let limit =
            ferrodns_server::wire::request_opt_size(query).map_or(512, |s| usize::from(s).max(512));
        assert!(
            reply.len() <= limit,
            "a UDP reply of {} bytes for a client taking {limit}",
            reply.len()
        );
    } else {
        assert!(reply.len() <= usize::from(u16::MAX));
    }
}

/// One datagram through what the UDP front does with it (fast path, then the chain), twice so
/// that the second may come from the cache, and once as a TCP message. Returns the replies
/// (UDP, UDP, TCP; `None` for no reply), each checked.
fn serve_once(d: &Arc<Dispatcher>, packet: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut replies = Vec::with_capacity(3);
    match ferrodns_plugin::wire::WireHeader::read(packet) {
        Some(h) if !h.is_response() => {}
        _ => return replies,
    }
    let mut name = String::new();
    for _ in 0..2 {
        if let Some(q) = WireQuery::parse(packet) {
            let mut out = Vec::new();
            if d.fast(&q, CLIENT, &mut name, &mut out) == FastAnswer::Answered {
                check_reply(packet, &out, Protocol::Udp);
                replies.push(Some(out));
                continue;
            }
        }
        let raw = Bytes::copy_from_slice(packet);
        let reply = block_on(d.handle(raw, CLIENT, LOCAL, Protocol::Udp));
        if let Some(r) = &reply {
            check_reply(packet, r, Protocol::Udp);
        }
        replies.push(reply);
    }
    let raw = Bytes::copy_from_slice(packet);
    let reply = block_on(d.handle(raw, CLIENT, LOCAL, Protocol::Tcp));
    if let Some(r) = &reply {
        check_reply(packet, r, Protocol::Tcp);
    }
    replies.push(reply);
    replies
}

/// A datagram from a client, as the UDP front and the TCP reader hand it to the server.
pub fn wire(data: &[u8]) {
    serve_wire(data);
}

/// What [`wire`] does, with the three replies (UDP twice, TCP) for tests of the target itself.
pub fn serve_wire(data: &[u8]) -> Vec<Option<Vec<u8>>> {
    serve_once(serving(), data)
}

/// What [`cache`] does, with the replies, for tests of the target itself.
pub fn serve_cache(data: &[u8]) -> Vec<Option<Vec<u8>>> {
    let Some((&flags, reply)) = data.split_first() else {
        return Vec::new();
    };
    let query = cache_query(flags, reply);
    UPSTREAM.with(|u| *u.borrow_mut() = reply.to_vec());
    serve_once(caching(), &query)
}

// ---------------------------------------------------------------------------------------------
// The cache with arbitrary upstream replies

/// The last plugin of the `cache` target's chain: answers with the bytes the target set, its
/// ID patched to the request's, and only when forward would hand them back: a well-formed
/// response to the request's question (forward makes anything else an error or FORMERR).
struct FuzzUpstream;

const FUZZ_UPSTREAM: Descriptor = Descriptor::new("fuzzupstream", |c: &mut Setup<'_>| {
    c.next();
    c.add_plugin(Arc::new(FuzzUpstream));
    Ok::<(), SetupError>(())
});

#[async_trait]
impl Plugin for FuzzUpstream {
    fn name(&self) -> &'static str {
        "fuzzupstream"
    }
    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        use ferrodns_plugin_forward::msg;
        let mut wire = UPSTREAM.with(|u| u.borrow().clone());
        let as_forward_passes = msg::question_of(&req.wire())
            .is_some_and(|q| msg::inspect(&wire).is_ok_and(|info| msg::matches(&info, &q)));
        if !as_forward_passes {
            return Ok(Reply::Rcode(ResponseCode::ServFail));
        }
        wire[..2].copy_from_slice(&req.id().to_be_bytes());
        Ok(Reply::Wire(Bytes::from(wire)))
    }
}

/// The first byte chooses the query's flags (EDNS, its size, DO, CD); the rest is the upstream's
/// reply. The query asks the reply's own question when it has one, so that the cache stores it
/// and the next query reads it back.
pub fn cache(data: &[u8]) {
    serve_cache(data);
}

fn cache_query(flags: u8, reply: &[u8]) -> Vec<u8> {
    let question = ferrodns_plugin_forward::msg::question_of(reply).unwrap_or_else(|| {
        ferrodns_plugin_forward::msg::Question {
            name: b"\x07example\x03org\x00".to_vec(),
            qtype: 1,
            qclass: 1,
        }
    });
    let mut query = vec![0x12, 0x34, 0x01, if flags & 1 != 0 { 0x10 } else { 0 }];
    query.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(flags & 2 != 0)]);
    query.extend_from_slice(&question.name);
    query.extend_from_slice(&question.qtype.to_be_bytes());
    query.extend_from_slice(&question.qclass.to_be_bytes());
    if flags & 2 != 0 {
        let size: u16 = if flags & 4 != 0 { 4096 } else { 1232 };
        query.extend_from_slice(&[0, 0, 41]);
        query.extend_from_slice(&size.to_be_bytes());
        query.extend_from_slice(&[0, 0, if flags & 8 != 0 { 0x80 } else { 0 }, 0, 0, 0]);
    }
    query
}

// ---------------------------------------------------------------------------------------------
// forward's reply matching

/// forward's structural walk of an upstream reply, its question match and the TC reply it
/// makes of an overflowing answer.
pub fn forward_reply(data: &[u8]) {
    use ferrodns_plugin_forward::msg;
    let question = msg::question_of(data);
    let info = match msg::inspect(data) {
        Ok(info) => Some(info),
        Err((_, info)) => info,
    };
    if let (Some(info), Some(q)) = (info.as_ref(), question.as_ref()) {
        let _ = msg::matches(info, q);
        if info.qdcount == 1
            && let Some(found) = &info.question
        {
            assert_eq!(found, q, "two readings of one question");
        }
    }
    let tc = msg::truncated_reply(data, info.as_ref());
    assert!(tc.len() >= 12 && tc[2] & 0x02 != 0, "a TC reply without TC");
    if info.as_ref().is_some_and(|i| i.question.is_some()) {
        assert!(
            msg::question_of(&tc).is_some(),
            "a TC reply whose question cannot be read back"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The zone-file reader

/// The file plugin's master-file reader, with origin `example.org.`.
pub fn zonefile(data: &[u8]) {
    if reads_files(data) {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Name::from_ascii("example.org.").expect("a valid origin");
    let _ = ferrodns_plugin_file::master::Reader::read(text, &origin, "db.example.org");
}

// ---------------------------------------------------------------------------------------------
// The template and rewrite engines

/// Split the input into the directive's arguments and block (before the first 0xff) and the
/// query's name and type (after it).
fn directive_and_query(data: &[u8]) -> Option<(&str, Message)> {
    if reads_files(data) {
        return None;
    }
    let cut = data.iter().position(|&b| b == 0xff).unwrap_or(data.len());
    let directive = std::str::from_utf8(&data[..cut]).ok()?;
    let rest = data.get(cut + 1..).unwrap_or_default();
    let (qtype, name) = match rest.split_first() {
        Some((&t, n)) => (
            [
                RecordType::A,
                RecordType::AAAA,
                RecordType::TXT,
                RecordType::SRV,
                RecordType::PTR,
                RecordType::MX,
                RecordType::CNAME,
                RecordType::ANY,
            ][usize::from(t % 8)],
            String::from_utf8_lossy(n).into_owned(),
        ),
        None => (RecordType::A, "www.example.org.".to_string()),
    };
    let name = Name::from_ascii(&name).unwrap_or_else(|_| Name::root());
    let mut msg = Message::new(4242, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(name, qtype));
    Some((directive, msg))
}

/// Set `descriptor` up from the input's text and serve its query through it, with whoami
/// answering what it passes on.
fn run_directive(descriptor: &Descriptor, data: &[u8]) {
    let Some((text, msg)) = directive_and_query(data) else {
        return;
    };
    let directives = format!("{} {text}", descriptor.name);
    let Ok(settings) = ferrodns_plugin_test::setup(descriptor, &directives) else {
        return;
    };
    let mut chain = settings.plugins;
    chain.push(Arc::new(ferrodns_plugin_whoami::Whoami));
    let mut req = ferrodns_plugin_test::from_message(msg, Protocol::Udp);
    if let Ok(mut reply) = block_on(Next::new("", chain).serve(&mut req))
        && let Some(m) = reply.decoded()
    {
        let _ = m.to_vec();
    }
}

/// The template plugin: arbitrary arguments, regexps and templates.
pub fn template(data: &[u8]) {
    run_directive(&ferrodns_plugin_template::DESCRIPTOR, data);
}

/// The rewrite plugin: arbitrary rules, regexps and replacement templates.
pub fn rewrite(data: &[u8]) {
    run_directive(&ferrodns_plugin_rewrite::DESCRIPTOR, data);
}

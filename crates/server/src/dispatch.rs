//! Per-listener dispatch: CoreDNS's `Server.ServeDNS` rules. Pick the server block by longest
//! matching zone (DS by its parent), apply the class and EDNS-version rules, run the block's
//! chain with panic recovery, and turn what the chain returned into the bytes to send.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Once};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};

use async_trait::async_trait;
use ferrodns_pkg::vars::{DROPPED, DnsMetrics, Report, rcode_label};
use ferrodns_plugin::{
    Chain, FastAnswer, FastSeen, Lookup, PluginError, Protocol, Reply, Request, WireQuery,
};

use crate::wire::{self, Intake};

/// One zone of one server block on this listener.
pub struct Site {
    /// The zone, lowercased and fully qualified.
    pub zone: Arc<str>,
    /// The block's chain (shared by every zone of the block).
    pub chain: Chain,
    /// The chain position of the plugin whose fast hook may answer UDP queries of this site:
    /// the first plugin that is neither fast-transparent nor an observer, when it has a hook.
    fast: Option<usize>,
    /// The observers ahead of that hook, by chain position.
    observers: Vec<usize>,
    /// The block's `bufsize` cap, applied to the query before the fast hook sees it.
    udp_cap: Option<u16>,
}

impl Site {
    /// A site serving `zone` with `chain`.
    pub fn new(zone: &str, chain: Chain) -> Self {
        let plugins = chain.plugins();
        let first = plugins
            .iter()
            .position(|p| !p.fast_transparent() && p.fast_observer().is_none());
        let fast = first.filter(|&i| plugins[i].fast_hook().is_some());
        let observers = match fast {
            Some(f) => (0..f)
                .filter(|&i| plugins[i].fast_observer().is_some())
                .collect(),
            None => Vec::new(),
        };
        Site {
            zone: zone.into(),
            chain,
            fast,
            observers,
            udp_cap: None,
        }
    }

    /// The same site, its UDP fast path seeing queries whose advertised EDNS size is capped at
    /// `cap` (the block's `bufsize`), as its async chain sees them.
    pub fn with_udp_cap(mut self, cap: Option<u16>) -> Self {
        self.udp_cap = cap;
        self
    }
}

/// The largest query the fast path copies to apply a `bufsize` cap; larger ones go the async
/// way.
const CAP_COPY_MAX: usize = 512;

/// Queries one front (a UDP socket, or a TCP listener over all its connections) has in the
/// chain at once, so that a slow chain cannot grow memory; past it, UDP queries wait in the
/// socket's backlog and TCP connections wait to be read.
pub const MAX_IN_FLIGHT: usize = 1024;

/// The zones served on one listener and how to serve them.
pub struct Dispatcher {
    label: Arc<str>,
    /// Keyed by the configured zones; lookups hash every suffix of each query name.
    zones: foldhash::HashMap<String, Vec<Arc<Site>>>,
    class_chaos: bool,
    debug: bool,
    stacktrace: bool,
    metrics: DnsMetrics,
    limits: crate::tcp::Limits,
}

impl Dispatcher {
    /// A dispatcher for the listener labelled `label` (`dns://:53`).
    pub fn new(
        label: &str,
        sites: Vec<Arc<Site>>,
        debug: bool,
        stacktrace: bool,
        metrics: DnsMetrics,
    ) -> Self {
        let class_chaos = sites.iter().any(|s| {
            s.chain
                .plugins()
                .iter()
                .any(|p| matches!(p.name(), "chaos" | "forward" | "proxy"))
        });
        let mut zones: foldhash::HashMap<String, Vec<Arc<Site>>> = Default::default();
        for s in sites {
            zones.entry(s.zone.to_string()).or_default().push(s);
        }
        Dispatcher {
            label: label.into(),
            zones,
            class_chaos,
            debug,
            stacktrace,
            metrics,
            limits: crate::tcp::Limits::default(),
        }
    }

    /// The same dispatcher with these connection timeouts and limits for its listener.
    pub fn with_limits(mut self, limits: crate::tcp::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The connection timeouts and limits of this listener (read by connection-oriented
    /// fronts when they accept a connection).
    pub fn limits(&self) -> crate::tcp::Limits {
        self.limits
    }

    /// The listener's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The zones served here, sorted (for the startup banner).
    pub fn zone_names(&self) -> Vec<String> {
        let mut z: Vec<String> = self.zones.keys().cloned().collect();
        z.sort();
        z
    }

    /// Serve one datagram or TCP message; `None` means send nothing.
    pub async fn handle(
        self: &Arc<Self>,
        raw: Bytes,
        src: SocketAddr,
        local: SocketAddr,
        protocol: Protocol,
    ) -> Option<Vec<u8>> {
        let msg = match wire::intake(&raw) {
            Intake::Drop => return None,
            Intake::Reject(bytes) => return Some(bytes),
            Intake::Accept(m) => m,
        };
        let opt_size = wire::request_opt_size(&raw);
        let seen = Seen {
            protocol,
            ipv6: src.ip().to_canonical().is_ipv6(),
            request_size: raw.len(),
            start: Instant::now(),
        };
        let size = match protocol {
            Protocol::Tcp => usize::from(u16::MAX),
            Protocol::Udp => msg
                .edns
                .as_ref()
                .map(|e| usize::from(e.max_payload()))
                .unwrap_or(512)
                .max(512),
        };
        let Some(q) = msg.queries.first() else {
            return self.dropped(&msg, ResponseCode::ServFail, size, opt_size, &seen);
        };
        if !self.class_chaos && q.query_class() != DNSClass::IN {
            return self.dropped(&msg, ResponseCode::Refused, size, opt_size, &seen);
        }
        if msg.edns.as_ref().is_some_and(|e| e.version() != 0) {
            return Some(wire::badvers(&msg));
        }
        let Some(site) = self.select(&ferrodns_pkg::text::name_lower(q.name()), q.query_type())
        else {
            return self.dropped(&msg, ResponseCode::Refused, size, opt_size, &seen);
        };
        if site.chain.is_empty() {
            return self.dropped(&msg, ResponseCode::Refused, size, opt_size, &seen);
        }
        let mut req = Request::new(
            *msg,
            raw,
            src,
            local,
            protocol,
            self.label.clone(),
            site.zone.clone(),
        );
        req.set_upstream(self.clone(), 0);
        let outcome = CatchPanic {
            inner: Box::pin(site.chain.serve(&mut req)),
        }
        .await;
        if self.debug
            && let Err(panic) = &outcome
        {
            // `debug`: no recovery. As an unrecovered Go panic, the process ends with the
            // panic and its stack on standard error and exit status 2.
            eprintln!(
                "panic: {}\n\n{}",
                panic.message,
                panic.backtrace.as_deref().unwrap_or("")
            );
            std::process::exit(2);
        }
        // The reply is built against the request as received (its ID, question and OPT).
        let msg = req.received();
        // A plugin (bufsize) may have changed the request's UDP size. CoreDNS's reply writer
        // holds the very message the chain changed, so the reply is cut to, and its OPT
        // echoes, the size as the chain left it.
        let (size, opt_size) = match (msg.edns.as_ref(), req.message().edns.as_ref()) {
            (Some(before), Some(after))
                if req.is_modified() && before.max_payload() != after.max_payload() =>
            {
                let now = after.max_payload();
                let size = match protocol {
                    Protocol::Tcp => size,
                    Protocol::Udp => usize::from(now).max(512),
                };
                (size, Some(now))
            }
            _ => (size, opt_size),
        };
        let reply = match outcome {
            Ok(r) => r,
            Err(panic) => {
                match (self.stacktrace, panic.backtrace) {
                    (true, Some(bt)) => tracing::error!(
                        target: "server",
                        "Recovered from panic in server: {:?} {}\n{}",
                        &*self.label,
                        panic.message,
                        bt
                    ),
                    _ => tracing::error!(
                        target: "server",
                        "Recovered from panic in server: {:?} {}",
                        &*self.label,
                        panic.message
                    ),
                }
                self.metrics.panics.inc();
                return self.dropped(msg, ResponseCode::ServFail, size, opt_size, &seen);
            }
        };
        match reply {
            Ok(Reply::Message(mut m)) => self.finish(msg, &mut m, size, opt_size),
            Ok(Reply::Wire(bytes)) => match wire::finish_wire(msg, opt_size, &bytes, size) {
                Some(out) => Some(out),
                None => match Message::from_vec(&bytes) {
                    Ok(mut m) => self.finish(msg, &mut m, size, opt_size),
                    Err(_) => self.error_reply(msg, ResponseCode::ServFail, size, opt_size),
                },
            },
            Err(PluginError {
                reply: Some(mut m), ..
            }) => self.finish(msg, &mut m, size, opt_size),
            Ok(Reply::Rcode(rc)) | Err(PluginError { rcode: rc, .. }) => {
                if client_write(rc) {
                    None
                } else {
                    self.error_reply(msg, rc, size, opt_size)
                }
            }
            Ok(Reply::Drop) => None,
        }
    }

    /// Longest matching zone; DS goes to the shortest matching non-root zone (the parent side);
    /// the root is tried last. `qname` is lowercased and fully qualified.
    fn select(&self, qname: &str, qtype: RecordType) -> Option<Arc<Site>> {
        self.select_ref(qname, qtype == RecordType::DS).cloned()
    }

    fn select_ref(&self, qname: &str, ds: bool) -> Option<&Arc<Site>> {
        let mut name = qname;
        let mut ds_site = None;
        loop {
            if name != "."
                && let Some(site) = self.zones.get(name).and_then(|v| v.first())
            {
                if site.chain.is_empty() || !ds {
                    return Some(site);
                }
                ds_site = Some(site);
            }
            match name.find('.') {
                Some(i) if i + 1 < name.len() => name = &name[i + 1..],
                _ => break,
            }
        }
        if ds_site.is_some() {
            return ds_site;
        }
        self.zones
            .get(".")
            .and_then(|v| v.iter().find(|s| !s.chain.is_empty()))
    }

    /// Try the synchronous fast path for a UDP query read in place: only a plain IN query
    /// (not DS) with EDNS version 0 or none, whose site's first non-transparent plugin has a
    /// fast hook. `name` is scratch space for the lowercased name; `out` receives the reply.
    pub fn fast(
        &self,
        q: &WireQuery<'_>,
        src: SocketAddr,
        name: &mut String,
        out: &mut Vec<u8>,
    ) -> FastAnswer {
        if q.header.opcode() != 0
            || q.qclass != u16::from(DNSClass::IN)
            || q.qtype == u16::from(RecordType::DS)
            || q.opt.is_some_and(|o| o.version != 0)
            || !lower_name(q.qname, name)
        {
            return FastAnswer::Pass;
        }
        let Some(site) = self.select_ref(name, false) else {
            return FastAnswer::Pass;
        };
        let Some(hook) = site
            .fast
            .and_then(|i| site.chain.plugins().get(i))
            .and_then(|p| p.fast_hook())
        else {
            return FastAnswer::Pass;
        };
        out.clear();
        // `bufsize`: the hook and the observers see the query with the capped size, as the
        // async chain past bufsize does (the OPT's size field patched in a copy).
        let mut copy: [u8; CAP_COPY_MAX];
        let q = match (site.udp_cap, q.opt) {
            (Some(cap), Some(opt)) if opt.udp_size > cap => {
                let len = q.packet.len();
                let at = q.question_end + 3;
                if len > CAP_COPY_MAX || at + 2 > len {
                    return FastAnswer::Pass;
                }
                copy = [0u8; CAP_COPY_MAX];
                copy[..len].copy_from_slice(q.packet);
                copy[at..at + 2].copy_from_slice(&cap.to_be_bytes());
                let packet = &copy[..len];
                WireQuery {
                    packet,
                    qname: &packet[ferrodns_plugin::wire::HEADER_LEN
                        ..ferrodns_plugin::wire::HEADER_LEN + q.qname.len()],
                    opt: Some(ferrodns_plugin::wire::WireOpt {
                        udp_size: cap,
                        ..opt
                    }),
                    server: &self.label,
                    ..*q
                }
            }
            _ => WireQuery {
                server: &self.label,
                ..*q
            },
        };
        // The clock is read only for blocks that have someone to tell.
        let start = (!site.observers.is_empty()).then(Instant::now);
        let answer = hook.answer(&q, out);
        if answer == FastAnswer::Answered
            && let Some(start) = start
        {
            let plugins = site.chain.plugins();
            let elapsed = start.elapsed();
            for &i in &site.observers {
                let (Some(p), Some(next)) = (plugins.get(i), plugins.get(i + 1)) else {
                    continue;
                };
                if let Some(o) = p.fast_observer() {
                    let seen = FastSeen {
                        name,
                        client_v6: src.ip().to_canonical().is_ipv6(),
                        next: next.name(),
                        elapsed,
                    };
                    o.observe(&q, out, &seen);
                }
            }
        }
        answer
    }

    /// An error reply the server writes on its own, counted in the metrics under the zone
    /// `dropped` as CoreDNS's `errorAndMetricsFunc` does.
    fn dropped(
        &self,
        req: &Message,
        rcode: ResponseCode,
        size: usize,
        opt_size: Option<u16>,
        seen: &Seen,
    ) -> Option<Vec<u8>> {
        let mut m = wire::rcode_reply(req, rcode);
        wire::echo_opt(req, &mut m);
        self.metrics.report(&Report {
            server: &self.label,
            zone: DROPPED,
            view: "",
            proto: seen.protocol,
            ipv6: seen.ipv6,
            qtype: req.queries.first().map_or(0, |q| u16::from(q.query_type())),
            dnssec_ok: req.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
            rcode: rcode_label(u16::from(rcode)),
            plugin: "",
            response_size: ferrodns_plugin::wire::uncompressed_len(&m).unwrap_or(0),
            request_size: seen.request_size,
            duration: seen.start.elapsed(),
        });
        self.error_reply(req, rcode, size, opt_size)
    }

    fn error_reply(
        &self,
        req: &Message,
        rcode: ResponseCode,
        size: usize,
        opt_size: Option<u16>,
    ) -> Option<Vec<u8>> {
        let mut m = wire::rcode_reply(req, rcode);
        wire::echo_opt(req, &mut m);
        let mut out = wire::encode_within(&m, size)?;
        if let Some(s) = opt_size {
            wire::set_opt_size(&mut out, s);
        }
        Some(out)
    }

    fn finish(
        &self,
        req: &Message,
        m: &mut Message,
        size: usize,
        opt_size: Option<u16>,
    ) -> Option<Vec<u8>> {
        m.metadata.id = req.metadata.id;
        wire::echo_opt(req, m);
        match wire::encode_within(m, size) {
            Some(mut b) => {
                if let Some(s) = opt_size {
                    wire::set_opt_size(&mut b, s);
                }
                Some(b)
            }
            None => {
                tracing::error!(target: "server", "could not encode reply for {}", req.metadata.id);
                self.error_reply(req, ResponseCode::ServFail, size, opt_size)
            }
        }
    }
}

/// What the dispatcher notes of a request for its metrics.
struct Seen {
    protocol: Protocol,
    ipv6: bool,
    request_size: usize,
    start: Instant,
}

/// Lookups through the server: a new query for the name, with the client's EDNS size and DO
/// bit, served by the block of its zone as if the client had sent it (CoreDNS's
/// `upstream.Lookup`). The reply is whatever that chain answers, or an rcode-only reply.
#[async_trait]
impl Lookup for Dispatcher {
    async fn lookup(
        &self,
        from: &Request,
        name: Name,
        qtype: RecordType,
    ) -> Result<Message, PluginError> {
        let mut m = Message::new(from.id(), MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(name.clone(), qtype));
        if let Some(e) = from.message().edns.as_ref() {
            let mut edns = Edns::new();
            edns.set_max_payload(e.max_payload());
            edns.set_dnssec_ok(e.flags().dnssec_ok);
            m.set_edns(edns);
        }
        let lower = ferrodns_pkg::text::name_lower(&name);
        let Some(site) = self.select(&lower, qtype) else {
            return Ok(wire::rcode_reply(&m, ResponseCode::Refused));
        };
        let raw = Bytes::from(m.to_vec().unwrap_or_default());
        let mut req = Request::new(
            m.clone(),
            raw,
            from.src,
            from.local,
            from.protocol,
            self.label.clone(),
            site.zone.clone(),
        );
        if let Some(up) = from.upstream() {
            req.set_upstream(up, from.depth() + 1);
        }
        let reply = site.chain.serve(&mut req).await;
        match reply {
            Ok(Reply::Message(r)) => Ok(*r),
            Ok(Reply::Wire(b)) => Message::from_vec(&b)
                .map_err(|e| PluginError::servfail(format!("lookup of {name}: {e}"))),
            Ok(Reply::Rcode(rc)) | Err(PluginError { rcode: rc, .. }) if !client_write(rc) => {
                Ok(wire::rcode_reply(&m, rc))
            }
            Ok(_) | Err(_) => Err(PluginError::servfail(format!("lookup of {name}: no reply"))),
        }
    }
}

/// Write the wire name `wire` (no compression) lowercased and dotted into `out`. False for names
/// with bytes that presentation format would escape (those take the slow path).
fn lower_name(wire: &[u8], out: &mut String) -> bool {
    out.clear();
    let mut i = 0;
    while let Some(&len) = wire.get(i) {
        if len == 0 {
            break;
        }
        let Some(label) = wire.get(i + 1..i + 1 + usize::from(len)) else {
            return false;
        };
        for &b in label {
            if !(0x21..=0x7e).contains(&b)
                || matches!(b, b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'\'')
            {
                return false;
            }
            out.push(char::from(b.to_ascii_lowercase()));
        }
        out.push('.');
        i += 1 + usize::from(len);
    }
    if out.is_empty() {
        out.push('.');
    }
    true
}

pub use ferrodns_plugin::wire::client_write;

/// A recovered panic.
pub struct Panicked {
    /// The panic's message.
    pub message: String,
    /// Where it happened, when captured.
    pub backtrace: Option<String>,
}

thread_local! {
    static IN_CHAIN: RefCell<bool> = const { RefCell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Install (once) a panic hook that stays quiet for panics inside a plugin chain, keeping a
/// backtrace for the `stacktrace` option, and defers to the previous hook elsewhere.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_CHAIN.with(|f| *f.borrow()) {
                let bt = std::backtrace::Backtrace::force_capture().to_string();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(bt));
            } else {
                previous(info);
            }
        }));
    });
}

/// Polls a future with unwinding caught, marking the thread as "inside a chain" meanwhile.
struct CatchPanic<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        install_hook();
        let inner = self.get_mut().inner.as_mut();
        IN_CHAIN.with(|f| *f.borrow_mut() = true);
        let res = std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx)));
        IN_CHAIN.with(|f| *f.borrow_mut() = false);
        match res {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => {
                let message = if let Some(s) = payload.downcast_ref::<&str>() {
                    (*s).to_string()
                } else if let Some(s) = payload.downcast_ref::<String>() {
                    s.clone()
                } else {
                    "panic".to_string()
                };
                let backtrace = LAST_PANIC.with(|p| p.borrow_mut().take());
                Poll::Ready(Err(Panicked { message, backtrace }))
            }
        }
    }
}

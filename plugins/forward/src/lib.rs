//! # forward
//!
//! CoreDNS's *forward* plugin: proxy queries for names under FROM to upstream resolvers, with
//! health checking, connection reuse, policies, failover and `max_concurrent`.
//!
//! ```text
//! forward FROM TO... {
//!     except IGNORED_NAMES...
//!     force_tcp
//!     prefer_udp
//!     expire DURATION
//!     max_age DURATION
//!     max_idle_conns INTEGER
//!     read_timeout DURATION
//!     max_fails INTEGER
//!     max_connect_attempts INTEGER
//!     doh_method GET|POST
//!     tls CERT KEY CA
//!     tls_servername NAME
//!     policy random|round_robin|sequential
//!     health_check DURATION [no_rec] [domain FQDN]
//!     max_concurrent MAX
//!     next RCODE_1 [RCODE_2] [RCODE_3...]
//!     next_on_nodata
//!     failfast_all_unhealthy_upstreams
//!     failover RCODE_1 [RCODE_2] [RCODE_3...]
//!     source_address IP
//!     resolver IP[:PORT]...
//! }
//! ```
//!
//! The client's query bytes go upstream unchanged except for a fresh random ID; the reply's
//! bytes come back unchanged except for the client's ID (the server then echoes the client's
//! OPT record and truncates to its size).

mod addr;
pub mod config;
pub mod doh;
pub mod metrics;
pub mod msg;
mod resolve;
mod setup;
pub mod tls;
pub mod upstream;

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ferrodns_pkg::names::is_subdomain;
use ferrodns_plugin::proto::op::{Message, MessageType, ResponseCode};
use ferrodns_plugin::{
    Descriptor, Lifecycle, Next, Plugin, PluginError, Protocol, Reply, Request, SetupError,
    async_trait,
};
use rand::seq::SliceRandom;

pub use config::{Config, Policy, ProtoChoice, Scheme};
pub use doh::DohMethod;
use metrics::ForwardMetrics;
pub use tls::TlsFiles;
use upstream::{ExchangeError, Proto, Settings, Upstream};

/// The directive name.
pub const NAME: &str = "forward";

/// The tracing target of this plugin's log lines.
pub const TARGET: &str = "plugin/forward";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor =
    Descriptor::new(NAME, setup::setup).with_metrics(register_metrics);

/// CoreDNS registers this plugin's families when the process starts, so its unlabelled ones
/// show at 0 even when no block uses it.
fn register_metrics(m: &ferrodns_plugin::Metrics) {
    metrics::ForwardMetrics::register(m);
}

/// How long one query may keep trying upstreams (CoreDNS's `defaultTimeout`).
pub const QUERY_DEADLINE: Duration = Duration::from_secs(5);

/// Connection cleanup tick (CoreDNS's default expire).
const CLEANUP_TICK: Duration = Duration::from_secs(10);

/// One `forward` stanza at work.
pub struct Forward {
    cfg: Config,
    proto: ProtoChoice,
    upstreams: Vec<Arc<Upstream>>,
    robin: AtomicU32,
    concurrent: AtomicI64,
    metrics: ForwardMetrics,
    taps: Vec<Arc<ferrodns_plugin_dnstap::Tap>>,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("from", &self.cfg.from)
            .field("upstreams", &self.upstreams)
            .finish_non_exhaustive()
    }
}

impl Forward {
    /// A forwarder for a parsed stanza. Fails for transports not implemented here.
    pub fn new(cfg: Config, metrics: ForwardMetrics) -> Result<Self, String> {
        let mut tls_config = None;
        let tls_files = cfg.tls.as_ref().unwrap_or(&TlsFiles::SystemRoots);
        for u in &cfg.upstreams {
            match u.scheme {
                Scheme::Dns => {}
                Scheme::Tls => {
                    if tls_config.is_none() {
                        tls_config = Some(tls::build_config(tls_files)?);
                    }
                }
                Scheme::Https => {
                    if tls_config.is_none() {
                        tls_config = Some(tls::build_config(tls_files)?);
                    }
                }
            }
        }
        let proto = cfg.proto_choice();
        let settings = Arc::new(Settings {
            expire: cfg.expire,
            max_age: cfg.max_age,
            max_idle_conns: cfg.max_idle_conns,
            read_timeout: cfg.read_timeout,
            source: cfg.source_address,
            hc_recursion_desired: cfg.hc_recursion_desired,
            hc_domain: cfg.hc_domain.clone(),
            hc_tcp: proto == ProtoChoice::ForceTcp,
            hc_interval: cfg.hc_interval,
        });
        let mut upstreams = Vec::with_capacity(cfg.upstreams.len());
        for u in &cfg.upstreams {
            let client = match &tls_config {
                Some(config) if u.scheme != Scheme::Dns => {
                    let name = u.server_name.as_deref().or(cfg.tls_servername.as_deref());
                    Some(tls::TlsClient {
                        config: config.clone(),
                        server_name: tls::server_name(name, u.socket.map(|s| s.ip()))?,
                    })
                }
                _ => None,
            };
            let (tls, doh) = match (u.scheme, client, u.socket) {
                (Scheme::Tls, client, _) => (client, None),
                (Scheme::Https, Some(client), Some(target)) => (
                    None,
                    Some(doh::Doh::new(
                        target,
                        u.addr.clone(),
                        cfg.doh_method,
                        client,
                        cfg.source_address,
                        cfg.expire,
                    )),
                ),
                (Scheme::Https, _, _) => {
                    return Err(format!(
                        "invalid DNS-over-HTTPS address: https://{}",
                        u.addr
                    ));
                }
                _ => (None, None),
            };
            upstreams.push(Arc::new(Upstream::new(
                u.addr.clone(),
                u.socket,
                settings.clone(),
                tls,
                doh,
                Arc::new(metrics.clone()),
            )));
        }
        Ok(Forward {
            cfg,
            proto,
            upstreams,
            robin: AtomicU32::new(0),
            concurrent: AtomicI64::new(0),
            metrics,
            taps: Vec::new(),
        })
    }

    /// Send FORWARDER_QUERY and FORWARDER_RESPONSE messages through these taps (the block's
    /// `dnstap` lines).
    pub fn set_taps(&mut self, taps: Vec<Arc<ferrodns_plugin_dnstap::Tap>>) {
        self.taps = taps;
    }

    /// The stanza's settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The upstreams in configured order.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// The upstreams in the order the policy gives for one query.
    pub fn list(&self) -> Vec<Arc<Upstream>> {
        let mut l = self.upstreams.clone();
        match self.cfg.policy {
            Policy::Sequential => {}
            Policy::Random => match l.len() {
                0 | 1 => {}
                2 => {
                    if rand::random::<bool>() {
                        l.swap(0, 1);
                    }
                }
                _ => l.shuffle(&mut rand::rng()),
            },
            Policy::RoundRobin => {
                if !l.is_empty() {
                    let n = l.len() as u32;
                    let i =
                        (self.robin.fetch_add(1, Ordering::Relaxed).wrapping_add(1) % n) as usize;
                    let first = l.remove(i);
                    l.insert(0, first);
                }
            }
        }
        l
    }

    /// Whether the query name is for this forwarder: at or below FROM and not below an
    /// `except` name (FROM itself always matches).
    fn matches(&self, req: &Request) -> bool {
        // `forward .` without `except` (node-local-dns's and kubeadm's blocks) takes every name:
        // the question name is printed only when there is a zone to compare it with.
        if self.cfg.from == "." && self.cfg.ignored.is_empty() {
            return true;
        }
        let name = req.name_lower();
        if !is_subdomain(&self.cfg.from, &name) {
            return false;
        }
        if name == self.cfg.from {
            return true;
        }
        !self.cfg.ignored.iter().any(|i| is_subdomain(i, &name))
    }

    /// Stop health checking and give up the pooled connections; queries already routed here
    /// are still answered (see [`Upstream::stop`]).
    pub fn stop(&self) {
        for u in &self.upstreams {
            u.stop();
        }
    }

    /// One exchange with an upstream including CoreDNS's retries of a closed cached connection
    /// and, with `prefer_udp`, of a truncated reply over TCP. The reply is already inspected.
    #[allow(clippy::too_many_arguments)]
    async fn connect(
        &self,
        up: &Upstream,
        query: &[u8],
        question: &msg::Question,
        client: Protocol,
        size: usize,
        deadline: Instant,
        choice: &mut ProtoChoice,
    ) -> Result<(Bytes, msg::ReplyInfo), String> {
        let mut closed_retries = 0;
        loop {
            let proto = if up.stream_only() {
                Proto::Tcp
            } else {
                match *choice {
                    ProtoChoice::ForceTcp => Proto::Tcp,
                    ProtoChoice::PreferUdp => Proto::Udp,
                    ProtoChoice::Client => match client {
                        Protocol::Udp => Proto::Udp,
                        Protocol::Tcp => Proto::Tcp,
                    },
                }
            };
            let bufsize = if proto == Proto::Udp && client == Protocol::Tcp {
                65535
            } else {
                size.max(512)
            };
            let start = Instant::now();
            let reply = match up.exchange(query, proto, bufsize, deadline, start).await {
                Ok(r) => r,
                Err(ExchangeError::CachedClosed) if closed_retries < 8 => {
                    closed_retries += 1;
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            };
            let (reply, info) = match msg::inspect(&reply) {
                Ok(info) => (reply, info),
                Err((msg::Malformed::Overflow, partial)) if proto == Proto::Udp => {
                    let tc = msg::truncated_reply(&reply, partial.as_ref());
                    let info = msg::inspect(&tc).map_err(|_| "dns: overflow".to_string())?;
                    (Bytes::from(tc), info)
                }
                Err((msg::Malformed::Overflow, _)) => {
                    return Err("dns: overflow unpacking uint16".into());
                }
                Err((msg::Malformed::Bad, _)) => return Err("dns: bad rdata".into()),
            };
            up.observe(info.rcode, start.elapsed().as_secs_f64());
            let _ = question;
            if info.truncated && *choice == ProtoChoice::PreferUdp {
                *choice = ProtoChoice::ForceTcp;
                continue;
            }
            return Ok((reply, info));
        }
    }
}

impl Forward {
    /// CoreDNS's `toDnstap`: a FORWARDER_QUERY for the exchange with `up`, and a
    /// FORWARDER_RESPONSE when a reply came. The query side is the client's address, the
    /// response side the upstream's; the protocol is the one the exchange was asked to use.
    fn to_dnstap(
        &self,
        req: &Request,
        up: &Upstream,
        choice: ProtoChoice,
        query: &[u8],
        reply: Option<&Bytes>,
        start: std::time::SystemTime,
    ) {
        use ferrodns_plugin_dnstap::{self as dnstap, proto::MessageType};
        let proto = match choice {
            ProtoChoice::ForceTcp => Protocol::Tcp,
            ProtoChoice::PreferUdp => Protocol::Udp,
            ProtoChoice::Client => req.protocol,
        };
        let upstream = up
            .addr
            .parse::<std::net::SocketAddr>()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let reply = reply.map(|r| {
            let mut v = r.to_vec();
            if v.len() >= 2 {
                v[..2].copy_from_slice(&req.id().to_be_bytes());
            }
            v
        });
        for tap in &self.taps {
            let mut q = dnstap::message(MessageType::ForwarderQuery);
            dnstap::set_query_time(&mut q, start);
            dnstap::set_query_address(&mut q, req.src, req.protocol);
            dnstap::set_response_address(&mut q, upstream, proto);
            if tap.full() {
                q.query_message = Some(query.to_vec());
            }
            tap.tap(q, req);
            if let Some(reply) = &reply {
                let mut r = dnstap::message(MessageType::ForwarderResponse);
                if tap.full() {
                    r.response_message = Some(reply.clone());
                }
                dnstap::set_query_time(&mut r, start);
                dnstap::set_query_address(&mut r, req.src, req.protocol);
                dnstap::set_response_address(&mut r, upstream, proto);
                dnstap::set_response_time(&mut r, std::time::SystemTime::now());
                tap.tap(r, req);
            }
        }
    }
}

/// CoreDNS's `SetRcode(req, FORMERR)`: a reply to the request with only its question.
fn formerr(req: &Request) -> Message {
    let m = req.message();
    let mut r = Message::new(m.metadata.id, MessageType::Response, m.metadata.op_code);
    r.metadata.recursion_desired = m.metadata.recursion_desired;
    r.metadata.checking_disabled = m.metadata.checking_disabled;
    r.metadata.response_code = ResponseCode::FormErr;
    r.queries = m.queries.clone();
    r
}

#[async_trait]
impl Plugin for Forward {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        if !self.matches(req) {
            return next.serve(req).await;
        }
        let (max, ref max_text) = self.cfg.max_concurrent;
        let _slot = if max > 0 {
            let guard = Slot::take(&self.concurrent);
            if guard.count > max {
                self.metrics.rejected();
                return Err(PluginError::with_rcode(
                    ResponseCode::Refused,
                    format!("concurrent queries exceeded maximum {max_text}"),
                ));
            }
            Some(guard)
        } else {
            None
        };

        let query: Vec<u8> = req.wire().into_owned();
        let Some(question) = msg::question_of(&query) else {
            return Ok(Reply::message(formerr(req)));
        };
        let client_id = req.id();
        let client = req.protocol;
        let size = usize::from(req.size());

        let list = self.list();
        let n = self.upstreams.len();
        let deadline = Instant::now() + QUERY_DEADLINE;
        let max_attempts = match self.cfg.max_connect_attempts {
            Some(m) => u64::from(m),
            None => 2 * list.len() as u64,
        };
        let mut attempts = 0u64;
        let mut fails = 0usize;
        let mut failovers = 0usize;
        let mut i = 0usize;
        let mut last_err: Option<String> = None;
        // The wall clock is read only for dnstap, which records it.
        let tap_start = (!self.taps.is_empty()).then(std::time::SystemTime::now);

        // The first attempt goes by the clock read that set the deadline.
        let mut first = true;
        while (std::mem::take(&mut first) || Instant::now() < deadline)
            && (max_attempts == 0 || attempts < max_attempts)
        {
            if i >= list.len() {
                i = 0;
                fails = 0;
            }
            let mut up = list[i].clone();
            i += 1;
            if up.down(self.cfg.max_fails) {
                fails += 1;
                if fails < n {
                    continue;
                }
                self.metrics.broken();
                if self.cfg.failfast {
                    break;
                }
                let pick = rand::random_range(0..n);
                up = self.upstreams[pick].clone();
            }
            // Recorded only with metadata on (no copy otherwise), as CoreDNS.
            req.set_metadata("forward/upstream", up.addr.as_str());

            let mut choice = self.proto;
            let outcome = self
                .connect(&up, &query, &question, client, size, deadline, &mut choice)
                .await;
            if let Some(start) = tap_start {
                let reply = outcome.as_ref().ok().map(|(r, _)| r);
                self.to_dnstap(req, &up, choice, &query, reply, start);
            }
            let (reply, info) = match outcome {
                Ok(r) => {
                    last_err = None;
                    r
                }
                Err(e) => {
                    last_err = Some(e);
                    if self.cfg.max_fails != 0 {
                        up.healthcheck();
                    }
                    if max_attempts > 0 {
                        attempts += 1;
                        if attempts >= max_attempts {
                            break;
                        }
                    }
                    if fails < n {
                        continue;
                    }
                    break;
                }
            };

            if !msg::matches(&info, &question) {
                return Ok(Reply::message(formerr(req)));
            }

            if self.cfg.failover_rcodes.contains(&info.rcode) {
                failovers += 1;
                if failovers < n {
                    continue;
                }
            }

            if next.peek() == Some(NAME) {
                if self.cfg.next_rcodes.contains(&info.rcode) {
                    return next.serve(req).await;
                }
                if self.cfg.next_on_nodata && info.rcode == 0 && info.answers == 0 {
                    return next.serve(req).await;
                }
            }

            let out = match reply.try_into_mut() {
                Ok(mut m) => {
                    m[0..2].copy_from_slice(&client_id.to_be_bytes());
                    m.freeze()
                }
                Err(shared) => {
                    let mut m = BytesMut::from(&shared[..]);
                    m[0..2].copy_from_slice(&client_id.to_be_bytes());
                    m.freeze()
                }
            };
            return Ok(Reply::Wire(out));
        }

        Err(PluginError::servfail(
            last_err.unwrap_or_else(|| "no healthy proxies".to_string()),
        ))
    }
}

/// A counted in-flight query for `max_concurrent`.
struct Slot<'a> {
    counter: &'a AtomicI64,
    count: i64,
}

impl<'a> Slot<'a> {
    fn take(counter: &'a AtomicI64) -> Self {
        let count = counter.fetch_add(1, Ordering::AcqRel) + 1;
        Slot { counter, count }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Startup and shutdown of one forwarder: the connection cleanup tick, and closing everything.
struct Hooks {
    forward: Arc<Forward>,
    cleanup: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[async_trait]
impl Lifecycle for Hooks {
    async fn on_startup(&self) -> Result<(), SetupError> {
        let ups: Vec<std::sync::Weak<Upstream>> =
            self.forward.upstreams.iter().map(Arc::downgrade).collect();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(CLEANUP_TICK);
            tick.tick().await;
            loop {
                tick.tick().await;
                let mut alive = false;
                for u in &ups {
                    if let Some(u) = u.upgrade() {
                        alive = true;
                        u.cleanup();
                    }
                }
                if !alive {
                    return;
                }
            }
        });
        if let Ok(mut c) = self.cleanup.lock() {
            *c = Some(task);
        }
        Ok(())
    }

    async fn on_shutdown(&self) {
        if let Ok(mut c) = self.cleanup.lock()
            && let Some(t) = c.take()
        {
            t.abort();
        }
        self.forward.stop();
    }
}

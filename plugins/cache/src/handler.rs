//! The request path (lookup, hit, miss, stale, prefetch) and the write path (classify, clamp the
//! TTLs, store) of the cache.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ferrodns_plugin::proto::op::{Message, MessageType, ResponseCode};
use ferrodns_plugin::proto::serialize::binary::BinEncodable;
use ferrodns_plugin::{FastHook, Next, Plugin, PluginError, Protocol, Reply, Request, async_trait};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::Cache;
use crate::classify::{self, Type};
use crate::entry::{self, ClientBits, Entry, Freq, Kind, PackedWire};
use crate::flight::{self, FlightKey, Role};
use crate::metrics::CacheMetrics;

/// What the write path needs to know about the request a reply is for.
#[derive(Clone)]
pub(crate) struct Ctx {
    /// The question name in wire form, case as sent.
    pub qname: Vec<u8>,
    pub qtype: u16,
    pub qclass: u16,
    pub do_bit: bool,
    pub ad: bool,
    pub key: u64,
    pub metrics: Arc<CacheMetrics>,
}

/// The outcome of a verifying write: whether the entry was refreshed, the reply for the client
/// and the entry stored.
type Verified = (bool, Option<Message>, Option<Arc<Entry>>);

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Wall-clock milliseconds, for the hand-off (0 before 1970, which only makes entries older).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The request as sent on: a copy with AD set (CoreDNS asks upstreams for AD).
fn upstream_request(req: &Request) -> Request {
    let mut up = req.clone();
    if !up.message().metadata.authentic_data {
        up.message_mut().metadata.authentic_data = true;
    }
    up
}

/// The `zone/wildcard` label the rest of the chain set on `up` (CoreDNS's cache stores it
/// with the item).
fn wildcard_label(up: &Request) -> Option<Box<str>> {
    up.metadata("zone/wildcard")
        .filter(|w| !w.is_empty())
        .map(|w| w.into())
}

/// The reply as a message, if the chain gave one.
fn decoded(out: &mut Result<Reply, PluginError>) -> Option<Message> {
    match out {
        Ok(r @ (Reply::Message(_) | Reply::Wire(_))) => r.decoded().cloned(),
        _ => None,
    }
}

/// A background refresh of `entry` that is under way; ends it as failed if the task stops
/// before it finished (a panic further down the chain, a runtime shutting down).
struct Refresh {
    entry: Arc<Entry>,
    recheck: Duration,
    done: bool,
}

impl Refresh {
    fn end(mut self, refreshed: bool) {
        self.done = true;
        self.entry
            .end_refresh(Instant::now(), self.recheck, refreshed);
    }
}

impl Drop for Refresh {
    fn drop(&mut self) {
        if !self.done {
            self.entry.end_refresh(Instant::now(), self.recheck, false);
        }
    }
}

impl Cache {
    /// CoreDNS's `request.Match`: one question, QR set, same name (any case), type and class.
    fn reply_matches(ctx: &Ctx, m: &Message) -> bool {
        if m.queries.len() != 1 || m.metadata.message_type != MessageType::Response {
            return false;
        }
        let q = &m.queries[0];
        u16::from(q.query_type()) == ctx.qtype
            && u16::from(q.query_class()) == ctx.qclass
            && q.name()
                .to_bytes()
                .is_ok_and(|n| n.eq_ignore_ascii_case(&ctx.qname))
    }

    /// The caching writer: classify, set every TTL to the cache duration, store when allowed,
    /// and return the reply for the client (AD cleared unless the client set DO or AD).
    pub(crate) fn write(
        &self,
        ctx: &Ctx,
        mut msg: Message,
        prefetch: bool,
        wildcard: Option<Box<str>>,
    ) -> (Message, Option<Arc<Entry>>) {
        let mt = classify::cache_type(&msg, unix_now());
        let has_key = classify::cacheable(&msg, mt);
        let dur = classify::duration(&self.cfg, &msg, mt);
        let ttl = dur.as_secs().min(u64::from(u32::MAX)) as u32;
        for r in msg
            .answers
            .iter_mut()
            .chain(msg.authorities.iter_mut())
            .chain(msg.additionals.iter_mut())
        {
            r.ttl = ttl;
        }
        // The upstream's OPT is not passed on: the server gives the reply the client's.
        msg.edns = None;
        let mut item = None;
        if has_key && !dur.is_zero() {
            if Self::reply_matches(ctx, &msg) {
                item = self.set(ctx, &msg, mt, ttl, prefetch, wildcard);
                ctx.metrics.entries_success.set(self.pcache.len() as i64);
                ctx.metrics.entries_denial.set(self.ncache.len() as i64);
            } else {
                ctx.metrics.drops.inc();
            }
        }
        if !ctx.do_bit && !ctx.ad {
            msg.metadata.authentic_data = false;
        }
        (msg, item)
    }

    fn set(
        &self,
        ctx: &Ctx,
        msg: &Message,
        mt: Type,
        ttl: u32,
        prefetch: bool,
        wildcard: Option<Box<str>>,
    ) -> Option<Arc<Entry>> {
        let kind = match mt {
            Type::NoError | Type::Delegation => Kind::Success,
            Type::NameError | Type::NoData | Type::ServerError => Kind::Denial,
            _ => return None,
        };
        let except = match kind {
            Kind::Success => &self.pexcept,
            Kind::Denial => &self.nexcept,
        };
        if entry::in_zones(&ctx.qname, except) {
            return None;
        }
        let (wire, offsets, qname_len) = entry::encode(msg)?;
        let answering = classify::answers_question(msg);
        let now = Instant::now();
        let mut last_known_good = None;
        if kind == Kind::Success
            && self.cfg.prefer_positive
            && !answering
            && let Some(prev) = self.pcache.get(ctx.key)
        {
            last_known_good = prev.answering_entry(&ctx.qname, ctx.qtype, ctx.qclass);
        }
        let e = Arc::new(Entry {
            wire: PackedWire::new(&wire, &offsets),
            qname_len,
            qtype: ctx.qtype,
            qclass: ctx.qclass,
            rcode: msg.metadata.response_code.low(),
            ad: msg.metadata.authentic_data,
            ra: msg.metadata.recursion_available,
            orig_ttl: ttl,
            stored: now,
            answering,
            last_known_good,
            wildcard,
            freq: Freq::new(now, now, 0),
            refreshing: Default::default(),
            retry_after_ms: Default::default(),
        });
        match kind {
            Kind::Success => {
                if self.pcache.add(ctx.key, e.clone()) {
                    ctx.metrics.evictions_success.inc();
                }
                if (!self.cfg.prefer_positive && prefetch)
                    || (self.cfg.prefer_positive && answering)
                {
                    self.ncache.remove(ctx.key);
                }
            }
            Kind::Denial => {
                if self.ncache.add(ctx.key, e.clone()) {
                    ctx.metrics.evictions_denial.inc();
                }
            }
        }
        Some(e)
    }

    /// The writer of stale refreshes: only a matching, untruncated NOERROR/NXDOMAIN (or, with
    /// `prefer_positive`, an answering NOERROR) refreshes the entry and is passed on.
    pub(crate) fn verify_write(
        &self,
        ctx: &Ctx,
        msg: Message,
        prefetch: bool,
        wildcard: Option<Box<str>>,
    ) -> Verified {
        if msg.metadata.truncation || !Self::reply_matches(ctx, &msg) {
            return (false, None, None);
        }
        if self.cfg.prefer_positive {
            let usable = classify::cache_type(&msg, unix_now()) == Type::NoError
                && classify::answers_question(&msg);
            if usable {
                let (m, item) = self.write(ctx, msg, prefetch, wildcard);
                return (true, Some(m), item);
            }
            self.write(ctx, msg, true, wildcard);
            return (false, None, None);
        }
        let t = classify::cache_type(&msg, unix_now());
        if matches!(t, Type::OtherError | Type::Meta | Type::Update) {
            return (false, None, None);
        }
        let rc = msg.metadata.response_code;
        if rc != ResponseCode::NoError && rc != ResponseCode::NXDomain {
            return (false, None, None);
        }
        let (m, item) = self.write(ctx, msg, prefetch, wildcard);
        (true, Some(m), item)
    }

    /// A hit's reply in wire form.
    fn hit_reply(&self, req: &Request, ctx: &Ctx, e: &Entry, ttl: u32) -> Reply {
        let bits = ClientBits {
            id: req.id(),
            flags: entry::message_flags(req.message()),
            do_bit: ctx.do_bit,
            qname: &ctx.qname,
        };
        let mut out = Vec::with_capacity(e.wire.msg().len());
        e.write_reply(&mut out, &bits, ttl);
        Reply::Wire(Bytes::from(out))
    }

    /// Ask the rest of the chain and write the reply through the cache.
    async fn fetch(&self, req: &mut Request, next: Next, ctx: &Ctx) -> Result<Reply, PluginError> {
        let mut up = upstream_request(req);
        let mut out = next.serve(&mut up).await;
        // Labels set after the cache reach the plugins before it, as through CoreDNS's context.
        if up.metadata_enabled() {
            req.copy_metadata_from(&up);
        }
        match decoded(&mut out) {
            Some(m) => Ok(Reply::message(
                self.write(ctx, m, false, wildcard_label(&up)).0,
            )),
            None => out,
        }
    }

    /// A miss: one request per key goes on, identical ones wait for it.
    async fn miss(&self, req: &mut Request, next: Next, ctx: &Ctx) -> Result<Reply, PluginError> {
        let fk = FlightKey {
            key: ctx.key,
            ad: ctx.ad,
            name: ctx.qname.to_ascii_lowercase().into_boxed_slice(),
        };
        match self.flights.join(fk) {
            Role::Leader(leader) => {
                let out = self.fetch(req, next, ctx).await;
                leader.publish(Arc::new(out.clone()));
                out
            }
            Role::Alone => self.fetch(req, next, ctx).await,
            Role::Follower(rx) => match flight::wait(rx).await {
                Some(outcome) => {
                    let mut out = (*outcome).clone();
                    if let Ok(Reply::Message(m)) = &mut out {
                        m.metadata.id = req.id();
                        m.metadata.recursion_desired = req.message().metadata.recursion_desired;
                        m.queries = req.message().queries.clone();
                    }
                    out
                }
                None => self.fetch(req, next, ctx).await,
            },
        }
    }

    async fn hit(
        &self,
        req: &mut Request,
        next: Next,
        ctx: &Ctx,
        e: Arc<Entry>,
        mut now: Instant,
    ) -> Result<Reply, PluginError> {
        let ttl = e.ttl(now);
        let stale = ttl <= 0;
        if stale {
            if self.cfg.verify_stale {
                let recheck = self.cfg.stale_recheck;
                let track = !recheck.is_zero();
                if !track || e.begin_refresh(now, recheck) {
                    if self.cfg.verify_stale_timeout.is_zero() {
                        let mut up = upstream_request(req);
                        let mut out = next.clone().serve(&mut up).await;
                        let wildcard = wildcard_label(&up);
                        let (refreshed, client, _) = match decoded(&mut out) {
                            Some(m) => self.verify_write(ctx, m, false, wildcard),
                            None => (false, None, None),
                        };
                        if track {
                            e.end_refresh(Instant::now(), recheck, refreshed);
                        }
                        if refreshed && let Some(m) = client {
                            if up.metadata_enabled() {
                                req.copy_metadata_from(&up);
                            }
                            return Ok(Reply::message(m));
                        }
                    } else if let Some(reply) =
                        self.verify_with_timeout(req, next.clone(), ctx, &e).await
                    {
                        return Ok(reply);
                    }
                }
            }
            // Counted from the moment the entry expired, as CoreDNS does.
            now = now
                .checked_sub(Duration::from_secs(ttl.unsigned_abs()))
                .unwrap_or(now);
            if !self.cfg.verify_stale {
                self.try_prefetch(req, next, ctx, &e, now, true);
            }
            ctx.metrics.served_stale.inc();
        } else if self.should_prefetch(&e, now) {
            self.try_prefetch(req, next, ctx, &e, now, false);
        }
        if let Some(w) = &e.wildcard {
            req.set_metadata("zone/wildcard", &**w);
        }
        Ok(self.hit_reply(req, ctx, &e, self.hit_ttl(&e, ttl)))
    }

    /// `serve_stale verify` with a timeout: refresh in the background, serve its result if it
    /// comes in time and refreshed the entry, else the stale entry.
    async fn verify_with_timeout(
        &self,
        req: &Request,
        next: Next,
        ctx: &Ctx,
        e: &Arc<Entry>,
    ) -> Option<Reply> {
        let me = self.me.upgrade()?;
        let (tx, rx) = oneshot::channel();
        let mut up = upstream_request(req);
        let ctx2 = ctx.clone();
        // Without a recheck interval the caller began no refresh: there is none to end.
        let recheck = self.cfg.stale_recheck;
        let refresh = (!recheck.is_zero()).then(|| Refresh {
            entry: e.clone(),
            recheck,
            done: false,
        });
        tokio::spawn(async move {
            let mut out = next.serve(&mut up).await;
            let wildcard = wildcard_label(&up);
            let verified = match decoded(&mut out) {
                Some(m) => me.verify_write(&ctx2, m, true, wildcard),
                None => (false, None, None),
            };
            if let Some(refresh) = refresh {
                refresh.end(verified.0);
            }
            let _ = tx.send(verified);
        });
        match tokio::time::timeout(self.cfg.verify_stale_timeout, rx).await {
            Ok(Ok((true, client, item))) => match (item, client) {
                (Some(item), _) => {
                    let now = Instant::now();
                    let ttl = if self.cfg.keepttl {
                        item.orig_ttl
                    } else {
                        item.ttl(now).max(0) as u32
                    };
                    Some(self.hit_reply(req, ctx, &item, ttl))
                }
                (None, Some(m)) => Some(Reply::message(m)),
                (None, None) => None,
            },
            _ => None,
        }
    }

    /// Refresh `e` in the background from the rest of the chain: a prefetch of a fresh entry,
    /// or (`stale`) the refresh of a stale one, its frequency counted from `now`.
    fn try_prefetch(
        &self,
        req: &Request,
        next: Next,
        ctx: &Ctx,
        e: &Arc<Entry>,
        now: Instant,
        stale: bool,
    ) {
        let recheck = if stale {
            self.cfg.stale_recheck
        } else {
            Duration::ZERO
        };
        let Some(me) = self.me.upgrade() else {
            return;
        };
        if !e.begin_refresh(Instant::now(), recheck) {
            return;
        }
        let refresh = Refresh {
            entry: e.clone(),
            recheck,
            done: false,
        };
        let mut up = upstream_request(req);
        // CoreDNS's prefetch writer reports a TCP client whatever the client used (so that the
        // reply is not truncated): a forwarder without force_tcp/prefer_udp then asks over TCP.
        up.protocol = Protocol::Tcp;
        let ctx = ctx.clone();
        tokio::spawn(async move {
            ctx.metrics.prefetch.inc();
            let mut out = next.serve(&mut up).await;
            let wildcard = wildcard_label(&up);
            let refreshed = match decoded(&mut out) {
                Some(m) if stale => me.verify_write(&ctx, m, true, wildcard).0,
                Some(m) => {
                    me.write(&ctx, m, true, wildcard);
                    true
                }
                None => !stale,
            };
            if refreshed && let Some(fresh) = me.exists(ctx.key) {
                fresh.set_freq(now, refresh.entry.hits());
            }
            refresh.end(refreshed);
        });
    }

    fn exists(&self, key: u64) -> Option<Arc<Entry>> {
        self.ncache.get(key).or_else(|| self.pcache.get(key))
    }
}

#[async_trait]
impl Plugin for Cache {
    fn name(&self) -> &'static str {
        crate::NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        let Some(q) = req.question() else {
            return next.serve(req).await;
        };
        let Ok(qname) = q.name().to_bytes() else {
            return next.serve(req).await;
        };
        if !entry::in_zones(&qname, &self.zones) {
            return next.serve(req).await;
        }
        let (qtype, qclass) = (u16::from(q.query_type()), u16::from(q.query_class()));
        let md = &req.message().metadata;
        let (cd, ad) = (md.checking_disabled, md.authentic_data);
        let do_bit = req.do_bit();
        let ctx = Ctx {
            key: entry::key(&qname, qtype, qclass, do_bit, cd),
            qname,
            qtype,
            qclass,
            do_bit,
            ad,
            metrics: self.metrics_for(&req.server),
        };
        let now = Instant::now();
        let hit = self.lookup(ctx.key, &ctx.qname, qtype, qclass, now);
        Self::count_lookup(&ctx.metrics, hit.as_ref().map(|h| h.1));
        match hit {
            None => self.miss(req, next, &ctx).await,
            Some((e, _)) => self.hit(req, next, &ctx, e, now).await,
        }
    }

    fn fast_hook(&self) -> Option<&dyn FastHook> {
        Some(self)
    }

    fn handoff_export(&self) -> Option<Vec<u8>> {
        Some(self.export_state(unix_ms()))
    }

    fn handoff_import(&self, state: &[u8]) {
        self.import_state(state, unix_ms());
    }
}

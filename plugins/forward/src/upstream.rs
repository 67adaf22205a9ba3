//! One upstream: its connection pools (UDP and TCP), the exchange of one query, and its health
//! state and prober.
//!
//! UDP: a few connected sockets, each with one reader task that hands replies to the waiting
//! query by message ID. TCP: persistent connections that a query writes its frame to itself
//! (a writer task takes what cannot be written at once, and every TLS frame), and a reader task
//! demultiplexing by ID; a new connection is opened while every open one has a query in flight,
//! and queries are pipelined only once the per-upstream connection cap is reached. Every
//! pending map is bounded (so is what waits for the writer task, one frame per waiting query);
//! past the bounds a query fails at once instead of piling up.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use ferrodns_pkg::udp::QuietUdpSocket;

use crate::doh::Doh;
use crate::metrics::{ConnProto, ForwardMetrics, UpstreamMetrics};
use crate::msg;
use crate::tls::TlsClient;

/// Sockets per upstream for UDP.
const MAX_UDP_SOCKETS: usize = 16;
/// Queries in flight on one UDP socket before another socket is opened.
const UDP_SPREAD: usize = 32;
/// Queries in flight on one UDP socket at most.
const UDP_DEPTH: usize = 512;
/// TCP connections per upstream.
const MAX_TCP_CONNS: usize = 32;
/// Queries pipelined on one TCP connection at most.
const TCP_DEPTH: usize = 32;
/// CoreDNS's write timeout.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Health probe read/write timeout.
const HC_TIMEOUT: Duration = Duration::from_secs(1);
const MIN_DIAL: Duration = Duration::from_secs(1);
const MAX_DIAL: Duration = Duration::from_secs(30);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The transport of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

/// Settings every upstream of a stanza shares.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Idle connections older than this are closed.
    pub expire: Duration,
    /// Connections older than this are not reused (0 = unlimited).
    pub max_age: Duration,
    /// Idle connections kept per protocol (0 = unlimited).
    pub max_idle_conns: usize,
    /// Per-exchange read timeout.
    pub read_timeout: Duration,
    /// Local address to send from.
    pub source: Option<IpAddr>,
    /// RD in health probes.
    pub hc_recursion_desired: bool,
    /// The health probe's name.
    pub hc_domain: String,
    /// Probe over TCP (`force_tcp`).
    pub hc_tcp: bool,
    /// Interval between failed probes.
    pub hc_interval: Duration,
}

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeError {
    /// A reused TCP connection was closed by the upstream before it answered: retry.
    CachedClosed,
    /// Anything else, with CoreDNS-like text.
    Failed(String),
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::CachedClosed => f.write_str("cached connection was closed by peer"),
            ExchangeError::Failed(s) => f.write_str(s),
        }
    }
}

/// What ends a connection.
#[derive(Debug, Clone)]
enum ConnError {
    Eof,
    Other(String),
}

type Waiter = oneshot::Sender<Result<Bytes, ConnError>>;
type Wait = oneshot::Receiver<Result<Bytes, ConnError>>;

#[derive(Default)]
struct Waiting {
    map: foldhash::HashMap<u16, Waiter>,
    dead: Option<ConnError>,
}

/// The queries waiting for their replies on one connection, by message ID, and why the
/// connection died once it has. How many wait and whether it died are mirrored in atomics:
/// choosing a connection looks at every one of them for each query, and takes no lock for it.
#[derive(Default)]
struct Pending {
    waiting: Mutex<Waiting>,
    len: AtomicUsize,
    dead: AtomicBool,
}

impl Pending {
    /// Fail every waiter and refuse new ones.
    fn kill(&self, e: ConnError) {
        let mut w = lock(&self.waiting);
        for (_, tx) in w.map.drain() {
            let _ = tx.send(Err(e.clone()));
        }
        if w.dead.is_none() {
            w.dead = Some(e);
        }
        self.dead.store(true, Ordering::Relaxed);
        self.len.store(0, Ordering::Relaxed);
    }

    /// Wait for the reply with a fresh random ID; fails when the connection is dead or `cap`
    /// queries already wait on it.
    fn register(&self, cap: usize) -> Result<(u16, Wait), Option<ConnError>> {
        let mut w = lock(&self.waiting);
        if let Some(e) = &w.dead {
            return Err(Some(e.clone()));
        }
        if w.map.len() >= cap {
            return Err(None);
        }
        let mut id: u16 = rand::random();
        let mut tries = 0;
        while w.map.contains_key(&id) {
            id = rand::random();
            tries += 1;
            if tries > 64 {
                return Err(None);
            }
        }
        let (tx, rx) = oneshot::channel();
        w.map.insert(id, tx);
        self.len.store(w.map.len(), Ordering::Relaxed);
        Ok((id, rx))
    }

    /// The waiter for `id`, no longer waiting.
    fn take(&self, id: u16) -> Option<Waiter> {
        let mut w = lock(&self.waiting);
        let tx = w.map.remove(&id);
        self.len.store(w.map.len(), Ordering::Relaxed);
        tx
    }
}

/// The sending side of a TCP (or TLS) connection. A query writes its own frame on a plain TCP
/// connection, with one non-blocking write and no hand-off to another task. What cannot go at
/// once (a full socket buffer, a partial write), and every frame of a TLS connection, goes to
/// the connection's writer task, and later frames queue behind it until it is written, so that
/// frames never interleave.
struct TcpOut {
    direct: Option<Arc<tokio::net::tcp::OwnedWriteHalf>>,
    queue: mpsc::UnboundedSender<Vec<u8>>,
    /// Frames handed to the writer task and not yet written.
    queued: Arc<AtomicUsize>,
    order: Mutex<()>,
}

impl TcpOut {
    /// The sending side of a plain TCP connection, and its writer task.
    fn plain(
        wr: tokio::net::tcp::OwnedWriteHalf,
        pending: &Arc<Pending>,
    ) -> (TcpOut, tokio::task::JoinHandle<()>) {
        let wr = Arc::new(wr);
        let (out, writer) = Self::queued(SharedWrite(wr.clone()), pending);
        (
            TcpOut {
                direct: Some(wr),
                ..out
            },
            writer,
        )
    }

    /// The sending side of a stream that only its writer task writes (TLS), and that task.
    fn queued(
        wr: impl AsyncWrite + Unpin + Send + 'static,
        pending: &Arc<Pending>,
    ) -> (TcpOut, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let writer = tokio::spawn(tcp_writer(wr, rx, queued.clone(), pending.clone()));
        let out = TcpOut {
            direct: None,
            queue: tx,
            queued,
            order: Mutex::new(()),
        };
        (out, writer)
    }

    /// Send one frame; an error means the connection is gone.
    fn send(&self, mut frame: Vec<u8>) -> Result<(), ConnError> {
        let _order = lock(&self.order);
        if let Some(w) = &self.direct
            && self.queued.load(Ordering::Acquire) == 0
        {
            match w.try_write(&frame) {
                Ok(n) if n == frame.len() => return Ok(()),
                Ok(n) => {
                    frame.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(write_error(&e)),
            }
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.queue.send(frame).map_err(|_| ConnError::Eof)
    }
}

fn write_error(e: &std::io::Error) -> ConnError {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => ConnError::Eof,
        _ => ConnError::Other(e.to_string()),
    }
}

enum Sender {
    Udp(Arc<QuietUdpSocket>),
    Tcp(TcpOut),
}

/// One pooled connection.
struct Conn {
    sender: Sender,
    pending: Arc<Pending>,
    created: Instant,
    /// When it was last given back, in nanoseconds after `created`.
    last_used: AtomicU64,
    local: SocketAddr,
    tasks: Vec<AbortHandle>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Conn {
    fn in_flight(&self) -> usize {
        self.pending.len.load(Ordering::Relaxed)
    }
    fn is_dead(&self) -> bool {
        self.pending.dead.load(Ordering::Relaxed)
    }
    fn idle_for(&self, now: Instant) -> Duration {
        let used = self.created + Duration::from_nanos(self.last_used.load(Ordering::Relaxed));
        now.saturating_duration_since(used)
    }
    fn touch(&self) {
        let nanos = u64::try_from(self.created.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_used.store(nanos, Ordering::Relaxed);
    }
}

/// Removes a waiter when the query is done or abandoned (a cancelled request must not leave
/// its ID behind).
struct Registration {
    pending: Arc<Pending>,
    id: u16,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.pending.take(self.id);
    }
}

#[derive(Default)]
struct TcpPool {
    conns: Vec<Arc<Conn>>,
    dialing: usize,
}

/// One upstream.
pub struct Upstream {
    /// `ip:port` as CoreDNS labels it.
    pub addr: String,
    socket: Option<SocketAddr>,
    settings: Arc<Settings>,
    fails: AtomicU32,
    probing: AtomicBool,
    stopped: AtomicBool,
    udp: Mutex<Vec<Arc<Conn>>>,
    tcp: Mutex<TcpPool>,
    avg_dial_nanos: AtomicI64,
    dialed: tokio::sync::Notify,
    tls: Option<TlsClient>,
    doh: Option<Doh>,
    metrics: UpstreamMetrics,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .field("fails", &self.fails)
            .finish_non_exhaustive()
    }
}

enum Pick {
    Reuse(Arc<Conn>),
    Open,
    /// Every connection is busy and more are being dialled: wait for one.
    Wait,
}

impl Upstream {
    /// An upstream at `addr` (`socket` is `None` when the address cannot be dialled).
    pub fn new(
        addr: String,
        socket: Option<SocketAddr>,
        settings: Arc<Settings>,
        tls: Option<TlsClient>,
        doh: Option<Doh>,
        metrics: Arc<ForwardMetrics>,
    ) -> Self {
        Upstream {
            socket,
            settings,
            fails: AtomicU32::new(0),
            probing: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            udp: Mutex::new(Vec::new()),
            tcp: Mutex::new(TcpPool::default()),
            avg_dial_nanos: AtomicI64::new((MAX_DIAL / 2).as_nanos() as i64),
            dialed: tokio::sync::Notify::new(),
            metrics: UpstreamMetrics::new(metrics, &addr),
            addr,
            tls,
            doh,
        }
    }

    /// Whether every exchange goes over a stream (DoT, DoH) whatever the client used.
    pub fn stream_only(&self) -> bool {
        self.tls.is_some() || self.doh.is_some()
    }

    /// Record a finished exchange whose reply had `rcode` in CoreDNS's request duration.
    pub fn observe(&self, rcode: u16, secs: f64) {
        self.metrics.observe(rcode, secs);
    }

    /// Consecutive failed health checks.
    pub fn fails(&self) -> u32 {
        self.fails.load(Ordering::Relaxed)
    }

    /// Down: more failed health checks than `max_fails` (never with `max_fails` 0).
    pub fn down(&self, max_fails: u32) -> bool {
        max_fails != 0 && self.fails() > max_fails
    }

    /// Number of open connections (UDP sockets, TCP connections), for tests.
    pub fn open_conns(&self) -> (usize, usize) {
        (lock(&self.udp).len(), lock(&self.tcp).conns.len())
    }

    /// Queries waiting for a reply on this upstream's connections (every pending map summed).
    pub fn in_flight(&self) -> usize {
        let udp: usize = lock(&self.udp).iter().map(|c| c.in_flight()).sum();
        let tcp: usize = lock(&self.tcp).conns.iter().map(|c| c.in_flight()).sum();
        udp + tcp
    }

    /// Stop probing and give up the pooled connections. Exchanges under way keep theirs, and a
    /// late exchange still goes through (a query routed to the old instance before a reload).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        if let Some(d) = &self.doh {
            d.clear();
        }
        lock(&self.udp).clear();
        lock(&self.tcp).conns.clear();
    }

    /// Close idle connections past `expire` or `max_age` (CoreDNS's 10s cleanup tick).
    pub fn cleanup(&self) {
        let now = Instant::now();
        let keep = |c: &Arc<Conn>| self.keep(c, now);
        lock(&self.udp).retain(keep);
        lock(&self.tcp).conns.retain(keep);
    }

    fn keep(&self, c: &Arc<Conn>, now: Instant) -> bool {
        if c.is_dead() {
            return false;
        }
        let busy = c.in_flight() > 0;
        if busy {
            return true;
        }
        if c.idle_for(now) > self.settings.expire {
            return false;
        }
        !self.too_old(c, now)
    }

    fn too_old(&self, c: &Conn, now: Instant) -> bool {
        !self.settings.max_age.is_zero()
            && now.saturating_duration_since(c.created) > self.settings.max_age
    }

    fn proto_label(p: Proto) -> &'static str {
        match p {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }

    /// The connection-cache label: `tcp-tls` for TLS upstreams.
    fn cache_label(&self, p: Proto) -> ConnProto {
        match p {
            _ if self.tls.is_some() => ConnProto::TcpTls,
            Proto::Udp => ConnProto::Udp,
            Proto::Tcp => ConnProto::Tcp,
        }
    }

    fn pick(&self, proto: Proto, now: Instant) -> Result<(Pick, bool), ExchangeError> {
        let (spread, depth, max_conns) = match proto {
            Proto::Udp => (UDP_SPREAD, UDP_DEPTH, MAX_UDP_SOCKETS),
            Proto::Tcp => (1, TCP_DEPTH, MAX_TCP_CONNS),
        };
        let choose = |conns: &mut Vec<Arc<Conn>>, extra: usize| {
            // One pass without locks; the rare connection to let go (dead, idle past `expire`,
            // older than `max_age`) is removed only when there is one.
            let mut best: Option<(usize, &Arc<Conn>)> = None;
            let mut stale = false;
            for c in conns.iter() {
                if !self.keep(c, now) {
                    stale = true;
                    continue;
                }
                if self.too_old(c, now) {
                    continue;
                }
                let n = c.in_flight();
                if best.is_none_or(|(b, _)| n < b) {
                    best = Some((n, c));
                }
            }
            let best = best.map(|(n, c)| (n, c.clone()));
            if stale {
                conns.retain(|c| self.keep(c, now));
            }
            let total = conns.len() + extra;
            match best {
                Some((n, c)) if n < spread => Ok(Pick::Reuse(c)),
                _ if total < max_conns => Ok(Pick::Open),
                Some((n, c)) if n < depth => Ok(Pick::Reuse(c)),
                _ if extra > 0 => Ok(Pick::Wait),
                _ => Err(ExchangeError::Failed(format!(
                    "too many queries in flight to {}",
                    self.addr
                ))),
            }
        };
        let pick = match proto {
            Proto::Udp => choose(&mut lock(&self.udp), 0)?,
            Proto::Tcp => {
                let mut pool = lock(&self.tcp);
                let dialing = pool.dialing;
                let p = choose(&mut pool.conns, dialing)?;
                if matches!(p, Pick::Open) {
                    pool.dialing += 1;
                }
                p
            }
        };
        let label = self.cache_label(proto);
        match pick {
            Pick::Reuse(_) => self.metrics.conn(true, label),
            Pick::Open => self.metrics.conn(false, label),
            Pick::Wait => {}
        }
        let hit = matches!(pick, Pick::Reuse(_));
        Ok((pick, hit))
    }

    fn target(&self, proto: Proto) -> Result<SocketAddr, ExchangeError> {
        self.socket.ok_or_else(|| {
            ExchangeError::Failed(format!(
                "dial {}: address {}: invalid port",
                Self::proto_label(proto),
                self.addr
            ))
        })
    }

    fn bind_addr(&self, target: SocketAddr) -> SocketAddr {
        match self.settings.source {
            Some(ip) => SocketAddr::new(ip, 0),
            None if target.is_ipv4() => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            None => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        }
    }

    fn open_udp(&self) -> Result<Arc<Conn>, ExchangeError> {
        let target = self.target(Proto::Udp)?;
        let std = std::net::UdpSocket::bind(self.bind_addr(target))
            .and_then(|s| {
                s.connect(target)?;
                Ok(s)
            })
            .map_err(|e| ExchangeError::Failed(format!("dial udp {target}: {e}")))?;
        // Read events only: each query sent would otherwise wake the worker once more.
        let sock = Arc::new(
            QuietUdpSocket::from_std(std)
                .map_err(|e| ExchangeError::Failed(format!("dial udp {target}: {e}")))?,
        );
        let local = sock.local_addr().unwrap_or(target);
        let pending: Arc<Pending> = Arc::default();
        let reader = tokio::spawn(udp_reader(sock.clone(), pending.clone()));
        let conn = Arc::new(Conn {
            sender: Sender::Udp(sock),
            pending,
            created: Instant::now(),
            last_used: AtomicU64::new(0),
            local,
            tasks: vec![reader.abort_handle()],
        });
        lock(&self.udp).push(conn.clone());
        Ok(conn)
    }

    fn dial_timeout(&self) -> Duration {
        let avg = Duration::from_nanos(self.avg_dial_nanos.load(Ordering::Relaxed).max(0) as u64);
        if avg < MIN_DIAL {
            MIN_DIAL
        } else if avg < MAX_DIAL / 2 {
            avg * 2
        } else {
            MAX_DIAL
        }
    }

    fn record_dial(&self, took: Duration) {
        let avg = self.avg_dial_nanos.load(Ordering::Relaxed);
        let delta = (took.as_nanos() as i64 - avg) / 4;
        self.avg_dial_nanos.fetch_add(delta, Ordering::Relaxed);
    }

    async fn open_tcp(&self, deadline: Instant) -> Result<Arc<Conn>, ExchangeError> {
        let result = self.dial_tcp(deadline).await;
        let conn = {
            let mut pool = lock(&self.tcp);
            pool.dialing = pool.dialing.saturating_sub(1);
            result.inspect(|c| pool.conns.push(c.clone()))
        };
        self.dialed.notify_waiters();
        conn
    }

    async fn dial_tcp(&self, deadline: Instant) -> Result<Arc<Conn>, ExchangeError> {
        let target = self.target(Proto::Tcp)?;
        let failed = |e: std::io::Error| {
            let text = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                _ => e.to_string(),
            };
            ExchangeError::Failed(format!("dial tcp {target}: connect: {text}"))
        };
        let sock = if target.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(failed)?;
        if self.settings.source.is_some() {
            sock.bind(self.bind_addr(target)).map_err(failed)?;
        }
        let start = Instant::now();
        let limit = self
            .dial_timeout()
            .min(deadline.saturating_duration_since(start));
        let stream = match tokio::time::timeout(limit, sock.connect(target)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.record_dial(start.elapsed());
                return Err(failed(e));
            }
            Err(_) => {
                self.record_dial(start.elapsed());
                return Err(ExchangeError::Failed(format!(
                    "dial tcp {target}: i/o timeout"
                )));
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(target);
        let pending: Arc<Pending> = Arc::default();
        let ((out, writer), reader) = match &self.tls {
            None => {
                self.record_dial(start.elapsed());
                let (rd, wr) = stream.into_split();
                (
                    TcpOut::plain(wr, &pending),
                    tokio::spawn(tcp_reader(rd, pending.clone())),
                )
            }
            Some(tls) => {
                let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
                let left = limit.saturating_sub(start.elapsed());
                let s = match tokio::time::timeout(
                    left,
                    connector.connect(tls.server_name.clone(), stream),
                )
                .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        self.record_dial(start.elapsed());
                        return Err(ExchangeError::Failed(format!("tls: {e}")));
                    }
                    Err(_) => {
                        self.record_dial(start.elapsed());
                        return Err(ExchangeError::Failed(format!(
                            "dial tcp {target}: i/o timeout"
                        )));
                    }
                };
                self.record_dial(start.elapsed());
                let (rd, wr) = tokio::io::split(s);
                (
                    TcpOut::queued(wr, &pending),
                    tokio::spawn(tcp_reader(rd, pending.clone())),
                )
            }
        };
        Ok(Arc::new(Conn {
            sender: Sender::Tcp(out),
            pending,
            created: Instant::now(),
            last_used: AtomicU64::new(0),
            local,
            tasks: vec![writer.abort_handle(), reader.abort_handle()],
        }))
    }

    /// Give a connection back: keep at most `max_idle_conns` idle ones.
    fn yield_conn(&self, conn: &Arc<Conn>, proto: Proto) {
        conn.touch();
        let max = self.settings.max_idle_conns;
        if max == 0 || conn.in_flight() > 0 {
            return;
        }
        let drop_it = |conns: &mut Vec<Arc<Conn>>| {
            let idle = conns.iter().filter(|c| c.in_flight() == 0).count();
            if idle > max {
                conns.retain(|c| !Arc::ptr_eq(c, conn));
            }
        };
        match proto {
            Proto::Udp => drop_it(&mut lock(&self.udp)),
            Proto::Tcp => drop_it(&mut lock(&self.tcp).conns),
        }
    }

    fn forget(&self, conn: &Arc<Conn>, proto: Proto) {
        match proto {
            Proto::Udp => lock(&self.udp).retain(|c| !Arc::ptr_eq(c, conn)),
            Proto::Tcp => lock(&self.tcp).conns.retain(|c| !Arc::ptr_eq(c, conn)),
        }
    }

    /// Send `query` (its ID is replaced by a fresh random one) and wait for the reply with that
    /// ID. UDP replies longer than `bufsize` are cut to it, as a read into a buffer of that size
    /// would. The reply keeps the upstream's (random) ID.
    pub async fn exchange(
        &self,
        query: &[u8],
        proto: Proto,
        bufsize: usize,
        deadline: Instant,
        start: Instant,
    ) -> Result<Bytes, ExchangeError> {
        // No check of `stopped` here: a query that entered the old chain just before a reload
        // reaches this upstream after the old instance's shutdown hook, and must still be
        // answered. Connections opened now close when the old instance is dropped.
        if query.len() < 12 {
            return Err(ExchangeError::Failed("dns: short buffer".into()));
        }
        // The DoH exchange and the TCP (or TLS) dial are boxed: inline, their state would
        // make every query's future several KiB, copied into place for each query.
        if let Some(d) = &self.doh {
            return Box::pin(d.exchange(query, crate::doh::QUERY_TIMEOUT))
                .await
                .map_err(ExchangeError::Failed);
        }
        let proto = if self.tls.is_some() {
            Proto::Tcp
        } else {
            proto
        };
        // `start` stands for the clock until the exchange waits (a dial, a full pool): the read
        // timeout runs from it, as from the write that follows within microseconds.
        let mut now = start;
        let (conn, cached) = loop {
            let dialed = self.dialed.notified();
            tokio::pin!(dialed);
            dialed.as_mut().enable();
            let (pick, cached) = self.pick(proto, now)?;
            match pick {
                Pick::Reuse(c) => break (c, cached),
                Pick::Open => match proto {
                    Proto::Udp => break (self.open_udp()?, cached),
                    Proto::Tcp => {
                        let c = Box::pin(self.open_tcp(deadline)).await?;
                        now = Instant::now();
                        break (c, cached);
                    }
                },
                Pick::Wait => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if tokio::time::timeout(left, dialed).await.is_err() {
                        return Err(ExchangeError::Failed(format!(
                            "dial tcp {}: i/o timeout",
                            self.addr
                        )));
                    }
                    now = Instant::now();
                }
            }
        };
        let cap = match proto {
            Proto::Udp => UDP_DEPTH,
            Proto::Tcp => TCP_DEPTH,
        };
        let (id, rx) = match conn.pending.register(cap) {
            Ok(r) => r,
            Err(Some(e)) => {
                self.forget(&conn, proto);
                return Err(self.conn_error(e, proto, &conn, cached));
            }
            Err(None) => {
                return Err(ExchangeError::Failed(format!(
                    "too many queries in flight to {}",
                    self.addr
                )));
            }
        };
        let reg = Registration {
            pending: conn.pending.clone(),
            id,
        };
        let net = Self::proto_label(proto);
        match &conn.sender {
            Sender::Udp(sock) => {
                let mut buf = query.to_vec();
                buf[0..2].copy_from_slice(&id.to_be_bytes());
                if let Err(e) = sock.get_ref().send(&buf) {
                    let e = match e.kind() {
                        std::io::ErrorKind::WouldBlock => {
                            match tokio::time::timeout(WRITE_TIMEOUT, sock.send(&buf)).await {
                                Ok(Ok(_)) => None,
                                Ok(Err(e)) => Some(e.to_string()),
                                Err(_) => Some("i/o timeout".into()),
                            }
                        }
                        _ => Some(e.to_string()),
                    };
                    if let Some(e) = e {
                        self.forget(&conn, proto);
                        return Err(ExchangeError::Failed(format!(
                            "write udp {}->{}: {e}",
                            conn.local,
                            self.peer()
                        )));
                    }
                }
            }
            Sender::Tcp(out) => {
                let Ok(len) = u16::try_from(query.len()) else {
                    return Err(ExchangeError::Failed("dns: message too large".into()));
                };
                let mut buf = Vec::with_capacity(query.len() + 2);
                buf.extend_from_slice(&len.to_be_bytes());
                buf.extend_from_slice(query);
                buf[2..4].copy_from_slice(&id.to_be_bytes());
                if let Err(e) = out.send(buf) {
                    // The frame may be half written: nothing else can use this connection.
                    conn.pending.kill(e.clone());
                    self.forget(&conn, proto);
                    return Err(match e {
                        ConnError::Eof if cached => ExchangeError::CachedClosed,
                        ConnError::Eof => ExchangeError::Failed("EOF".into()),
                        ConnError::Other(s) => ExchangeError::Failed(format!(
                            "write tcp {}->{}: {s}",
                            conn.local,
                            self.peer()
                        )),
                    });
                }
            }
        }
        let outcome = tokio::time::timeout_at((now + self.settings.read_timeout).into(), rx).await;
        drop(reg);
        match outcome {
            Ok(Ok(Ok(mut reply))) => {
                if proto == Proto::Udp && reply.len() > bufsize {
                    reply.truncate(bufsize.max(512));
                }
                self.yield_conn(&conn, proto);
                Ok(reply)
            }
            Ok(Ok(Err(e))) => {
                self.forget(&conn, proto);
                Err(self.conn_error(e, proto, &conn, cached))
            }
            Ok(Err(_)) => {
                self.forget(&conn, proto);
                Err(ExchangeError::Failed(format!(
                    "read {net} {}->{}: use of closed network connection",
                    conn.local,
                    self.peer()
                )))
            }
            Err(_) => {
                // A timed-out UDP socket stays usable (late replies are dropped by ID). A TCP
                // connection that sat on an unanswered query is retired, as CoreDNS closes it:
                // an upstream answering in order would make every later query wait behind it.
                // Queries already on it keep it open until they are done.
                if proto == Proto::Tcp {
                    self.forget(&conn, proto);
                } else {
                    conn.touch();
                }
                Err(ExchangeError::Failed(format!(
                    "read {net} {}->{}: i/o timeout",
                    conn.local,
                    self.peer()
                )))
            }
        }
    }

    /// The upstream's address as error texts give it.
    fn peer(&self) -> String {
        self.socket.map(|s| s.to_string()).unwrap_or_default()
    }

    fn conn_error(&self, e: ConnError, proto: Proto, conn: &Conn, cached: bool) -> ExchangeError {
        let peer = self.peer();
        match e {
            ConnError::Eof if cached => ExchangeError::CachedClosed,
            ConnError::Eof => ExchangeError::Failed("EOF".into()),
            ConnError::Other(s) => ExchangeError::Failed(format!(
                "read {} {}->{peer}: {s}",
                Self::proto_label(proto),
                conn.local
            )),
        }
    }

    /// Start probing this upstream unless a prober already runs (CoreDNS's `up.Probe`): probe,
    /// and while probes fail, wait the interval and probe again.
    pub fn healthcheck(self: &Arc<Self>) {
        if self.stopped.load(Ordering::Relaxed) || self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                if me.check().await {
                    break;
                }
                tokio::time::sleep(me.settings.hc_interval).await;
                if me.stopped.load(Ordering::Relaxed) {
                    return;
                }
            }
            me.probing.store(false, Ordering::Release);
        });
    }

    /// One health probe; true when the upstream answered anything that looks like DNS.
    pub async fn check(&self) -> bool {
        let ok = self.probe().await.is_ok();
        if ok {
            self.fails.store(0, Ordering::Relaxed);
        } else {
            self.metrics.families().healthcheck_failed(&self.addr);
            let _ = self
                .fails
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| f.checked_add(1));
        }
        ok
    }

    async fn probe(&self) -> Result<(), String> {
        let target = self.socket.ok_or("invalid address")?;
        let q = msg::probe_query(&self.settings.hc_domain, self.settings.hc_recursion_desired);
        if let Some(d) = &self.doh {
            return d.exchange(&q, HC_TIMEOUT).await.map(|_| ());
        }
        if self.settings.hc_tcp || self.tls.is_some() {
            let sock = if target.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .map_err(|e| e.to_string())?;
            if self.settings.source.is_some() {
                sock.bind(self.bind_addr(target))
                    .map_err(|e| e.to_string())?;
            }
            let s = tokio::time::timeout(Duration::from_secs(2), sock.connect(target))
                .await
                .map_err(|_| "dial timeout".to_string())?
                .map_err(|e| e.to_string())?;
            return match &self.tls {
                None => probe_stream(s, &q).await,
                Some(tls) => {
                    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
                    let s = tokio::time::timeout(
                        Duration::from_secs(2),
                        connector.connect(tls.server_name.clone(), s),
                    )
                    .await
                    .map_err(|_| "tls handshake timeout".to_string())?
                    .map_err(|e| e.to_string())?;
                    probe_stream(s, &q).await
                }
            };
        }
        let std = std::net::UdpSocket::bind(self.bind_addr(target))
            .and_then(|s| {
                s.connect(target)?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .map_err(|e| e.to_string())?;
        let sock = UdpSocket::from_std(std).map_err(|e| e.to_string())?;
        tokio::time::timeout(HC_TIMEOUT, sock.send(&q))
            .await
            .map_err(|_| "write timeout".to_string())?
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 512];
        let n = tokio::time::timeout(HC_TIMEOUT, sock.recv(&mut buf))
            .await
            .map_err(|_| "read timeout".to_string())?
            .map_err(|e| e.to_string())?;
        if n >= 12 {
            Ok(())
        } else {
            Err("dns: short read".into())
        }
    }
}

/// One framed probe over a stream; any reply with a header is healthy.
async fn probe_stream(mut s: impl AsyncRead + AsyncWrite + Unpin, q: &[u8]) -> Result<(), String> {
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    tokio::time::timeout(HC_TIMEOUT, s.write_all(&framed))
        .await
        .map_err(|_| "write timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let read = async {
        let len = s.read_u16().await?;
        let mut body = vec![0u8; usize::from(len)];
        s.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    let body = tokio::time::timeout(HC_TIMEOUT, read)
        .await
        .map_err(|_| "read timeout".to_string())?
        .map_err(|e| e.to_string())?;
    if body.len() >= 12 {
        Ok(())
    } else {
        Err("dns: short read".into())
    }
}

fn deliver(pending: &Pending, reply: &[u8]) {
    let id = u16::from_be_bytes([reply[0], reply[1]]);
    if let Some(w) = pending.take(id) {
        let _ = w.send(Ok(Bytes::copy_from_slice(reply)));
    }
}

async fn udp_reader(sock: Arc<QuietUdpSocket>, pending: Arc<Pending>) {
    let mut buf = vec![0u8; 65535];
    loop {
        match sock.recv(&mut buf).await {
            // Short datagrams and stray IDs are skipped, as CoreDNS does.
            Ok(n) if n >= 12 => deliver(&pending, &buf[..n]),
            Ok(_) => {}
            Err(e) => {
                let text = match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => "read: connection refused".to_string(),
                    _ => e.to_string(),
                };
                pending.kill(ConnError::Other(text));
                return;
            }
        }
    }
}

/// Frames gathered into one write at most (a pipelined burst goes out as one segment train
/// and one syscall instead of one per query).
const WRITE_BATCH: usize = 16 << 10;

/// The write half of a plain TCP connection that the queries write to directly, as the writer
/// task writes it.
struct SharedWrite(Arc<tokio::net::tcp::OwnedWriteHalf>);

impl AsyncWrite for SharedWrite {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        loop {
            match self.0.try_write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                done => return std::task::Poll::Ready(done),
            }
            // Registers for the wake-up; ready again means try again.
            let stream: &tokio::net::TcpStream = (*self.0).as_ref();
            std::task::ready!(stream.poll_write_ready(cx))?;
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Write what the queries could not write themselves, in order (see [`TcpOut`]).
async fn tcp_writer(
    mut wr: impl AsyncWrite + Unpin + Send + 'static,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    pending: Arc<Pending>,
) {
    let mut batch: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
    while let Some(frame) = rx.recv().await {
        // Every frame already queued joins this write.
        batch.clear();
        batch.extend_from_slice(&frame);
        let mut frames = 1;
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(next) => {
                    batch.extend_from_slice(&next);
                    frames += 1;
                }
                Err(_) => break,
            }
        }
        match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&batch)).await {
            Ok(Ok(())) => {
                // Only now may a query write its frame directly again.
                queued.fetch_sub(frames, Ordering::AcqRel);
            }
            Ok(Err(e)) => {
                pending.kill(write_error(&e));
                return;
            }
            Err(_) => {
                pending.kill(ConnError::Other("i/o timeout".into()));
                return;
            }
        }
    }
}

async fn tcp_reader(rd: impl AsyncRead + Unpin + Send + 'static, pending: Arc<Pending>) {
    // Buffered: the replies to a pipelined burst arrive together and are taken with one read,
    // not two per reply (length, then body).
    let mut rd = tokio::io::BufReader::with_capacity(16 << 10, rd);
    let mut body = Vec::with_capacity(4096);
    loop {
        let len = match rd.read_u16().await {
            Ok(l) => usize::from(l),
            Err(e) => {
                let e = match e.kind() {
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
                        ConnError::Eof
                    }
                    _ => ConnError::Other(e.to_string()),
                };
                pending.kill(e);
                return;
            }
        };
        body.resize(len, 0);
        if let Err(e) = rd.read_exact(&mut body).await {
            let e = match e.kind() {
                std::io::ErrorKind::UnexpectedEof => ConnError::Eof,
                _ => ConnError::Other(e.to_string()),
            };
            pending.kill(e);
            return;
        }
        if len < 12 {
            // A message without a header breaks the stream's framing for us: give up on it.
            pending.kill(ConnError::Other("dns: short read".into()));
            return;
        }
        deliver(&pending, &body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(i: usize, body: usize) -> Vec<u8> {
        let mut f = (body as u16).to_be_bytes().to_vec();
        f.extend((0..body).map(|j| (i + j) as u8));
        f
    }

    async fn read_frame(peer: &mut tokio::net::TcpStream, i: usize, body: usize) {
        let len = peer.read_u16().await.unwrap();
        assert_eq!(usize::from(len), body, "frame {i}: framing broken");
        let mut got = vec![0u8; body];
        peer.read_exact(&mut got).await.unwrap();
        assert!(
            got.iter().enumerate().all(|(j, b)| *b == (i + j) as u8),
            "frame {i} out of order or torn"
        );
    }

    /// Frames a plain TCP connection cannot take at once (the peer reads nothing for now, and
    /// both buffers are small and fixed) wait for the writer task; later frames queue behind
    /// them, also once the peer has made room, and the peer reads every frame whole and in
    /// order.
    #[tokio::test]
    async fn frames_that_do_not_fit_wait_in_order() {
        const FIRST: usize = 100;
        const MORE: usize = 20;
        const BODY: usize = 4000;
        let server = TcpSocket::new_v4().unwrap();
        server.set_recv_buffer_size(4096).unwrap();
        server.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = server.local_addr().unwrap();
        let listener = server.listen(8).unwrap();
        let client = TcpSocket::new_v4().unwrap();
        client.set_send_buffer_size(4096).unwrap();
        let (stream, accepted) = tokio::join!(client.connect(addr), listener.accept());
        let (_rd, wr) = stream.unwrap().into_split();
        let (mut peer, _) = accepted.unwrap();

        let pending: Arc<Pending> = Arc::default();
        let (out, _writer) = TcpOut::plain(wr, &pending);
        let queued = out.queued.clone();
        for i in 0..FIRST {
            out.send(frame(i, BODY)).unwrap();
        }
        assert!(
            queued.load(Ordering::Acquire) > 0,
            "every frame fit: the test did not reach the writer task"
        );
        // Room in the socket again, while frames still wait for the writer task: new frames
        // must not pass them.
        for i in 0..10 {
            read_frame(&mut peer, i, BODY).await;
        }
        for i in FIRST..FIRST + MORE {
            out.send(frame(i, BODY)).unwrap();
        }
        for i in 10..FIRST + MORE {
            read_frame(&mut peer, i, BODY).await;
        }
        // Everything was read, so the writer task has written all it held.
        while queued.load(Ordering::Acquire) > 0 {
            tokio::task::yield_now().await;
        }
        // The socket is written directly again.
        out.send(frame(0, 12)).unwrap();
        assert_eq!(queued.load(Ordering::Acquire), 0);
        read_frame(&mut peer, 0, 12).await;
    }
}

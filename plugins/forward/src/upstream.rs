//! One upstream: its connection pools (UDP and TCP), the exchange of one query, and its health
//! state and prober.
//!
//! UDP: a few connected sockets, each with one reader task that hands replies to the waiting
//! query by message ID. TCP: persistent connections with a writer task (fed through a bounded
//! channel, so a slow upstream pushes back) and a reader task demultiplexing by ID; a new
//! connection is opened while every open one has a query in flight, and queries are pipelined
//! only once the per-upstream connection cap is reached. Every pending map is bounded; past the
//! bounds a query fails at once instead of piling up.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

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

#[derive(Default)]
struct Pending {
    map: foldhash::HashMap<u16, Waiter>,
    dead: Option<ConnError>,
}

impl Pending {
    /// Fail every waiter and refuse new ones.
    fn kill(&mut self, e: ConnError) {
        for (_, w) in self.map.drain() {
            let _ = w.send(Err(e.clone()));
        }
        if self.dead.is_none() {
            self.dead = Some(e);
        }
    }
}

enum Sender {
    Udp(Arc<UdpSocket>),
    Tcp(mpsc::Sender<Vec<u8>>),
}

/// One pooled connection.
struct Conn {
    sender: Sender,
    pending: Arc<Mutex<Pending>>,
    created: Instant,
    last_used: Mutex<Instant>,
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
        lock(&self.pending).map.len()
    }
    fn is_dead(&self) -> bool {
        lock(&self.pending).dead.is_some()
    }
    fn idle_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(*lock(&self.last_used))
    }
    fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }
}

/// Removes a waiter when the query is done or abandoned (a cancelled request must not leave
/// its ID behind).
struct Registration {
    pending: Arc<Mutex<Pending>>,
    id: u16,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.pending).map.remove(&self.id);
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

    fn pick(&self, proto: Proto) -> Result<(Pick, bool), ExchangeError> {
        let now = Instant::now();
        let (spread, depth, max_conns) = match proto {
            Proto::Udp => (UDP_SPREAD, UDP_DEPTH, MAX_UDP_SOCKETS),
            Proto::Tcp => (1, TCP_DEPTH, MAX_TCP_CONNS),
        };
        let choose = |conns: &mut Vec<Arc<Conn>>, extra: usize| {
            conns.retain(|c| self.keep(c, now));
            let best = conns
                .iter()
                .filter(|c| !self.too_old(c, now))
                .map(|c| (c.in_flight(), c))
                .min_by_key(|(n, _)| *n)
                .map(|(n, c)| (n, c.clone()));
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
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .map_err(|e| ExchangeError::Failed(format!("dial udp {target}: {e}")))?;
        let sock = Arc::new(
            UdpSocket::from_std(std)
                .map_err(|e| ExchangeError::Failed(format!("dial udp {target}: {e}")))?,
        );
        let local = sock.local_addr().unwrap_or(target);
        let pending: Arc<Mutex<Pending>> = Arc::default();
        let reader = tokio::spawn(udp_reader(sock.clone(), pending.clone()));
        let now = Instant::now();
        let conn = Arc::new(Conn {
            sender: Sender::Udp(sock),
            pending,
            created: now,
            last_used: Mutex::new(now),
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
        let pending: Arc<Mutex<Pending>> = Arc::default();
        let (tx, rx) = mpsc::channel::<Vec<u8>>(TCP_DEPTH);
        let (writer, reader) = match &self.tls {
            None => {
                self.record_dial(start.elapsed());
                let (rd, wr) = stream.into_split();
                (
                    tokio::spawn(tcp_writer(wr, rx, pending.clone())),
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
                    tokio::spawn(tcp_writer(wr, rx, pending.clone())),
                    tokio::spawn(tcp_reader(rd, pending.clone())),
                )
            }
        };
        let now = Instant::now();
        Ok(Arc::new(Conn {
            sender: Sender::Tcp(tx),
            pending,
            created: now,
            last_used: Mutex::new(now),
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
        let (conn, cached) = loop {
            let dialed = self.dialed.notified();
            tokio::pin!(dialed);
            dialed.as_mut().enable();
            let (pick, cached) = self.pick(proto)?;
            match pick {
                Pick::Reuse(c) => break (c, cached),
                Pick::Open => match proto {
                    Proto::Udp => break (self.open_udp()?, cached),
                    Proto::Tcp => break (Box::pin(self.open_tcp(deadline)).await?, cached),
                },
                Pick::Wait => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if tokio::time::timeout(left, dialed).await.is_err() {
                        return Err(ExchangeError::Failed(format!(
                            "dial tcp {}: i/o timeout",
                            self.addr
                        )));
                    }
                }
            }
        };
        let (id, rx, reg) = {
            let mut p = lock(&conn.pending);
            if let Some(e) = &p.dead {
                let e = e.clone();
                drop(p);
                self.forget(&conn, proto);
                return Err(self.conn_error(e, proto, &conn, cached));
            }
            let mut id: u16 = rand::random();
            let mut tries = 0;
            while p.map.contains_key(&id) {
                id = rand::random();
                tries += 1;
                if tries > 64 {
                    return Err(ExchangeError::Failed(format!(
                        "too many queries in flight to {}",
                        self.addr
                    )));
                }
            }
            let (tx, rx) = oneshot::channel();
            p.map.insert(id, tx);
            (
                id,
                rx,
                Registration {
                    pending: conn.pending.clone(),
                    id,
                },
            )
        };
        let net = Self::proto_label(proto);
        match &conn.sender {
            Sender::Udp(sock) => {
                let mut buf = query.to_vec();
                buf[0..2].copy_from_slice(&id.to_be_bytes());
                if let Err(e) = sock.try_send(&buf) {
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
            Sender::Tcp(tx) => {
                let Ok(len) = u16::try_from(query.len()) else {
                    return Err(ExchangeError::Failed("dns: message too large".into()));
                };
                let mut buf = Vec::with_capacity(query.len() + 2);
                buf.extend_from_slice(&len.to_be_bytes());
                buf.extend_from_slice(query);
                buf[2..4].copy_from_slice(&id.to_be_bytes());
                match tokio::time::timeout(WRITE_TIMEOUT, tx.send(buf)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => {
                        self.forget(&conn, proto);
                        return Err(if cached {
                            ExchangeError::CachedClosed
                        } else {
                            ExchangeError::Failed("EOF".into())
                        });
                    }
                    Err(_) => {
                        self.forget(&conn, proto);
                        return Err(ExchangeError::Failed(format!(
                            "write tcp {}->{}: i/o timeout",
                            conn.local,
                            self.peer()
                        )));
                    }
                }
            }
        }
        let outcome = tokio::time::timeout(self.settings.read_timeout, rx).await;
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

fn deliver(pending: &Mutex<Pending>, reply: &[u8]) {
    let id = u16::from_be_bytes([reply[0], reply[1]]);
    let waiter = lock(pending).map.remove(&id);
    if let Some(w) = waiter {
        let _ = w.send(Ok(Bytes::copy_from_slice(reply)));
    }
}

async fn udp_reader(sock: Arc<UdpSocket>, pending: Arc<Mutex<Pending>>) {
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
                lock(&pending).kill(ConnError::Other(text));
                return;
            }
        }
    }
}

/// Frames gathered into one write at most (a pipelined burst goes out as one segment train
/// and one syscall instead of one per query).
const WRITE_BATCH: usize = 16 << 10;

async fn tcp_writer(
    mut wr: impl AsyncWrite + Unpin + Send + 'static,
    mut rx: mpsc::Receiver<Vec<u8>>,
    pending: Arc<Mutex<Pending>>,
) {
    let mut batch: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
    while let Some(frame) = rx.recv().await {
        // Every frame already queued joins this write.
        batch.clear();
        batch.extend_from_slice(&frame);
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.extend_from_slice(&next),
                Err(_) => break,
            }
        }
        match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let e = match e.kind() {
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                        ConnError::Eof
                    }
                    _ => ConnError::Other(e.to_string()),
                };
                lock(&pending).kill(e);
                return;
            }
            Err(_) => {
                lock(&pending).kill(ConnError::Other("i/o timeout".into()));
                return;
            }
        }
    }
}

async fn tcp_reader(rd: impl AsyncRead + Unpin + Send + 'static, pending: Arc<Mutex<Pending>>) {
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
                lock(&pending).kill(e);
                return;
            }
        };
        body.resize(len, 0);
        if let Err(e) = rd.read_exact(&mut body).await {
            let e = match e.kind() {
                std::io::ErrorKind::UnexpectedEof => ConnError::Eof,
                _ => ConnError::Other(e.to_string()),
            };
            lock(&pending).kill(e);
            return;
        }
        if len < 12 {
            // A message without a header breaks the stream's framing for us: give up on it.
            lock(&pending).kill(ConnError::Other("dns: short read".into()));
            return;
        }
        deliver(&pending, &body);
    }
}

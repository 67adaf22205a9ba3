//! The UDP front: one `SO_REUSEPORT` socket per worker, each drained by `recvmmsg` in batches.
//! A datagram without a header, or a response, is dropped on the spot. A plain query is offered
//! to the fast path (a plugin's synchronous wire-level hook, see [`FastHook`]); its answers go
//! back in the same batch with `sendmmsg`, without allocating. Everything else is decoded and
//! dispatched as a task, at most [`MAX_IN_FLIGHT`] per socket so that a slow chain cannot grow
//! memory. Past that, queries wait in the socket's backlog, in the order they came, as raw
//! datagrams (a few hundred bytes each, at most [`BACKLOG_BYTES`] in all), and go in as places
//! free up: a stall of the slow path (an upstream that pauses for a few hundred milliseconds, a
//! busy node) delays those queries instead of failing them. Each task also holds a place in the
//! process's memory budget ([`ferrodns_plugin::budget`]). Only when the backlog is full too, or
//! the budget is, is a query answered REFUSED without running the chain, and reading goes on: a
//! silent upstream that holds thousands of misses must not stop the socket from answering cache
//! hits on the fast path.
//!
//! The socket is registered for read events only ([`QuietUdpSocket`]): every reply sent would
//! otherwise leave a write event behind that wakes the worker for nothing; and a batch read
//! that comes back short is not followed by one that would only say `EAGAIN`.
//!
//! [`FastHook`]: ferrodns_plugin::FastHook

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use socket2::{Domain, Protocol as SockProto, Socket, Type};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, watch};

use ferrodns_pkg::udp::QuietUdpSocket;
use ferrodns_plugin::budget;
use ferrodns_plugin::wire::WireHeader;
use ferrodns_plugin::{FastAnswer, Metrics, Protocol, WireQuery};

use crate::dispatch::{Dispatcher, MAX_IN_FLIGHT};
use crate::sys::{RecvBatch, SendBatch};

/// Datagrams read per `recvmmsg`.
pub const BATCH: usize = 32;
/// Bytes of queries one socket holds waiting for a place in flight, each counted as its
/// datagram plus [`PARKED_COST`]. At 4,000 slow-path queries a second on a socket this rides
/// out a stall of more than a second; with a silent upstream it is full in as long and the
/// socket refuses what comes next, as before it.
pub const BACKLOG_BYTES: usize = 1 << 20;
/// What a waiting query costs beyond its datagram: its allocation, source address, the
/// configuration it was read under and its slot in the queue.
pub const PARKED_COST: usize = 128;

static PARKED: LazyLock<Gauge> = LazyLock::new(Gauge::default);
static OVERLOAD_REFUSED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Register `ferrodns_udp_backlog_queries` and `ferrodns_udp_overload_refused_total`
/// (idempotent; the server calls it on each load).
pub fn register_metrics(metrics: &Metrics) {
    metrics.register(
        "ferrodns_udp_backlog_queries",
        "UDP queries waiting in a socket's backlog for a place in flight.",
        || PARKED.clone(),
    );
    metrics.register(
        "ferrodns_udp_overload_refused",
        "UDP queries answered REFUSED because their socket's places in flight and backlog were full.",
        || OVERLOAD_REFUSED.clone(),
    );
}

/// Queries waiting in the backlogs of all UDP sockets of the process.
pub fn parked() -> usize {
    usize::try_from(PARKED.get()).unwrap_or(0)
}

/// Bind a UDP socket with `SO_REUSEPORT` (the wildcard address is dual-stack when IPv6 exists).
pub fn bind(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let wildcard_v6 = matches!(addr, SocketAddr::V6(a) if a.ip().is_unspecified());
    let socket = match Socket::new(Domain::for_address(addr), Type::DGRAM, Some(SockProto::UDP)) {
        Ok(s) => s,
        Err(_) if wildcard_v6 => {
            return bind(SocketAddr::from(([0, 0, 0, 0], addr.port())));
        }
        Err(e) => return Err(e),
    };
    if wildcard_v6 {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_port(true)?;
    socket.set_reuse_address(true)?;
    // A larger receive buffer rides out bursts; the kernel caps it at rmem_max.
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.set_nonblocking(true)?;
    match socket.bind(&addr.into()) {
        Ok(()) => Ok(socket.into()),
        Err(_) if wildcard_v6 => bind(SocketAddr::from(([0, 0, 0, 0], addr.port()))),
        Err(e) => Err(e),
    }
}

/// A query read while the socket's places in flight were taken.
struct Parked {
    raw: Bytes,
    src: SocketAddr,
    /// The configuration it was read under: a reload meanwhile does not move it.
    dispatch: Arc<Dispatcher>,
    cost: usize,
    _counted: Counted,
}

/// One query in [`PARKED`], for as long as it waits (also when a stopped socket drops it).
struct Counted;

impl Counted {
    fn new() -> Counted {
        PARKED.inc();
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        PARKED.dec();
    }
}

/// What the receive loop and the backlog's task share of one socket.
struct Front {
    socket: Arc<QuietUdpSocket>,
    local: SocketAddr,
    in_flight: Arc<Semaphore>,
    /// Bytes waiting in the backlog (see [`BACKLOG_BYTES`]); nonzero while anything waits.
    parked: AtomicUsize,
}

impl Front {
    /// Run the chain for a query that has its place in flight, and send the answer.
    fn spawn(
        &self,
        permit: OwnedSemaphorePermit,
        raw: Bytes,
        src: SocketAddr,
        dispatch: Arc<Dispatcher>,
    ) -> Option<Vec<u8>> {
        let Some(budget) = budget::global().try_query() else {
            return crate::wire::budget_refused(&raw);
        };
        let socket = self.socket.clone();
        let local = self.local;
        tokio::spawn(async move {
            let _held = (permit, budget);
            if let Some(reply) = dispatch.handle(raw, src, local, Protocol::Udp).await
                && let Err(e) = socket.send_to(&reply, src).await
            {
                tracing::debug!(target: "server", "UDP send to {src}: {e}");
            }
        });
        None
    }

    /// Move waiting queries into flight, oldest first, as places free up; returns when the
    /// receive loop has stopped and the backlog is empty.
    async fn admit(self: Arc<Self>, mut backlog: mpsc::UnboundedReceiver<Parked>) {
        while let Some(p) = backlog.recv().await {
            let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
                break;
            };
            self.parked.fetch_sub(p.cost, Ordering::Relaxed);
            let src = p.src;
            if let Some(refused) = self.spawn(permit, p.raw, src, p.dispatch)
                && let Err(e) = self.socket.send_to(&refused, src).await
            {
                tracing::debug!(target: "server", "UDP send to {src}: {e}");
            }
        }
    }
}

/// Serve one socket until `stop` turns true.
pub async fn serve(
    socket: QuietUdpSocket,
    dispatch: Arc<ArcSwap<Dispatcher>>,
    mut stop: watch::Receiver<bool>,
) {
    let socket = Arc::new(socket);
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let front = Arc::new(Front {
        socket: socket.clone(),
        local,
        in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        parked: AtomicUsize::new(0),
    });
    let (to_backlog, backlog) = mpsc::unbounded_channel();
    let admit = tokio::spawn(front.clone().admit(backlog));
    let mut batch = RecvBatch::new(BATCH);
    let mut ready = SendBatch::default();
    let mut name = String::with_capacity(256);
    let mut out = Vec::with_capacity(usize::from(u16::MAX));
    'serve: loop {
        let read = tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = socket.recv_batch(&mut batch) => match r {
                Ok(read) => read,
                Err(_) => break,
            },
        };
        let n = match read {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(target: "server", "UDP receive on {local}: {e}");
                continue;
            }
        };
        let current = dispatch.load_full();
        for i in 0..n {
            let Some((bytes, src)) = batch.get(i) else {
                continue;
            };
            // No header, or a response sent to us: no reply at all (CoreDNS's DNS library).
            match WireHeader::read(bytes) {
                Some(h) if !h.is_response() => {}
                _ => continue,
            }
            if let Some(q) = WireQuery::parse(bytes)
                && current.fast(&q, src, &mut name, &mut out) == FastAnswer::Answered
            {
                ready.push(&out, src);
                continue;
            }
            // A query read is a query answered, also when the stop comes meanwhile (a successor
            // took the socket over and will not see this one): the backlog and the places in
            // flight are only drained after this loop. Nothing passes a query that waits.
            let waiting = front.parked.load(Ordering::Relaxed);
            if waiting == 0 {
                match front.in_flight.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let raw = Bytes::copy_from_slice(bytes);
                        if let Some(refused) = front.spawn(permit, raw, src, current.clone()) {
                            ready.push(&refused, src);
                        }
                        continue;
                    }
                    Err(TryAcquireError::NoPermits) => {}
                    Err(TryAcquireError::Closed) => break 'serve,
                }
            }
            let cost = bytes.len() + PARKED_COST;
            if waiting + cost > BACKLOG_BYTES {
                OVERLOAD_REFUSED.inc();
                if let Some(refused) = crate::wire::budget_refused(bytes) {
                    ready.push(&refused, src);
                }
                continue;
            }
            front.parked.fetch_add(cost, Ordering::Relaxed);
            let parked = Parked {
                raw: Bytes::copy_from_slice(bytes),
                src,
                dispatch: current.clone(),
                cost,
                _counted: Counted::new(),
            };
            if to_backlog.send(parked).is_err() {
                break 'serve;
            }
        }
        flush(&mut ready, &socket).await;
    }
    flush(&mut ready, &socket).await;
    // Answer what waits and what is in flight before the socket goes (CoreDNS's graceful stop,
    // bounded).
    drop(to_backlog);
    crate::run::drain_after(admit, &front.in_flight, MAX_IN_FLIGHT).await;
}

/// Send the datagrams queued in `ready` with `sendmmsg`, waiting for the socket when its
/// buffer is full and passing over one the kernel refuses; `ready` is empty afterwards.
pub async fn flush(ready: &mut SendBatch, socket: &QuietUdpSocket) {
    let fd = socket.get_ref().as_raw_fd();
    while ready.pending() {
        match ready.send(fd) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if socket.writable().await.is_err() {
                    break;
                }
            }
            Err(e) => {
                tracing::debug!(target: "server", "UDP batch send: {e}");
                // Skip the datagram the kernel refused (an unroutable source) and go on.
                ready.skip();
            }
        }
    }
    ready.clear();
}

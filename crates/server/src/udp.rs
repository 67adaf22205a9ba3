//! The UDP front: one `SO_REUSEPORT` socket per worker, each drained by `recvmmsg` in batches.
//! A datagram without a header, or a response, is dropped on the spot. A plain query is offered
//! to the fast path (a plugin's synchronous wire-level hook, see [`FastHook`]); its answers go
//! back in the same batch with `sendmmsg`, without allocating. Everything else is decoded and
//! dispatched as a task, at most [`MAX_IN_FLIGHT`] per socket so that a slow chain cannot grow
//! memory. Each such task also holds a place in the process's memory budget
//! ([`ferrodns_plugin::budget`]). When either is full the query is answered REFUSED in the
//! batch, without running the chain, and reading goes on: a silent upstream that holds a
//! thousand misses must not stop the socket from answering cache hits on the fast path.
//!
//! [`FastHook`]: ferrodns_plugin::FastHook

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use socket2::{Domain, Protocol as SockProto, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{Semaphore, TryAcquireError, watch};

use ferrodns_plugin::budget;
use ferrodns_plugin::wire::WireHeader;
use ferrodns_plugin::{FastAnswer, Protocol, WireQuery};

use crate::dispatch::Dispatcher;
use crate::sys::{RecvBatch, SendBatch};

/// Datagrams read per `recvmmsg`.
pub const BATCH: usize = 32;
/// Queries of one socket being served at once.
pub const MAX_IN_FLIGHT: usize = 1024;

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

/// Serve one socket until `stop` turns true.
pub async fn serve(
    socket: UdpSocket,
    dispatch: Arc<ArcSwap<Dispatcher>>,
    mut stop: watch::Receiver<bool>,
) {
    let socket = Arc::new(socket);
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let fd = socket.as_raw_fd();
    let mut batch = RecvBatch::new(BATCH);
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut ready = SendBatch::default();
    let mut name = String::with_capacity(256);
    let mut out = Vec::with_capacity(usize::from(u16::MAX));
    'serve: loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = socket.readable() => if r.is_err() { break },
        }
        let n = match socket.try_io(Interest::READABLE, || batch.recv(fd)) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
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
            let Some(budget) = budget::global().try_query() else {
                if let Some(refused) = crate::wire::budget_refused(bytes) {
                    ready.push(&refused, src);
                }
                continue;
            };
            // A query read is a query answered, also when the stop comes meanwhile (a successor
            // took the socket over and will not see this one): the permits are only closed
            // after this loop.
            let permit = match in_flight.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(TryAcquireError::NoPermits) => {
                    if let Some(refused) = crate::wire::budget_refused(bytes) {
                        ready.push(&refused, src);
                    }
                    continue;
                }
                Err(TryAcquireError::Closed) => break 'serve,
            };
            let raw = Bytes::copy_from_slice(bytes);
            let socket = socket.clone();
            let dispatch = current.clone();
            tokio::spawn(async move {
                let _permit = (permit, budget);
                if let Some(reply) = dispatch.handle(raw, src, local, Protocol::Udp).await
                    && let Err(e) = socket.send_to(&reply, src).await
                {
                    tracing::debug!(target: "server", "UDP send to {src}: {e}");
                }
            });
        }
        flush(&mut ready, &socket).await;
    }
    flush(&mut ready, &socket).await;
    // Answer what is in flight before the socket goes (CoreDNS's graceful stop, bounded).
    crate::run::drain(&in_flight, MAX_IN_FLIGHT).await;
}

/// Send the datagrams queued in `ready` with `sendmmsg`, waiting for the socket when its
/// buffer is full and passing over one the kernel refuses; `ready` is empty afterwards.
pub async fn flush(ready: &mut SendBatch, socket: &UdpSocket) {
    let fd = socket.as_raw_fd();
    while ready.pending() {
        match socket.try_io(Interest::WRITABLE, || ready.send(fd)) {
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

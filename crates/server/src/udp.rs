//! The UDP front: one `SO_REUSEPORT` socket per worker, each drained by `recvmmsg` in batches.
//! Replies that need no plugin (FORMERR, NOTIMP) go back in the same batch with `sendmmsg`;
//! everything else is dispatched as a task, with at most [`MAX_IN_FLIGHT`] per socket so that
//! a slow chain pushes back on the socket instead of growing memory.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use socket2::{Domain, Protocol as SockProto, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{Semaphore, watch};

use ferrodns_plugin::Protocol;

use crate::dispatch::Dispatcher;
use crate::sys::{RecvBatch, send_batch};
use crate::wire::{self, Intake};

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
    let mut immediate: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
    loop {
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
        for i in 0..n {
            let Some((bytes, src)) = batch.get(i) else {
                continue;
            };
            // Answer what needs no plugin here, in the batch.
            match wire::intake(bytes) {
                Intake::Drop => continue,
                Intake::Reject(reply) => {
                    immediate.push((reply, src));
                    continue;
                }
                Intake::Accept(_) => {}
            }
            let raw = Bytes::copy_from_slice(bytes);
            let permit = tokio::select! {
                biased;
                _ = stop.changed() => return,
                p = in_flight.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            };
            let socket = socket.clone();
            let dispatch = dispatch.load_full();
            tokio::spawn(async move {
                let _permit = permit;
                if let Some(reply) = dispatch.handle(raw, src, local, Protocol::Udp).await
                    && let Err(e) = socket.send_to(&reply, src).await
                {
                    tracing::debug!(target: "server", "UDP send to {src}: {e}");
                }
            });
        }
        flush(&socket, fd, &mut immediate).await;
    }
}

/// Send the batch of immediate replies, waiting for the socket when its buffer is full.
async fn flush(socket: &UdpSocket, fd: i32, pending: &mut Vec<(Vec<u8>, SocketAddr)>) {
    let mut start = 0;
    while start < pending.len() {
        let msgs: Vec<(&[u8], SocketAddr)> = pending[start..]
            .iter()
            .map(|(b, a)| (b.as_slice(), *a))
            .collect();
        match socket.try_io(Interest::WRITABLE, || send_batch(fd, &msgs)) {
            Ok(0) => break,
            Ok(sent) => start += sent,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if socket.writable().await.is_err() {
                    break;
                }
            }
            Err(e) => {
                tracing::debug!(target: "server", "UDP batch send: {e}");
                // Skip the datagram the kernel refused (e.g. an unroutable source) and go on.
                start += 1;
            }
        }
    }
    pending.clear();
}

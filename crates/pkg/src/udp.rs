//! A UDP socket registered with the runtime for read events only.
//!
//! Linux signals a UDP socket writable again each time a datagram it sent is let go, and on
//! loopback and veth pairs that happens inside the `sendto` itself. A socket that the runtime
//! watches for writability (as `tokio::net::UdpSocket` always is) therefore leaves one event
//! behind for every datagram it sends, and the worker thread makes one more `epoll_wait` for
//! it, that wakes nothing: two per forwarded query, one per batch of cache hits. This socket
//! asks for read events only. A send that finds the buffer full (rare for UDP) waits on a
//! second registration of the same socket made for that wait and dropped after it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::sys::RecvBatch;

/// A non-blocking UDP socket whose runtime registration asks for read events only.
#[derive(Debug)]
pub struct QuietUdpSocket {
    fd: AsyncFd<std::net::UdpSocket>,
}

impl QuietUdpSocket {
    /// Register `socket` (made non-blocking) with the current runtime.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        Ok(QuietUdpSocket {
            fd: crate::sys::watch(socket, Interest::READABLE)?,
        })
    }

    /// The socket itself, for calls that do not wait.
    pub fn get_ref(&self) -> &std::net::UdpSocket {
        self.fd.get_ref()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get_ref().local_addr()
    }

    /// Wait for datagrams and read up to a batch of them with one `recvmmsg`. A read that
    /// comes back short took everything there was, so the readiness is forgotten then instead
    /// of being confirmed by a read that only says `EAGAIN`; with edge-triggered epoll a
    /// datagram that lands afterwards is a new read event, and tokio does not forget a
    /// readiness newer than the one this read saw.
    ///
    /// The outer error means the socket can no longer be waited on (the runtime is stopping);
    /// the inner one is the read's. Cancel-safe: nothing is read until the socket is ready.
    pub async fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<io::Result<usize>> {
        let fd = self.fd.get_ref().as_raw_fd();
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|_| batch.recv(fd)) {
                Ok(Ok(n)) => {
                    if n < batch.capacity() {
                        guard.clear_ready();
                    }
                    return Ok(Ok(n));
                }
                Ok(Err(e)) => return Ok(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Read one datagram from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            if let Ok(r) = guard.try_io(|s| s.get_ref().recv(buf)) {
                return r;
            }
        }
    }

    /// Wait until a datagram fits in the send buffer again.
    pub async fn writable(&self) -> io::Result<()> {
        let dup = self.fd.get_ref().try_clone()?;
        let once = crate::sys::watch(dup, Interest::WRITABLE)?;
        // A newly registered socket reports its current state, so this returns at once when
        // there is room already.
        let _ready = once.writable().await?;
        Ok(())
    }

    /// Run the send `f`, waiting for room as long as it would block.
    pub async fn send_with<R>(
        &self,
        mut f: impl FnMut(&std::net::UdpSocket) -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            match f(self.fd.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                r => return r,
            }
        }
    }

    /// Send `buf` to `target`.
    pub async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.send_with(|s| s.send_to(buf, target)).await
    }

    /// Send `buf` to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.send_with(|s| s.send(buf)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pair() -> (QuietUdpSocket, std::net::UdpSocket) {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        (QuietUdpSocket::from_std(a).unwrap(), b)
    }

    #[tokio::test]
    async fn sends_and_receives() {
        let (quiet, peer) = pair();
        quiet.send(b"one").await.unwrap();
        quiet
            .send_to(b"two", peer.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(peer.recv(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"one");
        assert_eq!(peer.recv(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"two");
        peer.send(b"three").unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), quiet.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"three");
        // Room to send: the wait made for it returns at once.
        tokio::time::timeout(Duration::from_secs(5), quiet.writable())
            .await
            .unwrap()
            .unwrap();
    }

    /// Forgetting the readiness after a batch read that came back short loses nothing: a
    /// datagram that comes later is a new read event.
    #[tokio::test]
    async fn short_batch_reads_still_wake_for_the_next_datagram() {
        let (quiet, peer) = pair();
        let mut batch = RecvBatch::new(4);
        for round in 0..50u8 {
            peer.send(&[round]).unwrap();
            let n = tokio::time::timeout(Duration::from_secs(5), quiet.recv_batch(&mut batch))
                .await
                .expect("a read event for the datagram")
                .unwrap()
                .unwrap();
            assert_eq!(n, 1);
            assert_eq!(batch.get(0).unwrap().0, &[round]);
        }
        // A full batch keeps the readiness: the rest is read after it.
        for round in 0..6u8 {
            peer.send(&[round]).unwrap();
        }
        for want in [4, 2] {
            let n = tokio::time::timeout(Duration::from_secs(5), quiet.recv_batch(&mut batch))
                .await
                .expect("the datagrams left after a full batch")
                .unwrap()
                .unwrap();
            assert_eq!(n, want);
        }
    }
}

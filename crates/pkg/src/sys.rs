//! Batched UDP syscalls: `recvmmsg` and `sendmmsg`; taking ownership of the descriptors a
//! hand-off receives by `SCM_RIGHTS` ([`adopt_received_fd`]); and registering a socket with
//! tokio's reactor for the events we choose ([`watch`], for [`crate::udp::QuietUdpSocket`]).
//!
//! This is the only module of ferrodns with `unsafe` code. Each batched call hands the kernel
//! arrays of `mmsghdr`/`iovec` that point into buffers owned by [`RecvBatch`] or
//! [`SendBatch`]; the pointers are rebuilt before every call and live only for its duration, so
//! nothing the kernel writes through them can outlive or alias the Rust-owned memory. Both
//! calls are non-blocking (`MSG_DONTWAIT`); readiness comes from tokio.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use socket2::{SockAddr, SockAddrStorage};

/// Largest request we read. Queries are small (one question and an OPT or TSIG record); a
/// datagram cut at this size is dropped as malformed.
pub const SLOT: usize = 4096;

/// Receive buffers for up to `n` datagrams.
pub struct RecvBatch {
    bufs: Vec<u8>,
    lens: Vec<usize>,
    truncated: Vec<bool>,
    addrs: Vec<SockAddrStorage>,
    addr_lens: Vec<libc::socklen_t>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside `iovs`/`hdrs` are only written and read within `recv`, which
// takes `&mut self`; between calls they are dead values, so moving the batch across threads is
// as safe as moving its `Vec<u8>`.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// Buffers for `n` datagrams.
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        RecvBatch {
            bufs: vec![0; n * SLOT],
            lens: vec![0; n],
            truncated: vec![false; n],
            addrs: (0..n).map(|_| SockAddrStorage::zeroed()).collect(),
            addr_lens: vec![0; n],
            iovs: Vec::with_capacity(n),
            hdrs: Vec::with_capacity(n),
        }
    }

    /// How many datagrams fit.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Datagram `i` of the last receive: its bytes and source, or `None` if it was cut short or
    /// its address family is unknown.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if self.truncated[i] {
            return None;
        }
        // SAFETY: `recvmmsg` wrote a source address of its family and this length into the
        // storage (a zeroed storage of length 0 reads as no address); the copy is read once.
        let addr = unsafe { SockAddr::new(std::ptr::read(&self.addrs[i]), self.addr_lens[i]) }
            .as_socket()?;
        Some((&self.bufs[i * SLOT..i * SLOT + self.lens[i]], addr))
    }

    /// Receive up to `capacity` datagrams without blocking. Returns how many arrived;
    /// `WouldBlock` when none are waiting.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let n = self.capacity();
        self.iovs.clear();
        self.hdrs.clear();
        let base = self.bufs.as_mut_ptr();
        for i in 0..n {
            self.iovs.push(libc::iovec {
                // SAFETY: i * SLOT + SLOT <= bufs.len(), so the pointer stays inside `bufs`.
                iov_base: unsafe { base.add(i * SLOT) }.cast(),
                iov_len: SLOT,
            });
        }
        for i in 0..n {
            let namelen = self.addrs[i].size_of();
            let name = (&mut self.addrs[i] as *mut SockAddrStorage).cast();
            self.hdrs.push(header(name, namelen, &mut self.iovs[i]));
        }
        // SAFETY: `hdrs` has `n` valid headers whose name and iov pointers point into buffers
        // owned by `self` that stay alive and unaliased for the duration of the call.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        let got = got as usize;
        for i in 0..got {
            let h = &self.hdrs[i];
            self.lens[i] = (h.msg_len as usize).min(SLOT);
            self.truncated[i] = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.addr_lens[i] = h.msg_hdr.msg_namelen;
        }
        Ok(got)
    }
}

/// Replies kept back to back in one buffer until they go out together with `sendmmsg`. The
/// buffers are kept between batches, so a batch costs no allocation once they have grown.
#[derive(Default)]
pub struct SendBatch {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
    addrs: Vec<SockAddr>,
    /// How many of the queued datagrams have been taken by the kernel (or skipped).
    done: usize,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: as for `RecvBatch`: the raw pointers inside `iovs`/`hdrs` are rebuilt and used only
// within `send`, which takes `&mut self`; between calls they are dead values.
unsafe impl Send for SendBatch {}

impl SendBatch {
    /// Queue a datagram for `to`.
    pub fn push(&mut self, payload: &[u8], to: SocketAddr) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.spans.push((start, self.bytes.len()));
        self.addrs.push(SockAddr::from(to));
    }

    /// Queue a datagram for `to` and return its bytes to change in place.
    pub fn push_mut(&mut self, payload: &[u8], to: SocketAddr) -> &mut [u8] {
        let start = self.bytes.len();
        self.push(payload, to);
        &mut self.bytes[start..]
    }

    /// Whether datagrams are waiting to be sent.
    pub fn pending(&self) -> bool {
        self.done < self.spans.len()
    }

    /// Pass over the next waiting datagram (one the kernel refused, such as for an
    /// unroutable address).
    pub fn skip(&mut self) {
        self.done = (self.done + 1).min(self.spans.len());
    }

    /// Forget every queued datagram, sent or not.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.addrs.clear();
        self.done = 0;
    }

    /// Send waiting datagrams without blocking. Returns how many the kernel took (in order);
    /// `WouldBlock` when the socket buffer is full.
    pub fn send(&mut self, fd: RawFd) -> io::Result<usize> {
        let from = self.done;
        let n = self.spans.len() - from;
        if n == 0 {
            return Ok(0);
        }
        self.iovs.clear();
        self.hdrs.clear();
        let base = self.bytes.as_mut_ptr();
        for &(a, b) in &self.spans[from..] {
            self.iovs.push(libc::iovec {
                // SAFETY: a <= b <= bytes.len(), so the pointer stays inside `bytes`.
                iov_base: unsafe { base.add(a) }.cast(),
                iov_len: b - a,
            });
        }
        for i in 0..n {
            let addr = &self.addrs[from + i];
            // `sendmmsg` only reads the address through this pointer.
            let name = addr.as_ptr() as *mut libc::c_void;
            self.hdrs.push(header(name, addr.len(), &mut self.iovs[i]));
        }
        // SAFETY: `hdrs` has `n` valid headers whose name and iov pointers point into buffers
        // owned by `self` that stay alive and unchanged for the duration of the call; the
        // kernel only reads them.
        let sent = unsafe {
            libc::sendmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let sent = sent as usize;
        self.done += sent;
        Ok(sent)
    }
}

/// The header of one datagram in one buffer, to or from the address at `name`.
fn header(
    name: *mut libc::c_void,
    namelen: libc::socklen_t,
    iov: *mut libc::iovec,
) -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain old data; zero is a valid starting value.
    let mut h: libc::mmsghdr = unsafe { mem::zeroed() };
    h.msg_hdr.msg_name = name;
    h.msg_hdr.msg_namelen = namelen;
    h.msg_hdr.msg_iov = iov;
    h.msg_hdr.msg_iovlen = 1;
    h
}

/// Own a descriptor that `recvmsg` just installed in this process from an `SCM_RIGHTS` message
/// (a hand-off, see `ferrodns_server::handoff`).
pub fn adopt_received_fd(fd: RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the kernel created `fd` in this process while receiving the message; no other
    // code has seen it, so the returned value is its only owner and closes it exactly once.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// Register `socket` with the current runtime's reactor for `interest` only.
pub fn watch(
    socket: std::net::UdpSocket,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<std::net::UdpSocket>> {
    // SAFETY: the `AsyncFd` owns `socket`, and with it the descriptor it registers; nothing
    // else can close or replace that descriptor while it is registered, and dropping the
    // `AsyncFd` deregisters it before the socket closes it.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(socket, interest) }
        .map_err(|e| e.into_parts().1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn batch_round_trip_on_loopback() {
        round_trip("127.0.0.1:0");
    }

    #[test]
    fn batch_round_trip_on_ipv6_loopback() {
        round_trip("[::1]:0");
    }

    fn round_trip(bind: &str) {
        let a = std::net::UdpSocket::bind(bind).unwrap();
        let b = std::net::UdpSocket::bind(bind).unwrap();
        let to = b.local_addr().unwrap();
        let mut out = SendBatch::default();
        for m in [&b"one"[..], b"two", b"three"] {
            out.push(m, to);
        }
        assert_eq!(out.send(a.as_raw_fd()).unwrap(), 3);
        assert!(!out.pending());
        b.set_nonblocking(false).unwrap();
        let mut batch = RecvBatch::new(8);
        let mut got = Vec::new();
        while got.len() < 3 {
            match batch.recv(b.as_raw_fd()) {
                Ok(n) => {
                    for i in 0..n {
                        let (bytes, src) = batch.get(i).unwrap();
                        assert_eq!(src, a.local_addr().unwrap());
                        got.push(bytes.to_vec());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(
            got,
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
    }
}

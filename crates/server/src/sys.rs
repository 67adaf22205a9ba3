//! Batched UDP syscalls: `recvmmsg` and `sendmmsg`; and taking ownership of the descriptors a
//! hand-off receives by `SCM_RIGHTS` ([`adopt_received_fd`]).
//!
//! This is the only module of ferrodns with `unsafe` code. Each call hands the kernel arrays of
//! `mmsghdr`/`iovec` that point into buffers owned by [`RecvBatch`] or by the caller's slices;
//! the pointers are rebuilt before every call and live only for its duration, so nothing the
//! kernel writes through them can outlive or alias the Rust-owned memory. Both calls are
//! non-blocking (`MSG_DONTWAIT`); readiness comes from tokio.
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
            // SAFETY: mmsghdr is plain old data; zero is a valid starting value.
            let mut h: libc::mmsghdr = unsafe { mem::zeroed() };
            h.msg_hdr.msg_name = (&mut self.addrs[i] as *mut SockAddrStorage).cast();
            h.msg_hdr.msg_namelen = self.addrs[i].size_of();
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            self.hdrs.push(h);
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

/// Send datagrams without blocking. Returns how many the kernel took (they are taken in
/// order); `WouldBlock` when the socket buffer is full.
pub fn send_batch(fd: RawFd, msgs: &[(&[u8], SocketAddr)]) -> io::Result<usize> {
    if msgs.is_empty() {
        return Ok(0);
    }
    let addrs: Vec<SockAddr> = msgs.iter().map(|(_, a)| SockAddr::from(*a)).collect();
    let mut iovs: Vec<libc::iovec> = msgs
        .iter()
        .map(|(b, _)| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = Vec::with_capacity(msgs.len());
    for i in 0..msgs.len() {
        // SAFETY: mmsghdr is plain old data; zero is a valid starting value.
        let mut h: libc::mmsghdr = unsafe { mem::zeroed() };
        // `sendmmsg` only reads the address through this pointer.
        h.msg_hdr.msg_name = addrs[i].as_ptr() as *mut libc::c_void;
        h.msg_hdr.msg_namelen = addrs[i].len();
        h.msg_hdr.msg_iov = &mut iovs[i];
        h.msg_hdr.msg_iovlen = 1;
        hdrs.push(h);
    }
    // SAFETY: every header points at an address and an iovec owned by this frame, and each
    // iovec at a caller's slice that outlives the call; the kernel only reads the payloads.
    let sent = unsafe {
        libc::sendmmsg(
            fd,
            hdrs.as_mut_ptr(),
            hdrs.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// Own a descriptor that `recvmsg` just installed in this process from an `SCM_RIGHTS` message
/// (a hand-off, see [`crate::handoff`]).
pub fn adopt_received_fd(fd: RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the kernel created `fd` in this process while receiving the message; no other
    // code has seen it, so the returned value is its only owner and closes it exactly once.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
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
        let msgs: Vec<(&[u8], SocketAddr)> = vec![(b"one", to), (b"two", to), (b"three", to)];
        assert_eq!(send_batch(a.as_raw_fd(), &msgs).unwrap(), 3);
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

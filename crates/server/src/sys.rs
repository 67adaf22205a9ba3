//! Batched UDP syscalls: `recvmmsg` and `sendmmsg`.
//!
//! This is the only module of ferrodns with `unsafe` code. Each call hands the kernel arrays of
//! `mmsghdr`/`iovec` that point into buffers owned by [`RecvBatch`] or by the caller's slices;
//! the pointers are rebuilt before every call and live only for its duration, so nothing the
//! kernel writes through them can outlive or alias the Rust-owned memory. Both calls are
//! non-blocking (`MSG_DONTWAIT`); readiness comes from tokio.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Largest request we read. Queries are small (one question and an OPT or TSIG record); a
/// datagram cut at this size is dropped as malformed.
pub const SLOT: usize = 4096;

/// Receive buffers for up to `n` datagrams.
pub struct RecvBatch {
    bufs: Vec<u8>,
    lens: Vec<usize>,
    truncated: Vec<bool>,
    addrs: Vec<libc::sockaddr_storage>,
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
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
            addrs: vec![unsafe { mem::zeroed() }; n],
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
        let addr = from_storage(&self.addrs[i])?;
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
            h.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
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
    let mut addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)> =
        msgs.iter().map(|(_, a)| to_storage(a)).collect();
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
        h.msg_hdr.msg_name = (&mut addrs[i].0 as *mut libc::sockaddr_storage).cast();
        h.msg_hdr.msg_namelen = addrs[i].1;
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

fn from_storage(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // enough and suitably aligned for.
            let a: &libc::sockaddr_in = unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(s as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn to_storage(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut s: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut s as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut s as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (s, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn batch_round_trip_on_loopback() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
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

//! Hand-off: a new process takes over the listening sockets (and the plugins' state) of the
//! running one, so that a restart or an upgrade loses no query.
//!
//! The running process listens on a unix socket, by default an abstract one (`@ferrodns-handoff`)
//! so that it needs no shared directory: processes in one network namespace (a node's
//! hostNetwork pods) find each other by name. A process that starts:
//!
//! 1. connects to it and says hello with the hand-off version it speaks ([`VERSION`]); both
//!    sides check that the peer runs as the same user;
//! 2. gets, if the versions agree, an offer: every DNS socket (all UDP sockets of each
//!    listener's `SO_REUSEPORT` group and its TCP listener) and every HTTP listener, as file
//!    descriptors (`SCM_RIGHTS`), and each plugin's exported state ([`Plugin::handoff_export`]);
//! 3. declines if it serves none of the offered DNS addresses (an unrelated instance); else
//!    serves the sockets it shares with the predecessor, binds the others, and says `taken`;
//! 4. the predecessor then closes its hand-off listener, says `released`, stops reading
//!    (the sockets live on in the successor, with whatever sits in their queues), answers every
//!    query it holds, closes its TCP connections after their answers, and exits without tearing
//!    anything down.
//!
//! A version mismatch, or no predecessor at all, leaves the new process to bind its sockets
//! beside the old ones (`SO_REUSEPORT`); a mismatch is logged.
//!
//! Frames are a kind byte and a big-endian `u32` length, then the body. File descriptors travel
//! after the offer in messages of one byte each carrying up to [`FDS_PER_MESSAGE`] of them.
//!
//! [`Plugin::handoff_export`]: ferrodns_plugin::Plugin::handoff_export

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::time::Duration;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

use crate::config::Instance;

/// The hand-off protocol version this build speaks.
pub const VERSION: u16 = 1;
/// File descriptors per `SCM_RIGHTS` message (the kernel takes at most 253).
pub const FDS_PER_MESSAGE: usize = 200;
/// How long one step of the exchange may take before the other side is given up on.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest frame accepted (plugin state of large caches included).
const MAX_FRAME: usize = 512 << 20;
const MAGIC: &[u8; 4] = b"FDHO";

const HELLO: u8 = b'H';
const OFFER: u8 = b'O';
const MISMATCH: u8 = b'V';
const DECLINE: u8 = b'D';
const TAKEN: u8 = b'T';
const UNRELATED: u8 = b'U';
const BUSY: u8 = b'B';
const RELEASED: u8 = b'R';

/// Where processes meet: `@name` is an abstract unix socket (per network namespace), anything
/// else a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendezvous(pub String);

impl Rendezvous {
    fn addr(&self) -> io::Result<UnixAddr> {
        match self.0.strip_prefix('@') {
            Some(name) => UnixAddr::from_abstract_name(name.as_bytes()),
            None => UnixAddr::from_pathname(&self.0),
        }
    }

    fn is_path(&self) -> bool {
        !self.0.starts_with('@')
    }
}

impl std::fmt::Display for Rendezvous {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a socket offered in a hand-off is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockKind {
    /// One UDP socket of a DNS listener.
    Udp,
    /// A DNS listener's TCP listening socket.
    Tcp,
    /// An HTTP listener (`health`, `prometheus`, ...).
    Http,
}

impl SockKind {
    fn code(self) -> u8 {
        match self {
            SockKind::Udp => b'u',
            SockKind::Tcp => b't',
            SockKind::Http => b'h',
        }
    }

    fn from_code(c: u8) -> Option<SockKind> {
        match c {
            b'u' => Some(SockKind::Udp),
            b't' => Some(SockKind::Tcp),
            b'h' => Some(SockKind::Http),
            _ => None,
        }
    }
}

/// One socket of an offer: what it is, the address it was asked for (the listener's bind
/// address for DNS, the configured `host:port` for HTTP), and the socket.
#[derive(Debug)]
pub struct OfferedSocket {
    /// Its kind.
    pub kind: SockKind,
    /// The address it answers for.
    pub key: String,
    /// The socket (a duplicate of the predecessor's descriptor).
    pub fd: OwnedFd,
}

/// One plugin's exported state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginState {
    /// The block's identity ([`block_key`]).
    pub block: String,
    /// The directive.
    pub directive: String,
    /// Its position among the block's plugins of that directive.
    pub nth: u32,
    /// What the plugin exported.
    pub data: Vec<u8>,
}

/// Everything a predecessor offers.
#[derive(Debug, Default)]
pub struct Offer {
    /// The sockets.
    pub sockets: Vec<OfferedSocket>,
    /// The plugins' states.
    pub states: Vec<PluginState>,
}

/// A block's identity across processes: its keys and its `bind` addresses.
pub fn block_key(block: &ferrodns_plugin::BlockSettings) -> String {
    let zones: Vec<String> = block.zones.iter().map(|z| z.to_string()).collect();
    format!("{} on [{}]", zones.join(" "), block.listen_hosts.join(" "))
}

/// Each plugin of `instance` with its place: the block's key, and its position among the
/// block's plugins of its directive.
fn places(instance: &Instance) -> Vec<(String, u32, &std::sync::Arc<dyn ferrodns_plugin::Plugin>)> {
    let mut out = Vec::new();
    for block in &instance.blocks {
        let key = block_key(block);
        let mut seen: Vec<&str> = Vec::new();
        for p in &block.plugins {
            let name = p.name();
            let nth = seen.iter().filter(|n| **n == name).count();
            seen.push(name);
            out.push((key.clone(), u32::try_from(nth).unwrap_or(u32::MAX), p));
        }
    }
    out
}

/// Every plugin's exported state of `instance`.
pub fn export_states(instance: &Instance) -> Vec<PluginState> {
    places(instance)
        .into_iter()
        .filter_map(|(block, nth, p)| {
            Some(PluginState {
                data: p.handoff_export()?,
                block,
                directive: p.name().to_string(),
                nth,
            })
        })
        .collect()
}

/// Hand each state to the plugin of `instance` in the same place; returns how many found one.
pub fn import_states(instance: &Instance, states: &[PluginState]) -> usize {
    let mut used = 0;
    for (block, nth, p) in places(instance) {
        let found = states
            .iter()
            .find(|s| s.block == block && s.directive == p.name() && s.nth == nth);
        if let Some(s) = found {
            p.handoff_import(&s.data);
            used += 1;
        }
    }
    used
}

// ---------------------------------------------------------------------------------------------
// Framing.

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn write_frame(s: &mut UnixStream, kind: u8, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| invalid("frame too large"))?;
    let mut head = [0u8; 5];
    head[0] = kind;
    head[1..].copy_from_slice(&len.to_be_bytes());
    s.write_all(&head)?;
    s.write_all(body)
}

fn read_frame(s: &mut UnixStream) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(invalid("frame too large"));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok((head[0], body))
}

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(b);
        self
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

/// A hello: magic, version, pid (the part every version keeps), then the DNS addresses the
/// sender serves, so that a predecessor serving none of them declines before it exports
/// anything.
fn hello_body(addresses: &[String]) -> Vec<u8> {
    let mut w = Writer::default();
    w.0.extend_from_slice(MAGIC);
    w.u16(VERSION).u32(std::process::id());
    w.u32(u32::try_from(addresses.len()).unwrap_or(u32::MAX));
    for a in addresses {
        w.bytes(a.as_bytes());
    }
    w.0
}

/// A hello's version and pid.
fn parse_hello(body: &[u8]) -> Option<(u16, u32)> {
    let mut r = Reader(body);
    if r.take(4)? != MAGIC {
        return None;
    }
    Some((r.u16()?, r.u32()?))
}

/// A hello's addresses (after the version and pid).
fn hello_addresses(body: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader(body);
    r.take(10)?;
    let n = r.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        out.push(r.string()?);
    }
    Some(out)
}

fn send_fds(s: &UnixStream, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    for chunk in fds.chunks(FDS_PER_MESSAGE) {
        let raw: Vec<i32> = chunk.iter().map(|f| f.as_raw_fd()).collect();
        let byte = [b'F'];
        let iov = [io::IoSlice::new(&byte)];
        let cmsg = [ControlMessage::ScmRights(&raw)];
        sendmsg::<()>(s.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
            .map_err(io::Error::from)?;
    }
    Ok(())
}

fn recv_fds(s: &UnixStream, n: usize) -> io::Result<Vec<OwnedFd>> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let want = (n - out.len()).min(FDS_PER_MESSAGE);
        let mut byte = [0u8; 1];
        let mut iov = [io::IoSliceMut::new(&mut byte)];
        let mut space = nix::cmsg_space!([i32; FDS_PER_MESSAGE]);
        let msg = recvmsg::<()>(
            s.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        if msg.bytes == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut got = 0;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    out.push(crate::sys::adopt_received_fd(fd));
                    got += 1;
                }
            }
        }
        if got == 0 || got > want {
            return Err(invalid("file descriptors missing from the offer"));
        }
    }
    Ok(out)
}

fn same_user(s: &UnixStream) -> io::Result<()> {
    let cred = nix::sys::socket::getsockopt(&s.as_fd(), nix::sys::socket::sockopt::PeerCredentials)
        .map_err(io::Error::from)?;
    let me = nix::unistd::geteuid().as_raw();
    if cred.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("peer runs as uid {}, this process as {me}", cred.uid()),
        ));
    }
    Ok(())
}

fn encode_offer(offer: &Offer) -> Vec<u8> {
    let mut w = Writer::default();
    w.u16(VERSION)
        .u32(std::process::id())
        .u32(u32::try_from(offer.sockets.len()).unwrap_or(u32::MAX));
    for s in &offer.sockets {
        w.u8(s.kind.code()).bytes(s.key.as_bytes());
    }
    w.u32(u32::try_from(offer.states.len()).unwrap_or(u32::MAX));
    for st in &offer.states {
        w.bytes(st.block.as_bytes())
            .bytes(st.directive.as_bytes())
            .u32(st.nth)
            .bytes(&st.data);
    }
    w.0
}

/// An offer as read: the predecessor's pid, each socket's kind and key (the descriptors follow
/// apart), and the states.
type DecodedOffer = (u32, Vec<(SockKind, String)>, Vec<PluginState>);

fn decode_offer(body: &[u8]) -> Option<DecodedOffer> {
    let mut r = Reader(body);
    let _version = r.u16()?;
    let pid = r.u32()?;
    let n = r.u32()? as usize;
    let mut socks = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let kind = SockKind::from_code(r.u8()?)?;
        socks.push((kind, r.string()?));
    }
    let m = r.u32()? as usize;
    let mut states = Vec::with_capacity(m.min(4096));
    for _ in 0..m {
        states.push(PluginState {
            block: r.string()?,
            directive: r.string()?,
            nth: r.u32()?,
            data: r.bytes()?.to_vec(),
        });
    }
    Some((pid, socks, states))
}

// ---------------------------------------------------------------------------------------------
// The successor's side.

/// What a successor took from its predecessor, until it tells it that it serves.
pub struct Inherited {
    conn: UnixStream,
    /// The predecessor's pid.
    pub pid: u32,
    sockets: Vec<OfferedSocket>,
    /// The predecessor's plugin states.
    pub states: Vec<PluginState>,
}

/// Why no sockets were taken over.
#[derive(Debug)]
pub enum NoHandoff {
    /// Nobody listens there (the usual first start).
    Nobody,
    /// The predecessor speaks another version.
    Mismatch {
        /// Its pid.
        pid: u32,
        /// Its version.
        version: u16,
    },
    /// The predecessor serves none of our addresses.
    Unrelated {
        /// Its pid.
        pid: u32,
    },
    /// The predecessor was dealing with another starting process (only when several start at
    /// once).
    Busy {
        /// Its pid.
        pid: u32,
    },
    /// The exchange failed.
    Failed(io::Error),
}

/// Connect to a predecessor at `at` and take its offer, if it serves one of `addresses` (the
/// DNS listeners' bind addresses). Blocking: run it off the async workers.
pub fn take_over(at: &Rendezvous, addresses: &[SocketAddr]) -> Result<Inherited, NoHandoff> {
    // A port the kernel picks (0) is never shared with anyone.
    let wanted: Vec<String> = addresses
        .iter()
        .filter(|a| a.port() != 0)
        .map(|a| a.to_string())
        .collect();
    if wanted.is_empty() {
        return Err(NoHandoff::Nobody);
    }
    let addr = at.addr().map_err(NoHandoff::Failed)?;
    let mut conn = match UnixStream::connect_addr(&addr) {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(NoHandoff::Nobody);
        }
        Err(e) => return Err(NoHandoff::Failed(e)),
    };
    let mut step = || -> io::Result<Result<Inherited, NoHandoff>> {
        conn.set_read_timeout(Some(STEP_TIMEOUT))?;
        conn.set_write_timeout(Some(STEP_TIMEOUT))?;
        same_user(&conn)?;
        write_frame(&mut conn, HELLO, &hello_body(&wanted))?;
        let (kind, body) = read_frame(&mut conn)?;
        match kind {
            MISMATCH => {
                let (version, pid) = parse_hello(&body).unwrap_or((0, 0));
                return Ok(Err(NoHandoff::Mismatch { pid, version }));
            }
            UNRELATED => {
                let (_, pid) = parse_hello(&body).unwrap_or((0, 0));
                return Ok(Err(NoHandoff::Unrelated { pid }));
            }
            BUSY => {
                let (_, pid) = parse_hello(&body).unwrap_or((0, 0));
                return Ok(Err(NoHandoff::Busy { pid }));
            }
            OFFER => {}
            _ => return Err(invalid("unexpected frame instead of an offer")),
        }
        let (pid, socks, states) = decode_offer(&body).ok_or_else(|| invalid("bad offer"))?;
        let fds = recv_fds(&conn, socks.len())?;
        let sockets: Vec<OfferedSocket> = socks
            .into_iter()
            .zip(fds)
            .map(|((kind, key), fd)| OfferedSocket { kind, key, fd })
            .collect();
        let shared = sockets
            .iter()
            .any(|s| s.kind != SockKind::Http && wanted.contains(&s.key));
        if !shared {
            write_frame(&mut conn, DECLINE, &[])?;
            return Ok(Err(NoHandoff::Unrelated { pid }));
        }
        Ok(Ok(Inherited {
            conn: conn.try_clone()?,
            pid,
            sockets,
            states,
        }))
    };
    match step() {
        Ok(r) => r,
        Err(e) => Err(NoHandoff::Failed(e)),
    }
}

impl Inherited {
    /// The UDP sockets offered for `addr` (all of its group).
    pub fn take_udp(&mut self, addr: SocketAddr) -> Vec<std::net::UdpSocket> {
        self.take(SockKind::Udp, &addr.to_string())
            .into_iter()
            .map(std::net::UdpSocket::from)
            .collect()
    }

    /// The TCP listener offered for `addr`.
    pub fn take_tcp(&mut self, addr: SocketAddr) -> Option<std::net::TcpListener> {
        self.take(SockKind::Tcp, &addr.to_string())
            .into_iter()
            .next()
            .map(std::net::TcpListener::from)
    }

    /// The HTTP listener offered for the configured address `addr`.
    pub fn take_http(&mut self, addr: &str) -> Option<std::net::TcpListener> {
        self.take(SockKind::Http, addr)
            .into_iter()
            .next()
            .map(std::net::TcpListener::from)
    }

    fn take(&mut self, kind: SockKind, key: &str) -> Vec<OwnedFd> {
        let (out, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sockets)
            .into_iter()
            .partition(|s| s.kind == kind && s.key == key);
        self.sockets = rest;
        out.into_iter().map(|s| s.fd).collect()
    }

    /// How many sockets are offered and not taken yet.
    pub fn untaken(&self) -> usize {
        self.sockets.len()
    }

    /// Tell the predecessor that this process serves, and wait until it has let go of the
    /// rendezvous. Blocking.
    pub fn finish(mut self) -> io::Result<()> {
        // Sockets the new configuration does not use close here; the predecessor closes its
        // copies as it stops.
        self.sockets.clear();
        write_frame(&mut self.conn, TAKEN, &[])?;
        let (kind, _) = read_frame(&mut self.conn)?;
        if kind != RELEASED {
            return Err(invalid("unexpected frame instead of released"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The predecessor's side.

/// The rendezvous this process listens on for a successor, with the thread that accepts there.
pub struct Listener {
    listener: std::sync::Arc<UnixListener>,
    at: Rendezvous,
    closing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A successor that said hello with our version, waiting for the offer.
pub struct Successor {
    conn: UnixStream,
    /// Its pid.
    pub pid: u32,
    /// The DNS addresses it serves.
    pub addresses: Vec<String>,
}

/// Listen on `at` for successors and pass each that speaks our version to `to` (a version
/// mismatch is answered and logged on the spot). For a path, a stale socket file is replaced.
pub fn listen(at: &Rendezvous, to: tokio::sync::mpsc::Sender<Successor>) -> io::Result<Listener> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let addr = at.addr()?;
    if at.is_path() {
        // A socket file nobody answers on is left over from a process that is gone; one that
        // answers belongs to a live process (serving other addresses) and stays its own.
        if UnixStream::connect_addr(&addr).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another process listens there",
            ));
        }
        let _ = std::fs::remove_file(&at.0);
    }
    let listener = std::sync::Arc::new(UnixListener::bind_addr(&addr)?);
    let closing = std::sync::Arc::new(AtomicBool::new(false));
    let thread = {
        let listener = listener.clone();
        let closing = closing.clone();
        let at = at.clone();
        std::thread::Builder::new()
            .name("handoff".into())
            .spawn(move || {
                loop {
                    match listener.accept() {
                        Ok((conn, _)) => match greet(conn) {
                            // Never block here: closing joins this thread. A successor that
                            // comes while another is being served is dropped; it sees the
                            // connection close and binds beside this process.
                            Ok(Some(s)) => match to.try_send(s) {
                                Ok(()) => {}
                                Err(tokio::sync::mpsc::error::TrySendError::Full(mut s)) => {
                                    tracing::debug!(target: "server", "handoff: process {} came while another successor was being served; not offered", s.pid);
                                    let _ = write_frame(&mut s.conn, BUSY, &hello_body(&[]));
                                }
                                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return,
                            },
                            Ok(None) => {}
                            // A peer that hung up before its hello (a liveness probe of a
                            // path rendezvous) is no news.
                            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
                            Err(e) => {
                                tracing::warn!(target: "server", "handoff: refused a successor on {at}: {e}");
                            }
                        },
                        Err(_) if closing.load(Ordering::SeqCst) => return,
                        Err(e) => {
                            tracing::debug!(target: "server", "handoff: accept on {at}: {e}");
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            })?
    };
    Ok(Listener {
        listener,
        at: at.clone(),
        closing,
        thread: Some(thread),
    })
}

/// Read a successor's hello; `None` when it speaks another version (it has been told ours).
fn greet(mut conn: UnixStream) -> io::Result<Option<Successor>> {
    conn.set_read_timeout(Some(STEP_TIMEOUT))?;
    conn.set_write_timeout(Some(STEP_TIMEOUT))?;
    same_user(&conn)?;
    let (kind, body) = read_frame(&mut conn)?;
    let (version, pid) = match (kind, parse_hello(&body)) {
        (HELLO, Some(h)) => h,
        _ => return Err(invalid("not a hello")),
    };
    if version != VERSION {
        tracing::warn!(
            target: "server",
            "handoff: process {pid} speaks hand-off version {version}, this one {VERSION}: it serves beside this one (SO_REUSEPORT) instead of taking over"
        );
        write_frame(&mut conn, MISMATCH, &hello_body(&[]))?;
        return Ok(None);
    }
    let addresses = hello_addresses(&body).ok_or_else(|| invalid("bad hello"))?;
    Ok(Some(Successor {
        conn,
        pid,
        addresses,
    }))
}

impl Listener {
    /// Where it listens.
    pub fn rendezvous(&self) -> &Rendezvous {
        &self.at
    }

    /// Stop listening and let go of the rendezvous, so that a successor can listen there.
    /// Blocking (joins the accepting thread).
    pub fn close(mut self) {
        self.close_now();
    }

    fn close_now(&mut self) {
        use std::sync::atomic::Ordering;
        self.closing.store(true, Ordering::SeqCst);
        // Wakes the thread blocked in accept (it then sees `closing`).
        let _ =
            nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if self.at.is_path() {
            // A successor binds the path only after `released`, so this is still our file.
            let _ = std::fs::remove_file(&self.at.0);
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.close_now();
        }
    }
}

/// How an offer ended.
pub enum Outcome {
    /// The successor serves; the predecessor must stop.
    Taken,
    /// The successor serves other addresses; nothing changes.
    Declined,
}

impl Successor {
    /// Send the offer and wait for the answer. Blocking.
    pub fn offer(&mut self, offer: &Offer) -> io::Result<Outcome> {
        write_frame(&mut self.conn, OFFER, &encode_offer(offer))?;
        let fds: Vec<BorrowedFd<'_>> = offer.sockets.iter().map(|s| s.fd.as_fd()).collect();
        send_fds(&self.conn, &fds)?;
        // The successor binds and starts its instance before it answers.
        self.conn.set_read_timeout(Some(Duration::from_secs(120)))?;
        let (kind, _) = read_frame(&mut self.conn)?;
        match kind {
            TAKEN => Ok(Outcome::Taken),
            DECLINE => Ok(Outcome::Declined),
            _ => Err(invalid("unexpected answer to the offer")),
        }
    }

    /// Tell a successor that serves none of this process's addresses so, before any offer.
    /// Blocking.
    pub fn unrelated(mut self) -> io::Result<()> {
        write_frame(&mut self.conn, UNRELATED, &hello_body(&[]))
    }

    /// After [`Outcome::Taken`]: let go of the rendezvous and tell the successor. Blocking.
    pub fn release(mut self, listener: Listener) -> io::Result<()> {
        listener.close();
        write_frame(&mut self.conn, RELEASED, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_round_trips() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let offer = Offer {
            sockets: vec![OfferedSocket {
                kind: SockKind::Udp,
                key: "127.0.0.1:53".into(),
                fd: OwnedFd::from(sock),
            }],
            states: vec![PluginState {
                block: "dns://.:53 on []".into(),
                directive: "cache".into(),
                nth: 0,
                data: vec![1, 2, 3],
            }],
        };
        let (pid, socks, states) = decode_offer(&encode_offer(&offer)).unwrap();
        assert_eq!(pid, std::process::id());
        assert_eq!(socks, vec![(SockKind::Udp, "127.0.0.1:53".to_string())]);
        assert_eq!(states, offer.states);
        // Any cut of it is refused, not misread.
        let body = encode_offer(&offer);
        for n in 0..body.len() {
            assert!(decode_offer(&body[..n]).is_none(), "{n}");
        }
    }

    #[test]
    fn a_path_rendezvous_is_not_taken_from_a_live_process() {
        let dir = std::env::temp_dir().join(format!("fdns-handoff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let at = Rendezvous(dir.join("sock").to_string_lossy().into_owned());
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let first = listen(&at, tx.clone()).unwrap();
        let err = listen(&at, tx.clone()).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        first.close();
        assert!(
            !std::path::Path::new(&at.0).exists(),
            "closing removes the file"
        );
        // A file left behind by a process that is gone is replaced.
        let stale = UnixListener::bind(&at.0).unwrap();
        drop(stale);
        listen(&at, tx).unwrap().close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hello_checks_magic() {
        let body = hello_body(&["127.0.0.1:53".to_string()]);
        assert_eq!(parse_hello(&body), Some((VERSION, std::process::id())));
        assert_eq!(
            hello_addresses(&body),
            Some(vec!["127.0.0.1:53".to_string()])
        );
        assert_eq!(parse_hello(b"XXXX\0\x01\0\0\0\x01"), None);
    }

    #[test]
    fn descriptors_cross_a_socket_pair() {
        let (a, b) = UnixStream::pair().unwrap();
        let socks: Vec<std::net::UdpSocket> = (0..450)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let want: Vec<SocketAddr> = socks.iter().map(|s| s.local_addr().unwrap()).collect();
        let fds: Vec<BorrowedFd<'_>> = socks.iter().map(|s| s.as_fd()).collect();
        let got = std::thread::scope(|scope| {
            scope.spawn(|| send_fds(&a, &fds).unwrap());
            recv_fds(&b, want.len()).unwrap()
        });
        let addrs: Vec<SocketAddr> = got
            .into_iter()
            .map(|fd| std::net::UdpSocket::from(fd).local_addr().unwrap())
            .collect();
        assert_eq!(addrs, want);
    }
}

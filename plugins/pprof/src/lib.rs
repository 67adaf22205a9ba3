//! # pprof
//!
//! Serves runtime profiles under `/debug/pprof/` on an HTTP listener of its own (default
//! `localhost:6053`), in the places and formats Go's `net/http/pprof` uses, so that
//! `go tool pprof http://ADDRESS/debug/pprof/profile` works against ferrodns as it does
//! against CoreDNS:
//!
//! - `profile?seconds=N`: a CPU profile (default 30 s), sampled with the `pprof` crate and served
//!   as gzipped `profile.proto`;
//! - `heap` and `allocs`: the live heap, sampled by jemalloc (the binaries' allocator, built
//!   with profiling compiled in but inactive until a `pprof` listener starts), as gzipped
//!   `profile.proto` with symbolized frames;
//! - `goroutine` and `threadcreate`: the process's OS threads (a Rust process has no goroutines);
//! - `block` and `mutex`: valid, empty profiles (nothing records them in a Rust process);
//! - `cmdline`, `symbol`, the index page, and `trace` (refused: Go execution traces only exist
//!   in Go programs).
//!
//! As in CoreDNS, each server block's `pprof` opens its own listener with `SO_REUSEPORT` at
//! startup and closes it when its instance stops, so a reload that keeps the address never
//! leaves it unserved. The plugin adds no request handler.

mod http;
mod profiles;
mod setup;
pub use profiles::{ProfileError, gzip};
pub use setup::parse;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

use ferrodns_go::net::split_host_port;
use ferrodns_plugin::{Descriptor, Lifecycle, SetupError, async_trait};

/// The directive name.
pub const NAME: &str = "pprof";

/// The plugin's descriptor, listed in `plugin.cfg`.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// CoreDNS's default address.
pub const DEFAULT_ADDR: &str = "localhost:6053";

/// The path everything is served under.
pub const PATH: &str = "/debug/pprof";

const TARGET: &str = "plugin/pprof";

/// What a block's `pprof` line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `host:port` to listen on.
    pub addr: String,
    /// The `block` rate: 0 when `block` is absent, 1 when it has no value. Kept for parity
    /// with CoreDNS's syntax: a Rust process records no block profile, so it changes nothing.
    pub block_rate: i64,
}

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("listen tcp {addr}: {reason}")]
pub struct ListenError {
    /// The address as configured.
    pub addr: String,
    /// Go's wording of the cause (`bind: address already in use`).
    pub reason: String,
}

/// How many `pprof` listeners run in the process: heap sampling is on while there is one.
static LISTENERS: AtomicUsize = AtomicUsize::new(0);

/// One block's listener.
pub(crate) struct Pprof {
    pub(crate) cfg: Config,
    pub(crate) running: Mutex<Option<watch::Sender<bool>>>,
}

impl Pprof {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<watch::Sender<bool>>> {
        match self.running.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    async fn stop(&self) {
        let Some(stop) = self.slot().take() else {
            return;
        };
        let _ = stop.send(true);
        if LISTENERS.fetch_sub(1, Ordering::SeqCst) == 1 {
            profiles::heap_sampling(false).await;
        }
    }
}

#[async_trait]
impl Lifecycle for Pprof {
    async fn on_startup(&self) -> Result<(), SetupError> {
        let listener = match listen(&self.cfg.addr) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(target: TARGET, "Failed to start pprof handler: {e}");
                return Err(SetupError::new(e.to_string()));
            }
        };
        let (tx, rx) = watch::channel(false);
        tokio::spawn(http::serve(listener, rx));
        if let Some(old) = self.slot().replace(tx) {
            let _ = old.send(true);
        } else if LISTENERS.fetch_add(1, Ordering::SeqCst) == 0 {
            profiles::heap_sampling(true).await;
        }
        Ok(())
    }

    async fn on_shutdown(&self) {
        self.stop().await;
    }
}

impl Drop for Pprof {
    fn drop(&mut self) {
        if let Some(stop) = self.slot().take() {
            let _ = stop.send(true);
            LISTENERS.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Open a listener as Go's `net.Listen("tcp", addr)` with `SO_REUSEPORT` would: an empty host
/// is every address (both families), a name is resolved and its first IPv4 address used.
pub fn listen(addr: &str) -> Result<tokio::net::TcpListener, ListenError> {
    let fail = |reason: String| ListenError {
        addr: addr.to_string(),
        reason,
    };
    let (host, port) = split_host_port(addr).map_err(|e| fail(e.to_string()))?;
    let port: u16 = port
        .parse()
        .map_err(|_| fail(format!("lookup tcp/{port}: unknown port")))?;
    let sa = if host.is_empty() {
        SocketAddr::from(([0u16; 8], port))
    } else if let Ok(ip) = host.parse() {
        SocketAddr::new(ip, port)
    } else {
        let found: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|_| fail(format!("lookup {host}: no such host")))?
            .collect();
        found
            .iter()
            .find(|a| a.is_ipv4())
            .or(found.first())
            .copied()
            .ok_or_else(|| fail(format!("lookup {host}: no such host")))?
    };
    let bind = |sa: SocketAddr| -> std::io::Result<std::net::TcpListener> {
        let s = Socket::new(Domain::for_address(sa), Type::STREAM, Some(Protocol::TCP))?;
        if sa.is_ipv6() && sa.ip().is_unspecified() {
            s.set_only_v6(false)?;
        }
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.set_nonblocking(true)?;
        s.bind(&sa.into())?;
        s.listen(1024)?;
        Ok(s.into())
    };
    let std_listener = match bind(sa) {
        Ok(l) => l,
        Err(_) if host.is_empty() => bind(SocketAddr::from(([0u8; 4], port)))
            .map_err(|e| fail(format!("bind: {}", ferrodns_go::os::io_text(&e))))?,
        Err(e) => return Err(fail(format!("bind: {}", ferrodns_go::os::io_text(&e)))),
    };
    tokio::net::TcpListener::from_std(std_listener).map_err(|e| fail(ferrodns_go::os::io_text(&e)))
}

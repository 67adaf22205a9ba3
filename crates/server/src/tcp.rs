//! The TCP front: length-prefixed messages, served one after another per connection as
//! CoreDNS's DNS library does, with its timeouts (by default 3 s to read the first query, 5 s to
//! write a reply, 10 s idle between queries, no limit on queries per connection; the `timeouts`
//! plugin changes them per listener, see [`Limits`]) and a bound on open connections. Each
//! query holds a place in the process's memory budget while it is served; when there is none,
//! it is answered REFUSED without running the chain.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use socket2::{Domain, Protocol as SockProto, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::timeout;

use ferrodns_plugin::budget;
use ferrodns_plugin::{ConnTimeouts, Protocol};

use crate::dispatch::Dispatcher;

/// Time allowed to read the first query of a connection.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed to write a reply.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a connection may sit idle between queries.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// When the listener stops (a successor took it over, or the process ends), a connection
/// still answers each query that arrives without a pause this long, then closes.
pub const DRAIN_PAUSE: Duration = Duration::from_millis(50);
/// The longest a connection goes on answering after the listener stopped.
pub const DRAIN_MAX: Duration = Duration::from_secs(1);
/// Open connections per listener; further clients wait in the accept backlog.
pub const MAX_CONNECTIONS: usize = 4096;

/// The timeouts and query limit of a connection-oriented listener (TCP now; the TLS and HTTPS
/// fronts are to read the same): CoreDNS's defaults, overridden field by field by the
/// `timeouts` settings of the blocks served there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time allowed to read the first query of a connection (length and body together).
    pub read: Duration,
    /// Time allowed to write a reply.
    pub write: Duration,
    /// Time allowed to read each later query (waiting included).
    pub idle: Duration,
    /// Queries served on one connection before it is closed; `None` is unlimited.
    pub max_queries: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read: READ_TIMEOUT,
            write: WRITE_TIMEOUT,
            idle: IDLE_TIMEOUT,
            max_queries: None,
        }
    }
}

impl Limits {
    /// Apply one block's settings on top: each value it sets replaces the current one (so over
    /// the blocks of a listener, in file order, the last one setting a value wins, as in
    /// CoreDNS's server constructor).
    pub fn apply(&mut self, t: &ConnTimeouts) {
        if let Some(d) = t.read {
            self.read = d;
        }
        if let Some(d) = t.write {
            self.write = d;
        }
        if let Some(d) = t.idle {
            self.idle = d;
        }
        if let Some(n) = t.max_queries {
            // -1 (or anything not positive, which setup rejects) means unlimited.
            self.max_queries = usize::try_from(n).ok().filter(|&n| n > 0);
        }
    }
}

/// Bind a TCP listener (dual-stack on the IPv6 wildcard).
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let wildcard_v6 = matches!(addr, SocketAddr::V6(a) if a.ip().is_unspecified());
    let socket = match Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(SockProto::TCP),
    ) {
        Ok(s) => s,
        Err(_) if wildcard_v6 => return bind(SocketAddr::from(([0, 0, 0, 0], addr.port()))),
        Err(e) => return Err(e),
    };
    if wildcard_v6 {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    match socket.bind(&addr.into()) {
        Ok(()) => {}
        Err(_) if wildcard_v6 => return bind(SocketAddr::from(([0, 0, 0, 0], addr.port()))),
        Err(e) => return Err(e),
    }
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Accept and serve connections until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    dispatch: Arc<ArcSwap<Dispatcher>>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            biased;
            _ = stop.changed() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(target: "server", "TCP accept: {e}");
                    continue;
                }
            },
        };
        let dispatch = dispatch.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            connection(stream, peer, dispatch, stop).await;
        });
    }
    // Connections finish the query they are answering, then close.
    crate::run::drain(&slots, MAX_CONNECTIONS).await;
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    dispatch: Arc<ArcSwap<Dispatcher>>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    // The limits in force when the connection was accepted (a reload affects new ones).
    let limits = dispatch.load().limits();
    let mut served = 0usize;
    let mut draining_since: Option<tokio::time::Instant> = None;
    loop {
        if limits.max_queries.is_some_and(|max| served >= max) {
            return;
        }
        // As CoreDNS's DNS library: one deadline for the whole message (length and body), the
        // read timeout for the first query, the idle timeout for each later one.
        let wait = if served == 0 {
            limits.read
        } else {
            limits.idle
        };
        // One deadline for waiting and reading. The wait is a peek, which consumes nothing, so
        // a stop may end it; a message once begun is read whole. (Readiness alone would not
        // do: it may still be set from the last read when no byte is waiting.)
        let deadline = tokio::time::Instant::now() + wait;
        let mut first = [0u8; 1];
        let waiting = if *stop.borrow() {
            // Stopping: answer what the client already sent, close when it pauses (or, for a
            // client that never pauses, after DRAIN_MAX: the grace period must not run out
            // while it is still being served).
            let since = *draining_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() >= DRAIN_MAX {
                return;
            }
            timeout(DRAIN_PAUSE, stream.peek(&mut first)).await.ok()
        } else {
            tokio::select! {
                biased;
                r = stop.changed() => {
                    if r.is_err() {
                        return;
                    }
                    continue;
                }
                r = tokio::time::timeout_at(deadline, stream.peek(&mut first)) => r.ok(),
            }
        };
        if !matches!(waiting, Some(Ok(n)) if n > 0) {
            return;
        }
        let got = tokio::time::timeout_at(deadline, read_message(&mut stream)).await;
        let Ok(Ok(buf)) = got else {
            return;
        };
        served += 1;
        // A place in the process's memory budget, or REFUSED without running the chain.
        let reply = match budget::global().try_query() {
            Some(_budget) => {
                let d = dispatch.load_full();
                d.handle(Bytes::from(buf), peer, local, Protocol::Tcp).await
            }
            None => crate::wire::budget_refused(&buf),
        };
        let Some(reply) = reply else {
            continue;
        };
        let Ok(rlen) = u16::try_from(reply.len()) else {
            continue;
        };
        let mut out = Vec::with_capacity(reply.len() + 2);
        out.extend_from_slice(&rlen.to_be_bytes());
        out.extend_from_slice(&reply);
        match timeout(limits.write, stream.write_all(&out)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

/// Read one length-prefixed message.
async fn read_message(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

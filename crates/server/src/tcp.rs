//! The TCP front: length-prefixed messages with CoreDNS's timeouts (by default 3 s to read the
//! first query, 5 s to write a reply, 10 s idle between queries, no limit on queries per
//! connection; the `timeouts` plugin changes them per listener, see [`Limits`]) and a bound on
//! open connections. Unlike CoreDNS's DNS library, which answers a connection's queries one
//! after another, pipelined queries are answered concurrently, each as soon as it is ready
//! (RFC 7766, 6.2.1.1), at most [`MAX_PIPELINED`] per connection and [`MAX_IN_FLIGHT`] per
//! listener. Each query holds a place in the process's memory budget while it is served; when
//! there is none, it is answered REFUSED without running the chain.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use socket2::{Domain, Protocol as SockProto, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::timeout;

use ferrodns_plugin::budget;
use ferrodns_plugin::{ConnTimeouts, Protocol};

use crate::dispatch::{Dispatcher, MAX_IN_FLIGHT};

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
/// Queries of one connection answered at once. A client that pipelines gets each answer as it
/// is ready, in any order (RFC 7766, 6.2.1.1), so one slow upstream exchange does not hold up
/// the queries sent after it; past this many, the connection is read no further until one is
/// answered.
pub const MAX_PIPELINED: usize = 32;
/// Every place of a connection's pipeline, to wait until all its answers are out.
const ALL_PIPELINED: u32 = MAX_PIPELINED as u32;
/// Bytes of ready answers gathered into one write.
const WRITE_BATCH: usize = 16 << 10;

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
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
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
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            let _permit = permit;
            connection(stream, peer, dispatch, stop, in_flight).await;
        });
    }
    // Connections answer what they read, then close.
    crate::run::drain(&slots, MAX_CONNECTIONS).await;
}

/// Why a connection's reading ended.
enum Wait {
    /// A message is waiting to be read.
    Ready,
    /// Time to close (a timeout, the end of the stream, a failed write, a drain done).
    Close,
    /// The stop came: look again, as a stopping connection does.
    Stopped,
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    dispatch: Arc<ArcSwap<Dispatcher>>,
    mut stop: watch::Receiver<bool>,
    in_flight: Arc<Semaphore>,
) {
    let _ = stream.set_nodelay(true);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    // The limits in force when the connection was accepted (a reload affects new ones).
    let limits = dispatch.load().limits();
    let (mut rd, wr) = stream.into_split();
    let (replies, queue) = mpsc::channel::<Vec<u8>>(MAX_PIPELINED);
    let writer = tokio::spawn(write_replies(wr, queue, limits.write));
    let pipeline = Arc::new(Semaphore::new(MAX_PIPELINED));
    let mut served = 0usize;
    let mut draining_since: Option<tokio::time::Instant> = None;
    loop {
        if limits.max_queries.is_some_and(|max| served >= max) {
            break;
        }
        // As CoreDNS's DNS library: one deadline for the whole message (length and body), the
        // read timeout for the first query, the idle timeout for each later one. A client
        // waiting for answers still being worked on is not idle: the idle time starts again
        // once they are written.
        let wait = if served == 0 {
            limits.read
        } else {
            limits.idle
        };
        let mut deadline = tokio::time::Instant::now() + wait;
        let mut first = [0u8; 1];
        let outcome = loop {
            let busy = pipeline.available_permits() < MAX_PIPELINED;
            // The wait is a peek, which consumes nothing, so a stop may end it; a message once
            // begun is read whole. (Readiness alone would not do: it may still be set from
            // the last read when no byte is waiting.)
            let peeked = if *stop.borrow() {
                // Stopping: answer what the client already sent, close when it pauses (or,
                // for a client that never pauses, after DRAIN_MAX: the grace period must not
                // run out while it is still being served).
                let since = *draining_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= DRAIN_MAX {
                    break Wait::Close;
                }
                match timeout(DRAIN_PAUSE, rd.peek(&mut first)).await {
                    Ok(r) => r,
                    Err(_) => break Wait::Close,
                }
            } else {
                tokio::select! {
                    biased;
                    r = stop.changed() => {
                        if r.is_err() {
                            break Wait::Close;
                        }
                        break Wait::Stopped;
                    }
                    () = replies.closed() => break Wait::Close,
                    r = tokio::time::timeout_at(deadline, rd.peek(&mut first)) => match r {
                        Ok(r) => r,
                        Err(_) if busy => {
                            // Answers still owed: wait for them (or for the client), then
                            // give it the idle time afresh.
                            tokio::select! {
                                () = replies.closed() => break Wait::Close,
                                r = pipeline.acquire_many(ALL_PIPELINED) => drop(r),
                                r = rd.peek(&mut first) => if !matches!(r, Ok(n) if n > 0) {
                                    break Wait::Close;
                                },
                            }
                            deadline = tokio::time::Instant::now() + limits.idle;
                            continue;
                        }
                        Err(_) => break Wait::Close,
                    },
                }
            };
            break match peeked {
                Ok(n) if n > 0 => Wait::Ready,
                _ => Wait::Close,
            };
        };
        match outcome {
            Wait::Ready => {}
            Wait::Stopped => continue,
            Wait::Close => break,
        }
        let got = tokio::time::timeout_at(deadline, read_message(&mut rd)).await;
        let Ok(Ok(buf)) = got else {
            break;
        };
        served += 1;
        // A place among the connection's and the listener's queries being answered; waiting
        // for one holds back the client (TCP's own flow control), it does not refuse.
        let places = async {
            let mine = pipeline.clone().acquire_owned().await.ok()?;
            let shared = in_flight.clone().acquire_owned().await.ok()?;
            Some((mine, shared))
        };
        let places = tokio::select! {
            () = replies.closed() => None,
            p = places => p,
        };
        let Some(places) = places else {
            break;
        };
        let replies = replies.clone();
        let dispatch = dispatch.load_full();
        tokio::spawn(async move {
            let _places = places;
            // A place in the process's memory budget, or REFUSED without running the chain.
            let reply = match budget::global().try_query() {
                Some(_budget) => {
                    dispatch
                        .handle(Bytes::from(buf), peer, local, Protocol::Tcp)
                        .await
                }
                None => crate::wire::budget_refused(&buf),
            };
            let Some(reply) = reply else {
                return;
            };
            let Ok(rlen) = u16::try_from(reply.len()) else {
                return;
            };
            let mut out = Vec::with_capacity(reply.len() + 2);
            out.extend_from_slice(&rlen.to_be_bytes());
            out.extend_from_slice(&reply);
            let _ = replies.send(out).await;
        });
    }
    // Answer what was read, then close: the writer ends when the last query's task is done.
    drop(replies);
    let _ = writer.await;
}

/// Write answers as they come, those ready together in one write; stop at the first write that
/// fails or takes longer than `limit` (the client is gone or does not read).
async fn write_replies(
    mut wr: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Vec<u8>>,
    limit: Duration,
) {
    while let Some(mut out) = queue.recv().await {
        while out.len() < WRITE_BATCH {
            match queue.try_recv() {
                Ok(more) => out.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        match timeout(limit, wr.write_all(&out)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

/// Read one length-prefixed message.
async fn read_message(stream: &mut OwnedReadHalf) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

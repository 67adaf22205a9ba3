//! The TCP front: length-prefixed messages, served one after another per connection as
//! CoreDNS's DNS library does, with its timeouts (3 s to read a query, 5 s to write a reply,
//! 10 s idle between queries) and a bound on open connections.

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

use ferrodns_plugin::Protocol;

use crate::dispatch::Dispatcher;

/// Time allowed to read the first query of a connection.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed to write a reply.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a connection may sit idle between queries.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections per listener; further clients wait in the accept backlog.
pub const MAX_CONNECTIONS: usize = 4096;

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
    let mut first = true;
    loop {
        let wait = if first { READ_TIMEOUT } else { IDLE_TIMEOUT };
        first = false;
        let mut len = [0u8; 2];
        let got = tokio::select! {
            biased;
            _ = stop.changed() => return,
            r = timeout(wait, stream.read_exact(&mut len)) => r,
        };
        if !matches!(got, Ok(Ok(_))) {
            return;
        }
        let n = usize::from(u16::from_be_bytes(len));
        let mut buf = vec![0u8; n];
        match timeout(READ_TIMEOUT, stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let d = dispatch.load_full();
        let Some(reply) = d.handle(Bytes::from(buf), peer, local, Protocol::Tcp).await else {
            continue;
        };
        let Ok(rlen) = u16::try_from(reply.len()) else {
            continue;
        };
        let mut out = Vec::with_capacity(reply.len() + 2);
        out.extend_from_slice(&rlen.to_be_bytes());
        out.extend_from_slice(&reply);
        match timeout(WRITE_TIMEOUT, stream.write_all(&out)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

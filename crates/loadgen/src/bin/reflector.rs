//! `ferrodns-reflector`: the floor a DNS server is measured against. It answers every query by
//! sending the same bytes back with the QR bit set (no answer records, no parsing beyond the
//! header), over UDP with the server's own batched `recvmmsg`/`sendmmsg` loop, and over TCP
//! (pipelined, length-prefixed). Whatever a real server spends above this per query is its own
//! work; the kernel's share is common to both. It is also the upstream of the miss benchmarks:
//! the fastest upstream there is.

use std::io;
use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use ferrodns_pkg::udp::QuietUdpSocket;
use ferrodns_server::sys::{RecvBatch, SendBatch};
use ferrodns_server::udp::flush;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "\
usage: ferrodns-reflector --listen ADDR:PORT [--threads N] [--batch N]

Answers every DNS query on ADDR:PORT (UDP and TCP) with its own bytes, the QR bit set.
Prints `[INFO] reflector: ready on ADDR:PORT` on stderr when it listens; runs until killed.

  --listen ADDR:PORT  address to serve (port 0 picks one; the ready line tells which)
  --threads N         UDP sockets and threads, one SO_REUSEPORT socket each (1)
  --batch N           datagrams per recvmmsg (64)
";

fn main() -> Result<()> {
    let mut listen: Option<SocketAddr> = None;
    let mut threads = 1usize;
    let mut batch = 64usize;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let flag = flag.trim_start_matches('-').to_string();
        let mut value = || it.next().with_context(|| format!("-{flag} needs a value"));
        match flag.as_str() {
            "listen" => listen = Some(value()?.parse().context("bad --listen")?),
            "threads" => threads = value()?.parse().context("bad --threads")?,
            "batch" => batch = value()?.parse().context("bad --batch")?,
            "h" | "help" => {
                print!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown flag -{other}\n{USAGE}"),
        }
    }
    let Some(listen) = listen else {
        bail!("--listen is required\n{USAGE}");
    };
    // The UDP port is chosen first (when 0), the TCP listener and the other sockets join it.
    let first = ferrodns_server::udp::bind(listen).context("binding UDP")?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..threads.max(1) {
        sockets.push(ferrodns_server::udp::bind(addr).context("binding UDP")?);
    }
    let tcp = std::net::TcpListener::bind(addr).context("binding TCP")?;
    tcp.set_nonblocking(true)?;
    eprintln!("[INFO] reflector: ready on {addr}");
    let mut handles = Vec::new();
    for (i, s) in sockets.into_iter().enumerate() {
        let tcp = if i == 0 { Some(tcp.try_clone()?) } else { None };
        handles.push(std::thread::spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()?;
            rt.block_on(async move {
                if let Some(l) = tcp {
                    tokio::spawn(serve_tcp(TcpListener::from_std(l)?));
                }
                serve_udp(QuietUdpSocket::from_std(s)?, batch).await
            })
        }));
    }
    for h in handles {
        match h.join() {
            Ok(r) => r?,
            Err(_) => bail!("a reflector thread panicked"),
        }
    }
    Ok(())
}

async fn serve_udp(socket: QuietUdpSocket, batch: usize) -> Result<()> {
    let mut rx = RecvBatch::new(batch);
    let mut out = SendBatch::default();
    loop {
        // Read as the server's front reads (see `ferrodns_server::udp`).
        let n = match socket.recv_batch(&mut rx).await? {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        for i in 0..n {
            let Some((bytes, src)) = rx.get(i) else {
                continue;
            };
            if bytes.len() < 12 || bytes[2] & 0x80 != 0 {
                continue;
            }
            out.push_mut(bytes, src)[2] |= 0x80;
        }
        // As the server's front sends: a datagram the kernel refuses is skipped.
        flush(&mut out, &socket).await;
    }
}

async fn serve_tcp(listener: TcpListener) -> io::Result<()> {
    loop {
        let (conn, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = reflect_stream(conn).await;
        });
    }
}

/// Reflect every complete frame read so far in one write: a pipelining client gets its
/// answers back in as few segments as it sent its queries.
async fn reflect_stream(mut conn: TcpStream) -> io::Result<()> {
    let _ = conn.set_nodelay(true);
    let mut inbuf: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut out: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let got = conn.read(&mut chunk).await?;
        if got == 0 {
            return Ok(());
        }
        inbuf.extend_from_slice(&chunk[..got]);
        let mut at = 0;
        while inbuf.len() - at >= 2 {
            let n = usize::from(u16::from_be_bytes([inbuf[at], inbuf[at + 1]]));
            if inbuf.len() - at < 2 + n {
                break;
            }
            if n >= 12 {
                let start = out.len();
                out.extend_from_slice(&inbuf[at..at + 2 + n]);
                out[start + 4] |= 0x80;
            }
            at += 2 + n;
        }
        inbuf.drain(..at);
        if !out.is_empty() {
            conn.write_all(&out).await?;
            out.clear();
        }
    }
}

//! A stand-in DNS server for trying `ferrodns-load` without a real one: it answers every UDP
//! and TCP query on the address given (default 127.0.0.1:0) with an empty NOERROR answer, and
//! prints `listening on ADDR`.
//!
//! ```sh
//! cargo run --release -p ferrodns-loadgen --example responder -- 127.0.0.1:5300
//! ```

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

fn answer(buf: &mut [u8]) {
    buf[2] |= 0x80;
    buf[3] = 0x80;
}

async fn serve_tcp(mut s: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 65537];
    loop {
        let len = s.read_u16().await? as usize;
        s.read_exact(&mut buf[2..2 + len]).await?;
        buf[..2].copy_from_slice(&(len as u16).to_be_bytes());
        if len >= 12 {
            answer(&mut buf[2..]);
            s.write_all(&buf[..2 + len]).await?;
        }
    }
}

fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:0")
        .parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // A big receive buffer (as far as net.core.rmem_max allows), so that this stand-in,
        // one thread on a busy machine, drops less than a real server would.
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            None,
        )?;
        let _ = sock.set_recv_buffer_size(4 << 20);
        sock.bind(&addr.into())?;
        sock.set_nonblocking(true)?;
        let udp = UdpSocket::from_std(sock.into())?;
        let tcp = TcpListener::bind(udp.local_addr()?).await?;
        println!("listening on {}", udp.local_addr()?);
        tokio::spawn(async move {
            while let Ok((s, _)) = tcp.accept().await {
                tokio::spawn(serve_tcp(s));
            }
        });
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = udp.recv_from(&mut buf).await?;
            if n >= 12 {
                answer(&mut buf[..n]);
                let _ = udp.send_to(&buf[..n], from).await;
            }
        }
    })
}

//! `ferrodns-reflector`, the floor of `cargo xtask bench`: every query comes back as it was
//! sent, QR set, over UDP and over pipelined TCP.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

#[tokio::test]
async fn the_reflector_echoes_over_udp_and_tcp() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrodns-reflector"))
        .args(["--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\n") {
        assert_eq!(err.read(&mut b).await.unwrap(), 1, "reflector exited");
        line.push(b[0]);
    }
    let line = String::from_utf8(line).unwrap();
    let addr: SocketAddr = line.trim().rsplit(' ').next().unwrap().parse().unwrap();
    let q: Vec<u8> = vec![
        0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1,
    ];
    let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    u.send_to(&q, addr).await.unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), u.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let mut want = q.clone();
    want[2] |= 0x80;
    assert_eq!(&buf[..n], &want[..]);
    // Two pipelined TCP queries come back, in order, QR set.
    let mut t = TcpStream::connect(addr).await.unwrap();
    let mut framed = Vec::new();
    for id in [1u8, 2] {
        framed.extend_from_slice(&(q.len() as u16).to_be_bytes());
        let mut m = q.clone();
        m[1] = id;
        framed.extend_from_slice(&m);
    }
    t.write_all(&framed).await.unwrap();
    for id in [1u8, 2] {
        let len = t.read_u16().await.unwrap();
        let mut m = vec![0u8; usize::from(len)];
        t.read_exact(&mut m).await.unwrap();
        assert_eq!((m[1], m[2] & 0x80), (id, 0x80));
    }
}

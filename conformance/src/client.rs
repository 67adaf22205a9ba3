//! Sending one message to both servers at the same moment, from the same client address and
//! port (so that answers mentioning the client, like whoami's, are comparable), over UDP or TCP.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// What one server did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The reply's bytes (without the TCP length prefix).
    Reply(Vec<u8>),
    /// No reply; why the harness stopped waiting.
    NoReply(String),
}

impl Outcome {
    /// Whether there was a reply.
    pub fn is_reply(&self) -> bool {
        matches!(self, Outcome::Reply(_))
    }
}

fn loopback_for(target: &SocketAddr) -> IpAddr {
    match target {
        SocketAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
        SocketAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    }
}

/// Send `msg` over UDP from one socket to every target; wait until each has answered or
/// `timeout` passed. The first datagram from each target counts.
pub fn udp(msg: &[u8], targets: &[SocketAddr], timeout: Duration) -> Vec<Outcome> {
    let mut out = vec![Outcome::NoReply("timeout".into()); targets.len()];
    let Some(first) = targets.first() else {
        return out;
    };
    let sock = match UdpSocket::bind(SocketAddr::new(loopback_for(first), 0)) {
        Ok(s) => s,
        Err(e) => {
            return vec![Outcome::NoReply(format!("harness: bind: {e}")); targets.len()];
        }
    };
    for (i, t) in targets.iter().enumerate() {
        if let Err(e) = sock.send_to(msg, t) {
            out[i] = Outcome::NoReply(format!("send failed: {e}"));
        }
    }
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    let mut got = vec![false; targets.len()];
    while got.iter().any(|g| !g) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if sock.set_read_timeout(Some(deadline - now)).is_err() {
            break;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                if let Some(i) = targets.iter().position(|t| *t == from)
                    && !got[i]
                {
                    got[i] = true;
                    out[i] = Outcome::Reply(buf[..n].to_vec());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            // ICMP errors surface here on some systems; keep waiting for the others.
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    out
}

/// Send `msg` over TCP to every target, concurrently, each connection bound to the same
/// local port.
pub fn tcp(msg: &[u8], targets: &[SocketAddr], timeout: Duration) -> Vec<Outcome> {
    let Some(first) = targets.first() else {
        return Vec::new();
    };
    let local = SocketAddr::new(loopback_for(first), 0);
    let mut sockets = Vec::new();
    let mut port = 0;
    for _ in targets {
        let s = match bound_socket(SocketAddr::new(local.ip(), port)) {
            Ok(s) => s,
            Err(e) => return vec![Outcome::NoReply(format!("harness: bind: {e}")); targets.len()],
        };
        if port == 0 {
            port = s
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map(|a| a.port())
                .unwrap_or(0);
        }
        sockets.push(s);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = sockets
            .into_iter()
            .zip(targets)
            .map(|(s, t)| scope.spawn(move || tcp_one(s, msg, *t, timeout)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Outcome::NoReply("harness: client thread panicked".into()))
            })
            .collect()
    })
}

fn bound_socket(local: SocketAddr) -> std::io::Result<Socket> {
    let s = Socket::new(
        Domain::for_address(local),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    s.bind(&local.into())?;
    Ok(s)
}

fn tcp_one(s: Socket, msg: &[u8], target: SocketAddr, timeout: Duration) -> Outcome {
    let deadline = Instant::now() + timeout;
    if let Err(e) = s.connect_timeout(&target.into(), timeout) {
        return Outcome::NoReply(format!("connect failed: {}", e.kind()));
    }
    let mut stream: TcpStream = s.into();
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    framed.extend_from_slice(msg);
    if let Err(e) = stream.write_all(&framed) {
        return Outcome::NoReply(format!("write failed: {}", e.kind()));
    }
    let mut read_exact = |buf: &mut [u8]| -> Result<(), String> {
        let mut off = 0;
        while off < buf.len() {
            let now = Instant::now();
            if now >= deadline {
                return Err("timeout".into());
            }
            let _ = stream.set_read_timeout(Some(deadline - now));
            match stream.read(&mut buf[off..]) {
                Ok(0) => return Err("connection closed".into()),
                Ok(n) => off += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err("timeout".into());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read failed: {}", e.kind())),
            }
        }
        Ok(())
    };
    let mut len = [0u8; 2];
    if let Err(why) = read_exact(&mut len) {
        return Outcome::NoReply(why);
    }
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    match read_exact(&mut body) {
        Ok(()) => Outcome::Reply(body),
        Err(why) => Outcome::NoReply(format!("partial reply ({why})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_and_tcp_see_the_same_client_port() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let targets = [a.local_addr().unwrap(), b.local_addr().unwrap()];
        let echo = |s: UdpSocket| {
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                let (n, from) = s.recv_from(&mut buf).unwrap();
                s.send_to(&from.port().to_be_bytes(), from).unwrap();
                n
            })
        };
        let (ha, hb) = (echo(a), echo(b));
        let out = udp(b"hello", &targets, Duration::from_secs(2));
        assert_eq!(ha.join().unwrap(), 5);
        assert_eq!(hb.join().unwrap(), 5);
        assert!(out[0].is_reply());
        assert_eq!(out[0], out[1]);

        let la = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let lb = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let targets = [la.local_addr().unwrap(), lb.local_addr().unwrap()];
        let serve = |l: std::net::TcpListener| {
            std::thread::spawn(move || {
                let (mut c, from) = l.accept().unwrap();
                let mut len = [0u8; 2];
                c.read_exact(&mut len).unwrap();
                let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
                c.read_exact(&mut body).unwrap();
                c.write_all(&[0, 2]).unwrap();
                c.write_all(&from.port().to_be_bytes()).unwrap();
            })
        };
        let (ha, hb) = (serve(la), serve(lb));
        let out = tcp(b"hello", &targets, Duration::from_secs(2));
        ha.join().unwrap();
        hb.join().unwrap();
        assert!(out[0].is_reply(), "{out:?}");
        assert_eq!(out[0], out[1]);
    }
}

//! Resolving host names given as TO addresses, once at setup: through the system resolver, or
//! with A and AAAA queries to the `resolver` addresses in turn (2s timeouts), as CoreDNS does.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use crate::config::split_host_port;
use crate::msg;
use ferrodns_go::net::join_host_port;

/// The addresses of `host`, or the reason there are none.
pub fn lookup(host: &str, resolvers: &[String]) -> Result<Vec<IpAddr>, String> {
    if resolvers.is_empty() {
        let addrs = (host, 0u16)
            .to_socket_addrs()
            .map_err(|_| match system_nameserver() {
                // Go's resolver names the server that said so.
                Some(ns) => format!("lookup {host} on {ns}: no such host"),
                None => format!("lookup {host}: no such host"),
            })?;
        let ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
        if ips.is_empty() {
            return Err(format!("no addresses found for \"{host}\""));
        }
        return Ok(ips);
    }
    let mut last_err: Option<String> = None;
    for r in resolvers {
        let addr = if split_host_port(r).is_some() {
            r.clone()
        } else {
            join_host_port(r, "53")
        };
        let Ok(sa) = addr.parse::<SocketAddr>() else {
            last_err = Some(format!("dial udp: address {addr}: invalid address"));
            continue;
        };
        let mut ips = Vec::new();
        match query(sa, host, 1) {
            Ok(mut v) => ips.append(&mut v),
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        }
        match query(sa, host, 28) {
            Ok(mut v) => ips.append(&mut v),
            Err(e) => {
                if !ips.is_empty() {
                    return Ok(ips);
                }
                last_err = Some(e);
                continue;
            }
        }
        if !ips.is_empty() {
            return Ok(ips);
        }
    }
    match last_err {
        Some(e) => Err(format!("no addresses found for \"{host}\": {e}")),
        None => Err(format!("no addresses found for \"{host}\"")),
    }
}

/// One query over UDP; the A or AAAA addresses in the answer.
fn query(server: SocketAddr, host: &str, qtype: u16) -> Result<Vec<IpAddr>, String> {
    let name = ferrodns_plugin::corefile::fqdn(host);
    let mut q = msg::probe_query(&name, true);
    let n = q.len();
    q[n - 4..n - 2].copy_from_slice(&qtype.to_be_bytes());
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    sock.connect(server).map_err(|e| e.to_string())?;
    sock.send(&q)
        .map_err(|e| format!("write udp {server}: {e}"))?;
    let mut buf = vec![0u8; 65535];
    loop {
        let len = sock
            .recv(&mut buf)
            .map_err(|_| format!("read udp {server}: i/o timeout"))?;
        let reply = &buf[..len];
        if len < 12 || reply[0..2] != q[0..2] {
            continue;
        }
        return Ok(addresses(reply, qtype));
    }
}

/// The A/AAAA rdata of the answer section.
fn addresses(m: &[u8], qtype: u16) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let Some(h) = ferrodns_plugin::wire::WireHeader::read(m) else {
        return out;
    };
    let mut pos = 12;
    for _ in 0..h.qdcount {
        match ferrodns_plugin::wire::skip_name(m, pos) {
            Some(p) => pos = p + 4,
            None => return out,
        }
    }
    for _ in 0..h.ancount {
        let Some(p) = ferrodns_plugin::wire::skip_name(m, pos) else {
            return out;
        };
        let Some(fixed) = m.get(p..p + 10) else {
            return out;
        };
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let Some(rdata) = m.get(p + 10..p + 10 + rdlen) else {
            return out;
        };
        if rtype == qtype && rtype == 1 && rdlen == 4 {
            out.push(IpAddr::from([rdata[0], rdata[1], rdata[2], rdata[3]]));
        } else if rtype == qtype && rtype == 28 && rdlen == 16 {
            let mut b = [0u8; 16];
            b.copy_from_slice(rdata);
            out.push(IpAddr::from(b));
        }
        pos = p + 10 + rdlen;
    }
    out
}

/// The first name server of /etc/resolv.conf as `ip:53`.
fn system_nameserver() -> Option<String> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next() == Some("nameserver"))
            .then(|| f.next())
            .flatten()
            .map(|ip| join_host_port(ip, "53"))
    })
}

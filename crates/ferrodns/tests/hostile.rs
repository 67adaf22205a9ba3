//! Raw hostile packets over UDP and TCP: the server never dies and answers as CoreDNS's DNS
//! library does (nothing, FORMERR, NOTIMP or SERVFAIL), and keeps answering afterwards; a
//! flood of what the DNS library warns about leaves one log line; idle and slowloris TCP
//! clients are cut off without holding back anyone's answers.

mod common;

use std::time::Duration;

use common::*;
use hickory_proto::rr::RecordType;

/// How long "no reply" is waited for. A reply, if any, comes within microseconds on loopback.
const SILENCE: Duration = Duration::from_millis(300);

fn valid() -> Vec<u8> {
    let mut m = query("example.org.", RecordType::A);
    m.metadata.id = 0x1234;
    m.to_vec().unwrap()
}

/// What the server is expected to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Nothing,
    /// Rcode, and whether the question is echoed.
    Rcode(u8, bool),
}

fn cases() -> Vec<(&'static str, Vec<u8>, Want)> {
    let v = valid();
    let mut out = Vec::new();
    out.push(("empty", vec![], Want::Nothing));
    out.push(("short header", v[..11].to_vec(), Want::Nothing));
    // A bare header with QDCOUNT 1 is accepted with no question: SERVFAIL.
    out.push(("header only", v[..12].to_vec(), Want::Rcode(2, false)));
    let mut q0 = v.clone();
    q0[5] = 0;
    out.push(("qdcount 0", q0, Want::Rcode(1, false)));
    let mut q2 = v.clone();
    q2[5] = 2;
    out.push(("qdcount 2", q2, Want::Rcode(1, false)));
    let mut an2 = v.clone();
    an2[7] = 2;
    out.push(("ancount 2", an2, Want::Rcode(1, false)));
    let mut ar3 = v.clone();
    ar3[11] = 3;
    out.push(("arcount 3", ar3, Want::Rcode(1, false)));
    let mut resp = v.clone();
    resp[2] |= 0x80;
    out.push(("response as query", resp, Want::Nothing));
    let mut status = v.clone();
    status[2] |= 2 << 3;
    out.push(("opcode STATUS", status, Want::Rcode(4, false)));
    let mut update = v.clone();
    update[2] |= 5 << 3;
    out.push(("opcode UPDATE", update, Want::Rcode(4, false)));
    let mut lp = v[..12].to_vec();
    lp.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    out.push(("pointer loop", lp, Want::Rcode(1, false)));
    let mut fwd = v[..12].to_vec();
    fwd.extend_from_slice(&[0xc0, 0x40, 0, 1, 0, 1]);
    out.push(("pointer past end", fwd, Want::Rcode(1, false)));
    let mut badlen = v[..12].to_vec();
    badlen.extend_from_slice(&[63, b'a', b'b', 0, 1, 0, 1]);
    out.push(("label longer than packet", badlen, Want::Rcode(1, false)));
    let mut badtype = v[..12].to_vec();
    badtype.extend_from_slice(&[0x40, b'a', 0, 0, 1, 0, 1]);
    out.push(("reserved label type", badtype, Want::Rcode(1, false)));
    // A valid question followed by an answer record cut in the middle: FORMERR, question kept.
    let mut cut = v.clone();
    cut[7] = 1;
    cut.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0]);
    out.push(("truncated record", cut, Want::Rcode(1, true)));
    // A question cut after its name: accepted with type and class 0, so class != IN: REFUSED.
    let name_only: Vec<u8> = v[..v.len() - 4].to_vec();
    out.push(("question without type", name_only, Want::Rcode(5, true)));
    out
}

fn check(name: &str, got: Option<Vec<u8>>, want: Want, id: u16) {
    match (want, got) {
        (Want::Nothing, None) => {}
        (Want::Nothing, Some(r)) => panic!("{name}: expected no reply, got {r:?}"),
        (Want::Rcode(_, _), None) => panic!("{name}: expected a reply, got none"),
        (Want::Rcode(rc, question), Some(r)) => {
            assert!(r.len() >= 12, "{name}: reply too short");
            assert_eq!(u16::from_be_bytes([r[0], r[1]]), id, "{name}: id");
            assert_eq!(r[2] & 0x80, 0x80, "{name}: QR");
            assert_eq!(r[3] & 0x0f, rc, "{name}: rcode");
            assert_eq!(r[3] & 0x40, 0, "{name}: Z clear");
            assert_eq!(
                u16::from_be_bytes([r[4], r[5]]),
                question as u16,
                "{name}: qdcount"
            );
            assert_eq!(&r[6..12], &[0; 6], "{name}: no records");
        }
    }
}

#[test]
fn hostile_packets_over_udp_and_tcp() {
    let srv = Running::start(".:0 {\n    bind 127.0.0.1\n    whoami\n}\n", &[]);
    let addr = srv.addr();
    for (name, packet, want) in cases() {
        let id = if packet.len() >= 2 {
            u16::from_be_bytes([packet[0], packet[1]])
        } else {
            0
        };
        check(
            &format!("udp {name}"),
            udp_raw(addr, &packet, SILENCE),
            want,
            id,
        );
        check(
            &format!("tcp {name}"),
            tcp_raw(addr, &packet, SILENCE),
            want,
            id,
        );
        // Still alive and answering.
        let r = udp(addr, &query("alive.example.", RecordType::A));
        assert_eq!(r.additionals.len(), 2, "after {name}");
    }
}

#[test]
fn random_garbage_never_kills_the_server() {
    let srv = Running::start(".:0 {\n    bind 127.0.0.1\n    whoami\n}\n", &[]);
    let addr = srv.addr();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // A fixed-seed xorshift so that a failure can be replayed.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let base = valid();
    for i in 0..3000 {
        let mut p = if i % 2 == 0 {
            base.clone()
        } else {
            vec![0u8; (next() % 300) as usize]
        };
        for b in p.iter_mut() {
            if next() % 4 == 0 {
                *b = next() as u8;
            }
        }
        sock.send_to(&p, addr).unwrap();
    }
    let r = udp(addr, &query("alive.example.", RecordType::A));
    assert_eq!(r.additionals.len(), 2);
    let r = tcp(addr, &query("alive.example.", RecordType::A));
    assert_eq!(r.additionals.len(), 2);
}

/// A flood of queries whose EDNS options are cut short: the DNS library warns about each one it
/// decodes, but the log gets one line for the lot, and the metric counts every one.
#[test]
fn a_flood_of_malformed_edns_options_writes_one_log_line_and_counts_them() {
    let free = || {
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let http = free();
    let srv = Running::start(
        &format!(".:0 {{\n    bind 127.0.0.1\n    prometheus 127.0.0.1:{http}\n    whoami\n}}\n"),
        &[],
    );
    let addr = srv.addr();
    // OPT with RDLENGTH 5: option 10 (COOKIE) claiming 3 bytes of which 1 is there.
    let mut bad = valid();
    bad[11] = 1;
    bad.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 5, 0, 10, 0, 3, 0xaa]);
    const SENT: usize = 400;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(SILENCE)).unwrap();
    for _ in 0..SENT {
        sock.send_to(&bad, addr).unwrap();
        // One at a time, so that none is lost to a full socket buffer.
        let mut buf = [0u8; 512];
        let _ = sock.recv_from(&mut buf);
    }
    let family = "ferrodns_library_log_events_total{level=\"warning\",library=\"hickory_proto\"}";
    let counted = || -> usize {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        std::io::Write::write_all(
            &mut c,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut c, &mut out).unwrap();
        out.lines()
            .find_map(|l| l.strip_prefix(family))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let n = counted();
    assert!(n >= SENT, "{family} = {n}, want at least {SENT}");
    // The server still answers, and its log holds a single line about all of them.
    let r = udp(addr, &query("alive.example.", RecordType::A));
    assert_eq!(r.additionals.len(), 2);
    let lines: Vec<String> = srv.lines.try_iter().collect();
    let warned: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("EDNS options"))
        .collect();
    assert_eq!(warned.len(), 1, "{lines:#?}");
    assert!(
        warned[0]
            .starts_with("[WARNING] hickory_proto: incomplete or poorly formatted EDNS options"),
        "{}",
        warned[0]
    );
}

/// Hundreds of TCP clients that connect and say nothing, send one byte, or stop mid-query
/// (slowloris) do not hold back UDP or TCP answers, and each of them is closed by the server
/// once its read timeout (3 s, CoreDNS's) has passed.
#[test]
fn slowloris_and_idle_tcp_clients_are_cut_off_and_do_not_stall_answers() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let srv = Running::start(".:0 {\n    bind 127.0.0.1\n    whoami\n}\n", &[]);
    let addr = srv.addr();
    let query = valid();
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    let started = std::time::Instant::now();
    let mut hostile = Vec::new();
    for i in 0..600 {
        let mut c = TcpStream::connect(addr).unwrap();
        match i % 3 {
            0 => {}
            1 => c.write_all(&framed[..1]).unwrap(),
            _ => c.write_all(&framed[..framed.len() / 2]).unwrap(),
        }
        hostile.push(c);
    }
    // Meanwhile, answers as usual.
    for _ in 0..20 {
        let t0 = std::time::Instant::now();
        let r = udp(addr, &query_for("alive.example."));
        assert_eq!(r.additionals.len(), 2);
        let r = tcp(addr, &query_for("alive.example."));
        assert_eq!(r.additionals.len(), 2);
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    }
    // Every hostile connection is closed by the server: EOF (or a reset), never a reply, and
    // not before the read timeout.
    for (i, mut c) in hostile.into_iter().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        match c.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("connection {i}: {other:?}"),
        }
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(8),
        "{took:?}"
    );
}

fn query_for(name: &str) -> hickory_proto::op::Message {
    query(name, RecordType::A)
}

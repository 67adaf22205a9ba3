//! A scripted fake upstream on loopback (UDP and TCP on one port) for cases that need an
//! upstream misbehaving in a precise way: timeouts, SERVFAIL, truncation, wrong IDs, garbage.
//! It answers per the case's rules and records what it was asked.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hickory_proto::op::{Edns, Message, MessageType};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::case::{Action, Proto, Rule};
use crate::wire;

/// A query the upstream received: transport, name (as sent), type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Transport.
    pub proto: Proto,
    /// Question name.
    pub name: String,
    /// Question type.
    pub qtype: String,
}

struct State {
    rules: Vec<(Rule, Option<u32>)>,
    seen: Vec<Seen>,
    /// When the last query came in.
    last: Option<Instant>,
}

/// A running fake upstream; stopped on drop.
pub struct FakeUpstream {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<State>>,
    threads: Vec<JoinHandle<()>>,
}

impl FakeUpstream {
    /// Start on `at`, or on a fresh loopback port.
    pub fn start(rules: &[Rule], at: Option<SocketAddr>) -> Result<FakeUpstream> {
        for r in rules {
            check_rule(r)?;
        }
        let (udp, tcp) = match at {
            Some(a) => (
                UdpSocket::bind(a).with_context(|| format!("upstream udp {a}"))?,
                TcpListener::bind(a).with_context(|| format!("upstream tcp {a}"))?,
            ),
            None => bind_pair()?,
        };
        let addr = udp.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(State {
            rules: rules.iter().map(|r| (r.clone(), r.times)).collect(),
            seen: Vec::new(),
            last: None,
        }));
        udp.set_read_timeout(Some(Duration::from_millis(50)))?;
        tcp.set_nonblocking(true)?;
        let mut threads = Vec::new();
        {
            let (stop, state) = (stop.clone(), state.clone());
            threads.push(std::thread::spawn(move || serve_udp(udp, &stop, &state)));
        }
        {
            let (stop, state) = (stop.clone(), state.clone());
            threads.push(std::thread::spawn(move || serve_tcp(tcp, &stop, &state)));
        }
        Ok(FakeUpstream {
            addr,
            stop,
            state,
            threads,
        })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it was asked, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state
            .lock()
            .map(|s| s.seen.clone())
            .unwrap_or_default()
    }

    /// What it was asked, once no query has come in for `quiet` since `from` (or `max` after
    /// `from` has passed): a server may still ask after its last reply, as a cache refreshing
    /// in the background does.
    pub fn seen_settled(&self, from: Instant, quiet: Duration, max: Duration) -> Vec<Seen> {
        let deadline = from + max;
        loop {
            let last = self.state.lock().ok().and_then(|s| s.last);
            let now = Instant::now();
            let since = now.saturating_duration_since(last.map_or(from, |t| t.max(from)));
            if since >= quiet || now >= deadline {
                return self.seen();
            }
            // Waiting for nothing to happen: there is no event to wake on.
            std::thread::sleep(quiet.saturating_sub(since).min(deadline - now));
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn bind_pair() -> Result<(UdpSocket, TcpListener)> {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
            return Ok((udp, tcp));
        }
    }
    bail!("no loopback port free for both UDP and TCP")
}

fn check_rule(r: &Rule) -> Result<()> {
    if let Some(rc) = &r.rcode {
        wire::parse_rcode(rc)?;
    }
    for rr in r.answer.iter().chain(&r.authority).chain(&r.additional) {
        parse_record(rr).with_context(|| format!("upstream record {rr:?}"))?;
    }
    if let Some(h) = &r.hex {
        wire::parse_hex(h)?;
    }
    Ok(())
}

/// `name ttl class type rdata...` to a record.
fn parse_record(text: &str) -> Result<Record> {
    let mut it = text.split_whitespace();
    let (Some(name), Some(ttl), Some(class), Some(rtype)) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        bail!("expected `name ttl class type rdata`");
    };
    let rest: Vec<&str> = it.collect();
    let rtype: RecordType = rtype.to_ascii_uppercase().parse()?;
    let rdata = RData::try_from_str(rtype, &rest.join(" "))?;
    let mut rec = Record::from_rdata(Name::from_ascii(name)?, ttl.parse()?, rdata);
    rec.dns_class = DNSClass::from(wire::parse_class(class)?);
    Ok(rec)
}

fn serve_udp(sock: UdpSocket, stop: &AtomicBool, state: &Mutex<State>) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if let Some(reply) = respond(&buf[..n], Proto::Udp, state) {
            let _ = sock.send_to(&reply, from);
        }
    }
}

/// Each connection on a thread of its own: a forwarder keeps several open (one per block, its
/// health checks), and answering them one at a time would stall all but the first.
fn serve_tcp(l: TcpListener, stop: &Arc<AtomicBool>, state: &Arc<Mutex<State>>) {
    let mut conns = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((c, _)) => {
                let (stop, state) = (stop.clone(), state.clone());
                conns.push(std::thread::spawn(move || serve_conn(c, &stop, &state)));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
        conns.retain(|t: &JoinHandle<()>| !t.is_finished());
    }
    for t in conns {
        let _ = t.join();
    }
}

fn serve_conn(mut c: TcpStream, stop: &AtomicBool, state: &Mutex<State>) {
    let _ = c.set_nonblocking(false);
    let _ = c.set_read_timeout(Some(Duration::from_millis(50)));
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut idle = 0;
    while !stop.load(Ordering::Relaxed) && idle < 100 {
        match c.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                idle = 0;
                pending.extend_from_slice(&buf[..n]);
            }
            Err(_) => {
                idle += 1;
                continue;
            }
        }
        while pending.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([pending[0], pending[1]]));
            if pending.len() < 2 + len {
                break;
            }
            let msg: Vec<u8> = pending.drain(..2 + len).skip(2).collect();
            match respond_tcp(&msg, state) {
                TcpAction::Reply(r) => {
                    let mut framed = (r.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&r);
                    if c.write_all(&framed).is_err() {
                        return;
                    }
                }
                TcpAction::Nothing => {}
                TcpAction::Close => return,
            }
        }
    }
}

enum TcpAction {
    Reply(Vec<u8>),
    Nothing,
    Close,
}

fn respond_tcp(msg: &[u8], state: &Mutex<State>) -> TcpAction {
    let Ok(req) = Message::from_vec(msg) else {
        return TcpAction::Nothing;
    };
    match pick(&req, Proto::Tcp, state) {
        Some(rule) if rule.action == Action::Close => TcpAction::Close,
        Some(rule) => build(&req, &rule, Proto::Tcp).map_or(TcpAction::Nothing, TcpAction::Reply),
        None => build_refused(&req).map_or(TcpAction::Nothing, TcpAction::Reply),
    }
}

fn respond(msg: &[u8], proto: Proto, state: &Mutex<State>) -> Option<Vec<u8>> {
    let req = Message::from_vec(msg).ok()?;
    match pick(&req, proto, state) {
        Some(rule) => build(&req, &rule, proto),
        None => build_refused(&req),
    }
}

fn pick(req: &Message, proto: Proto, state: &Mutex<State>) -> Option<Rule> {
    let q = req.queries.first()?;
    let name = q.name().to_ascii();
    let qtype = q.query_type();
    let mut st = state.lock().ok()?;
    st.seen.push(Seen {
        proto,
        name: name.clone(),
        qtype: qtype.to_string(),
    });
    st.last = Some(Instant::now());
    for (rule, left) in st.rules.iter_mut() {
        if left.is_some_and(|n| n == 0) {
            continue;
        }
        if let Some(n) = &rule.name
            && !n
                .trim_end_matches('.')
                .eq_ignore_ascii_case(name.trim_end_matches('.'))
        {
            continue;
        }
        if let Some(t) = &rule.qtype
            && !t.eq_ignore_ascii_case(&qtype.to_string())
        {
            continue;
        }
        if let Some(t) = rule.transport
            && !t.each().contains(&proto)
        {
            continue;
        }
        if let Some(n) = left.as_mut() {
            *n -= 1;
        }
        return Some(rule.clone());
    }
    None
}

fn base_reply(req: &Message) -> Message {
    let mut m = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
    m.metadata.recursion_desired = req.metadata.recursion_desired;
    m.metadata.checking_disabled = req.metadata.checking_disabled;
    m.queries = req.queries.clone();
    if req.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(4096);
        m.edns = Some(e);
    }
    m
}

fn build_refused(req: &Message) -> Option<Vec<u8>> {
    let mut m = base_reply(req);
    m.metadata.response_code = hickory_proto::op::ResponseCode::Refused;
    m.to_vec().ok()
}

fn build(req: &Message, rule: &Rule, proto: Proto) -> Option<Vec<u8>> {
    if rule.delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(rule.delay_ms));
    }
    match rule.action {
        Action::Drop | Action::Close => return None,
        Action::Garbage => {
            return Some(match &rule.hex {
                Some(h) => wire::parse_hex(h).ok()?,
                None => vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02],
            });
        }
        _ => {}
    }
    let mut m = base_reply(req);
    let rcode = wire::parse_rcode(rule.rcode.as_deref().unwrap_or("NOERROR")).ok()?;
    m.metadata.response_code =
        hickory_proto::op::ResponseCode::from((rcode >> 4) as u8, (rcode & 0xf) as u8);
    for f in &rule.flags {
        match f.to_ascii_lowercase().as_str() {
            "aa" => m.metadata.authoritative = true,
            "ra" => m.metadata.recursion_available = true,
            "ad" => m.metadata.authentic_data = true,
            "tc" => m.metadata.truncation = true,
            "cd" => m.metadata.checking_disabled = true,
            _ => {}
        }
    }
    let truncate = rule.action == Action::Truncate && proto == Proto::Udp;
    if truncate {
        m.metadata.truncation = true;
    } else {
        for (i, list) in [&rule.answer, &rule.authority, &rule.additional]
            .into_iter()
            .enumerate()
        {
            for text in list {
                let rec = parse_record(text).ok()?;
                match i {
                    0 => m.answers.push(rec),
                    1 => m.authorities.push(rec),
                    _ => m.additionals.push(rec),
                }
            }
        }
    }
    if rule.action == Action::WrongId {
        m.metadata.id = m.metadata.id.wrapping_add(1);
    }
    m.to_vec().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client;

    fn rule(toml_text: &str) -> Rule {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn scripted_answers_then_servfail() {
        let rules = vec![
            rule(
                "name = \"example.org.\"\ntimes = 1\nanswer = [\"example.org. 300 IN A 192.0.2.1\"]\nflags = [\"aa\"]",
            ),
            rule("action = \"answer\"\nrcode = \"SERVFAIL\""),
        ];
        let up = FakeUpstream::start(&rules, None).unwrap();
        let q = wire::build_query(&wire::QueryParts {
            id: 9,
            opcode: 0,
            flags: vec!["rd".into()],
            name: "Example.org.".into(),
            qtype: 1,
            qclass: 1,
            edns: None,
        })
        .unwrap();
        let t = [up.addr()];
        let first = client::udp(&q, &t, Duration::from_secs(2));
        let client::Outcome::Reply(b) = &first[0] else {
            panic!("{first:?}")
        };
        let r = wire::parse_reply(b).unwrap();
        assert_eq!(r.rcode(), 0);
        assert_eq!(r.flag_names(), "qr aa rd");
        assert_eq!(
            r.sections[0][0].text(true),
            "example.org. 300 IN A 192.0.2.1"
        );
        let second = client::tcp(&q, &t, Duration::from_secs(2));
        let client::Outcome::Reply(b) = &second[0] else {
            panic!("{second:?}")
        };
        assert_eq!(wire::parse_reply(b).unwrap().rcode(), 2);
        assert_eq!(up.seen().len(), 2);
        assert_eq!(up.seen()[0].name, "Example.org.");
    }

    #[test]
    fn drop_wrong_id_and_truncate() {
        let rules = vec![
            rule("name = \"drop.test.\"\naction = \"drop\""),
            rule("name = \"id.test.\"\naction = \"wrong_id\""),
            rule(
                "name = \"tc.test.\"\naction = \"truncate\"\nanswer = [\"tc.test. 1 IN A 192.0.2.9\"]",
            ),
        ];
        let up = FakeUpstream::start(&rules, None).unwrap();
        let q = |name: &str| {
            wire::build_query(&wire::QueryParts {
                id: 5,
                opcode: 0,
                flags: vec![],
                name: name.into(),
                qtype: 1,
                qclass: 1,
                edns: None,
            })
            .unwrap()
        };
        let t = [up.addr()];
        let d = Duration::from_millis(300);
        assert!(!client::udp(&q("drop.test."), &t, d)[0].is_reply());
        let client::Outcome::Reply(b) = &client::udp(&q("id.test."), &t, d)[0] else {
            panic!()
        };
        assert_eq!(wire::parse_reply(b).unwrap().id, 6);
        let client::Outcome::Reply(b) = &client::udp(&q("tc.test."), &t, d)[0] else {
            panic!()
        };
        let r = wire::parse_reply(b).unwrap();
        assert!(r.flag_names().contains("tc") && r.sections[0].is_empty());
        let client::Outcome::Reply(b) = &client::tcp(&q("tc.test."), &t, d)[0] else {
            panic!()
        };
        assert_eq!(wire::parse_reply(b).unwrap().sections[0].len(), 1);
    }
}

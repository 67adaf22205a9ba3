//! The `reload` plugin under steady load: the Corefile is rewritten 20 times (5 of them broken in
//! different ways) while clients keep querying over UDP and TCP. Every query is answered; answers
//! follow each good Corefile within one reload interval; a broken Corefile changes nothing.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

const INTERVAL: Duration = Duration::from_secs(2);
const REWRITES: usize = 20;
const MIN_QUERIES: usize = 100_000;

/// A good Corefile: `www.example.org` is `10.0.0.<version>`.
fn good(port: u16, version: u64) -> String {
    format!(
        "# version {version}\n.:{port} {{\n    bind 127.0.0.1\n    reload 2s 0\n    hosts {{\n        10.0.0.{version} www.example.org\n    }}\n}}\n"
    )
}

/// A broken Corefile of kind `kind`; each would answer `10.0.0.<version>` if it were applied.
fn broken(port: u16, version: u64, kind: usize, busy: u16) -> (String, &'static str) {
    let hosts = format!("    hosts {{\n        10.0.0.{version} www.example.org\n    }}\n");
    match kind % 3 {
        // Does not parse: the checker warns and skips it.
        // (The directive block is left open: an unclosed server block alone is accepted.)
        0 => (
            format!(
                ".:{port} {{\n    bind 127.0.0.1\n    reload 2s 0\n    hosts {{\n        10.0.0.{version} www.example.org\n"
            ),
            "Corefile parse failed",
        ),
        // Parses, but a directive is unknown: the reload fails.
        1 => (
            format!(
                ".:{port} {{\n    bind 127.0.0.1\n    reload 2s 0\n    no_such_plugin\n{hosts}}}\n"
            ),
            "Corefile changed but reload failed",
        ),
        // Loads, but a new address cannot be bound: the reload fails after setup.
        _ => (
            format!(
                ".:{port} {{\n    bind 127.0.0.1\n    reload 2s 0\n{hosts}}}\n\
                 example.net:{busy} {{\n    bind 127.0.0.1\n    whoami\n}}\n"
            ),
            "Corefile changed but reload failed",
        ),
    }
}

/// Replace the Corefile in one step, as a ConfigMap update does.
fn install(dir: &TempDir, text: &str) {
    let tmp = dir.write("Corefile.next", text);
    std::fs::rename(tmp, dir.0.join("Corefile")).unwrap();
}

/// The version in an answer, or why the reply is not a good one.
fn version_of(reply: &[u8], id: u16) -> Result<u64, String> {
    let m = Message::from_vec(reply).map_err(|e| format!("unparsable reply: {e}"))?;
    if m.metadata.id != id {
        return Err(format!("reply id {} for query {id}", m.metadata.id));
    }
    if m.metadata.response_code != ResponseCode::NoError {
        return Err(format!("rcode {}", m.metadata.response_code));
    }
    match m.answers.as_slice() {
        [rr] => match &rr.data {
            RData::A(a) => Ok(u64::from(a.0.octets()[3])),
            other => Err(format!("answer {other:?}")),
        },
        other => Err(format!("{} answers", other.len())),
    }
}

struct Load {
    stop: AtomicBool,
    sent: AtomicUsize,
    failed: AtomicUsize,
    /// The newest version any client has seen.
    newest: AtomicU64,
    errors: std::sync::Mutex<Vec<String>>,
}

impl Load {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        let mut e = self.errors.lock().unwrap();
        if e.len() < 20 {
            e.push(what);
        }
    }

    /// Check one answer: a version of a good Corefile, never older than the client's last.
    fn check(&self, result: Result<u64, String>, last: &mut u64, valid: &[bool]) {
        match result {
            Ok(v) if !valid.get(v as usize).copied().unwrap_or(false) => {
                self.fail(format!("answer from a broken Corefile: version {v}"))
            }
            Ok(v) if v < *last => self.fail(format!("went back from version {last} to {v}")),
            Ok(v) => {
                *last = v;
                self.newest.fetch_max(v, Ordering::SeqCst);
            }
            Err(e) => self.fail(e),
        }
    }
}

/// Which versions come from good Corefiles (index = version).
fn plan() -> Vec<bool> {
    // Version 1 is the first Corefile; versions 2..=21 are the rewrites; every fourth (4, 8, ... 20) is broken.
    (0..=REWRITES as u64 + 1)
        .map(|v| v >= 1 && !(v >= 2 && (v - 2) % 4 == 2))
        .collect()
}

fn udp_client(addr: SocketAddr, load: Arc<Load>, valid: Arc<Vec<bool>>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 1500];
    let mut last = 0;
    let mut id = 0u16;
    while !load.stop.load(Ordering::SeqCst) {
        id = id.wrapping_add(1);
        let mut q = query("www.example.org.", RecordType::A);
        q.metadata.id = id;
        s.send_to(&q.to_vec().unwrap(), addr).unwrap();
        load.sent.fetch_add(1, Ordering::SeqCst);
        let r = match s.recv_from(&mut buf) {
            Ok((n, _)) => version_of(&buf[..n], id),
            Err(e) => Err(format!("udp query {id} lost: {e}")),
        };
        load.check(r, &mut last, &valid);
    }
}

fn tcp_client(addr: SocketAddr, load: Arc<Load>, valid: Arc<Vec<bool>>) {
    // One connection for the whole run: a connection opened before a reload must follow it.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    let mut last = 0;
    let mut id = 0u16;
    while !load.stop.load(Ordering::SeqCst) {
        id = id.wrapping_add(1);
        let mut q = query("www.example.org.", RecordType::A);
        q.metadata.id = id;
        let wire = q.to_vec().unwrap();
        let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&wire);
        load.sent.fetch_add(1, Ordering::SeqCst);
        let r = s.write_all(&framed).and_then(|_| {
            let mut len = [0u8; 2];
            s.read_exact(&mut len)?;
            let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut body)?;
            Ok(body)
        });
        let r = match r {
            Ok(body) => version_of(&body, id),
            Err(e) => Err(format!("tcp query {id} lost: {e}")),
        };
        let broke = r.is_err();
        load.check(r, &mut last, &valid);
        if broke {
            return;
        }
    }
}

#[test]
fn rewrites_under_load_lose_nothing_and_broken_ones_change_nothing() {
    let port = free_port();
    // A port held by this test, so a Corefile naming it cannot be loaded.
    let busy_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let busy = busy_sock.local_addr().unwrap().port();
    let _busy_tcp = std::net::TcpListener::bind(("127.0.0.1", busy)).unwrap();

    let srv = Running::start(&good(port, 1), &[]);
    assert!(
        srv.banner
            .iter()
            .any(|l| l.starts_with("[INFO] plugin/reload: Running configuration SHA512 = ")),
        "{:?}",
        srv.banner
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let valid = Arc::new(plan());
    let load = Arc::new(Load {
        stop: AtomicBool::new(false),
        sent: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        newest: AtomicU64::new(0),
        errors: std::sync::Mutex::new(Vec::new()),
    });
    let mut clients = Vec::new();
    for i in 0..5 {
        let (load, valid) = (load.clone(), valid.clone());
        clients.push(std::thread::spawn(move || {
            if i < 3 {
                udp_client(addr, load, valid)
            } else {
                tcp_client(addr, load, valid)
            }
        }));
    }

    let mut current = 1u64;
    let mut slowest = Duration::ZERO;
    for (n, version) in (2..=REWRITES as u64 + 1).enumerate() {
        let written = Instant::now();
        if valid[version as usize] {
            install(&srv.dir, &good(port, version));
            srv.expect_line("Reloading complete");
            // The clients see the new answers: how long after the write did they?
            while load.newest.load(Ordering::SeqCst) < version {
                assert!(
                    written.elapsed() < INTERVAL * 3,
                    "version {version} not answered after {:?}",
                    written.elapsed()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            slowest = slowest.max(written.elapsed());
            current = version;
        } else {
            let (text, line) = broken(port, version, n / 4, busy);
            install(&srv.dir, &text);
            srv.expect_line(line);
            // The old answers stand; the clients would have failed on a broken version.
            assert_eq!(load.newest.load(Ordering::SeqCst), current);
        }
    }
    // Keep the load on until the total is reached (bounded: clients that stopped sending
    // would otherwise hang the test).
    let deadline = Instant::now() + Duration::from_secs(120);
    while load.sent.load(Ordering::SeqCst) < MIN_QUERIES {
        assert!(
            Instant::now() < deadline,
            "only {} queries sent",
            load.sent.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    load.stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let sent = load.sent.load(Ordering::SeqCst);
    let failed = load.failed.load(Ordering::SeqCst);
    let errors = load.errors.lock().unwrap().clone();
    eprintln!(
        "{sent} queries over UDP and TCP through {REWRITES} rewrites, {failed} failed; slowest \
         change seen {slowest:?} after the write (interval {INTERVAL:?})"
    );
    assert_eq!(failed, 0, "failed queries: {errors:?}");
    assert!(sent >= MIN_QUERIES);
    assert_eq!(current, REWRITES as u64 + 1);
    // Within one reload interval of the write (plus the time the reload itself takes).
    assert!(
        slowest <= INTERVAL + Duration::from_millis(500),
        "slowest {slowest:?}"
    );
    drop(busy_sock);
}

//! What the end-to-end tests share: throw-away network namespaces with a thread that can
//! join them, processes whose output lines are awaited, the ferrodns binary, and DNS and HTTP
//! clients that run inside a namespace. Needs root and iproute2.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use nix::sched::{CloneFlags, setns};

/// The first version line, printed once everything is up. (Not just `ferrodns-`: the usage
/// text a refused command line prints names `@ferrodns-handoff`.)
pub const READY: &str = concat!("ferrodns-", env!("CARGO_PKG_VERSION"));
/// How long a process may take to print what a test waits for.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn run(cmd: &[&str]) -> String {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop.
pub struct Ns(pub String);

impl Ns {
    pub fn new(role: &str) -> Ns {
        // Unique in the process too, so that the tests of one file can each build a world
        // at the same time.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("fdns-e2e-{}-{n}-{role}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = Ns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn ip(&self, args: &[&str]) -> String {
        let mut cmd = vec!["ip", "-n", &self.0];
        cmd.extend_from_slice(args);
        run(&cmd)
    }

    pub fn exec(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .unwrap()
    }

    /// Run `f` on a thread inside the namespace (its sockets live there).
    pub fn inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = std::fs::File::open(format!("/run/netns/{}", self.0)).unwrap();
        std::thread::scope(|s| {
            s.spawn(move || {
                setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

pub fn veth(a: &Ns, a_if: &str, a_addr: &str, b: &Ns, b_if: &str, b_addr: &str) {
    a.ip(&[
        "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.0,
    ]);
    a.ip(&["addr", "add", a_addr, "dev", a_if]);
    b.ip(&["addr", "add", b_addr, "dev", b_if]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// A process whose stdout lines are collected.
pub struct Proc {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Wait for a line containing `needle` (`count` of them in all, counting earlier ones).
    pub fn expect(&mut self, needle: &str, count: usize, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            if self.seen.iter().filter(|l| l.contains(needle)).count() >= count {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!(
                    "no {count} lines containing {needle:?} within {wait:?}; output:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    pub fn signal(&self, sig: &str) {
        run(&["kill", &format!("-{sig}"), &self.child.id().to_string()]);
    }

    pub fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                while let Ok(l) = self.lines.try_recv() {
                    self.seen.push(l);
                }
                return st.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn ferrodns_bin() -> PathBuf {
    // The kube-dns side is the ferrodns binary, built beside node-cache.
    let nc = Path::new(env!("CARGO_BIN_EXE_node-cache"));
    let dir = nc.parent().unwrap();
    let bin = dir.join("ferrodns");
    if !bin.exists() {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", "ferrodns", "--bin", "ferrodns"]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "building ferrodns");
    }
    bin
}

pub fn query(name: &str, qtype: RecordType, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.queries
        .push(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

/// Ask over UDP and over TCP (from inside the pod); both must agree. Returns the reply.
pub fn ask(pod: &Ns, server: &str, name: &str, qtype: RecordType) -> Message {
    let ip: std::net::IpAddr = server.parse().unwrap();
    let to = SocketAddr::new(ip, 53);
    let name = name.to_string();
    pod.inside(move || {
        let q = query(&name, qtype, 4242);
        let s = UdpSocket::bind(if ip.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.send_to(&q, to).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = s
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("{name} {qtype} @{to} over UDP: {e}"));
        let udp = Message::from_vec(&buf[..n]).unwrap();
        let mut t = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        t.write_all(&framed).unwrap();
        let mut len = [0u8; 2];
        t.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        t.read_exact(&mut body).unwrap();
        let tcp = Message::from_vec(&body).unwrap();
        assert_eq!(udp.answers, tcp.answers, "{name} over UDP and TCP");
        assert_eq!(udp.metadata.response_code, tcp.metadata.response_code);
        udp
    })
}

pub fn a_of(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::PTR(p) => Some(p.0.to_string()),
            _ => None,
        })
        .collect()
}

pub fn http_get(ns: &Ns, addr: &str, path: &str) -> (u16, String) {
    let addr: SocketAddr = addr.parse().unwrap();
    let path = path.to_string();
    ns.inside(move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, body.to_string())
    })
}

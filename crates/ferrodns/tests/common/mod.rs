//! Test support: run the real `ferrodns` binary on loopback and talk DNS to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};

/// The first version line, printed once everything is up. (Not just `ferrodns-`: the usage
/// text a refused command line prints names `@ferrodns-handoff`.)
pub const READY: &str = concat!("ferrodns-", env!("CARGO_PKG_VERSION"));
pub const WAIT: Duration = Duration::from_secs(10);

/// A loopback port free for both UDP and TCP right now (bound, then released): for
/// Corefiles that name their port, such as those a test rewrites or that HTTP plugins share.
pub fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p =
            std::env::temp_dir().join(format!("ferrodns-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrodns")
}

/// A running ferrodns, killed on drop.
pub struct Running {
    pub child: Child,
    /// Banner lines (zones and addresses) it printed when ready.
    pub banner: Vec<String>,
    /// Everything printed on stdout after the banner, line by line.
    pub lines: mpsc::Receiver<String>,
    pub dir: TempDir,
}

impl Running {
    /// Start with the Corefile text (written to a temp dir) and extra arguments; returns once
    /// the version line after the banner has been printed (the listeners are then up).
    pub fn start(corefile: &str, args: &[&str]) -> Running {
        let dir = TempDir::new("run");
        let conf = dir.write("Corefile", corefile);
        Running::start_in(dir, &["-conf", conf.to_str().unwrap()], args)
    }

    pub fn start_in(dir: TempDir, conf_args: &[&str], args: &[&str]) -> Running {
        let mut child = Command::new(bin())
            .args(conf_args)
            .args(args)
            .current_dir(&dir.0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ferrodns");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        loop {
            match rx.recv_timeout(WAIT) {
                Ok(l) if l.starts_with("ferrodns-") => break,
                Ok(l) => banner.push(l),
                Err(_) => {
                    let _ = child.kill();
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    panic!(
                        "ferrodns did not become ready; banner so far {banner:?}; stderr: {err}"
                    );
                }
            }
        }
        let _ = rx.recv_timeout(Duration::from_millis(0));
        Running {
            child,
            banner,
            lines: rx,
            dir,
        }
    }

    /// The port of the first banner line (`zone:port[ on host]`).
    pub fn port(&self) -> u16 {
        port_of(&self.banner[0])
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port()))
    }

    /// Wait for a stdout line containing `needle`.
    pub fn expect_line(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => continue,
                Err(_) => panic!("no line containing {needle:?}"),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn port_of(banner_line: &str) -> u16 {
    let hostport = banner_line.split(" on ").next().unwrap();
    hostport.rsplit(':').next().unwrap().parse().unwrap()
}

/// A query message with RD set.
pub fn query(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m
}

pub fn query_class(name: &str, qtype: RecordType, class: DNSClass) -> Message {
    let mut m = query(name, qtype);
    m.queries[0].set_query_class(class);
    m
}

pub fn with_edns(mut m: Message, size: u16, dnssec_ok: bool, version: u8) -> Message {
    let mut e = Edns::new();
    e.set_max_payload(size);
    e.set_dnssec_ok(dnssec_ok);
    e.set_version(version);
    m.set_edns(e);
    m
}

fn rand_id() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    (t ^ (t >> 16)) as u16
}

/// Send raw bytes over UDP; the reply bytes, or `None` when nothing came within `wait`.
pub fn udp_raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.send_to(bytes, addr).unwrap();
    let mut buf = vec![0u8; 65535];
    match s.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Send raw bytes over TCP (length-prefixed); the reply bytes, or `None` when the server sent
/// nothing within `wait` (or closed).
pub fn tcp_raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    s.write_all(&out).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

pub fn udp(addr: SocketAddr, m: &Message) -> Message {
    let bytes = udp_raw(addr, &m.to_vec().unwrap(), WAIT).expect("no UDP reply");
    let r = Message::from_vec(&bytes).expect("reply decodes");
    assert_eq!(r.metadata.id, m.metadata.id, "reply ID");
    r
}

pub fn tcp(addr: SocketAddr, m: &Message) -> Message {
    let bytes = tcp_raw(addr, &m.to_vec().unwrap(), WAIT).expect("no TCP reply");
    let r = Message::from_vec(&bytes).expect("reply decodes");
    assert_eq!(r.metadata.id, m.metadata.id, "reply ID");
    r
}

/// Run ferrodns to completion with a Corefile path and args; (status code, stdout, stderr).
pub fn run_to_end(args: &[&str], cwd: &Path) -> (i32, String, String) {
    run_to_end_env(args, cwd, &[])
}

/// As [`run_to_end`], with these environment variables set.
pub fn run_to_end_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corefile-examples")
}

/// A ferrodns whose output lines (stdout and stderr) are collected.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    /// The ferrodns binary with `args`.
    pub fn start(args: &[&str]) -> Proc {
        Proc::start_exe(std::path::Path::new(bin()), args)
    }

    /// Another build (an upgrade's old version) with `args`.
    pub fn start_exe(exe: &std::path::Path, args: &[&str]) -> Proc {
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ferrodns");
        let (tx, rx) = mpsc::channel();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stream).lines() {
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

    /// Wait for a line containing `needle` (among those seen so far, or to come).
    pub fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no line containing {needle:?} in {:#?}", self.seen),
            }
        }
    }

    /// Wait for the exit; its status code.
    pub fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(100)) {
                    self.seen.push(l);
                }
                return st.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "did not exit: {:#?}", self.seen);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

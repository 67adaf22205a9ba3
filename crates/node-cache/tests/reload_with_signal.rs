//! `-reloadwithsignal`: each Corefile rewrite sends SIGUSR1 to node-cache itself, and the
//! embedded server reloads at once, no `reload` plugin needed. The rewrites node-cache makes at
//! start come before the server handles SIGUSR1: those signals must be ignored (as Go ignores
//! them), not kill the process. Loopback only, no interface or iptables set-up.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

fn rcode(port: u16, name: &str) -> ResponseCode {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.queries
        .push(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    // A forward to a dead upstream takes up to its 5 s deadline to give SERVFAIL.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.send_to(&m.to_vec().unwrap(), ("127.0.0.1", port))
        .unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    Message::from_vec(&buf[..n]).unwrap().metadata.response_code
}

#[test]
fn rewrites_reload_at_once_with_reloadwithsignal() {
    let dir = std::env::temp_dir().join(format!("fdns-nc-sig-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("coredns")).unwrap();
    std::fs::create_dir_all(dir.join("kube-dns")).unwrap();
    let port = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    // A template without `reload`, as upstream advises with -reloadwithsignal.
    std::fs::write(
        dir.join("coredns/Corefile.base"),
        ".:__PILLAR__DNS__PORT__ {\n    bind __PILLAR__LOCAL__DNS__\n    whoami\n}\n"
            .replace("__PILLAR__DNS__PORT__", &port.to_string()),
    )
    .unwrap();
    let d = |p: &str| dir.join(p).display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_node-cache"))
        .args(["-localip", "127.0.0.1", "-dns.port", &port.to_string()])
        .args([
            "-setupinterface=false",
            "-setupiptables=false",
            "-skipteardown",
        ])
        .args(["-metrics-listen-address", "127.0.0.1:0"])
        .args(["-basecorefile", &d("coredns/Corefile.base")])
        .args(["-kubednscm", &d("kube-dns"), "-conf", &d("Corefile")])
        .arg("-reloadwithsignal")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Each expectation is met only by a line after the one that met the previous expectation:
    // a reload that node-cache's own start-up rewrite may trigger must not stand in for the
    // reload of the stub-domain rewrite below.
    let mut seen: Vec<String> = Vec::new();
    let mut from = 0;
    let mut expect = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(i) = seen[from..].iter().position(|l| l.contains(needle)) {
                from += i + 1;
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => seen.push(l),
                Err(_) => panic!("no line with {needle:?}:\n{}", seen.join("\n")),
            }
        }
    };
    expect("Sending reload signal to PID");
    expect("ferrodns-");
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGUSR1 at start killed it"
    );
    // Served by whoami before any stub domain exists.
    assert_eq!(rcode(port, "www.acme.local."), ResponseCode::NoError);

    // A stub domain whose server does not answer: once reloaded, acme.local is forwarded there
    // and fails, while other names still get whoami.
    std::fs::write(
        dir.join("kube-dns/stubDomains"),
        "{\"acme.local\": [\"127.0.0.1:9\"]}\n",
    )
    .unwrap();
    expect("Updated Corefile with 1 custom stubdomains");
    expect("Reloading complete");
    assert_eq!(rcode(port, "www.acme.local."), ResponseCode::ServFail);
    assert_eq!(rcode(port, "www.example.org."), ResponseCode::NoError);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

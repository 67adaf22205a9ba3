//! The node-local-dns ConfigMap that uses every directive node-cache 1.26.8 compiles in
//! (conformance/cases/nodelocaldns/every_directive.toml, whose Corefile this test reads, so
//! that the file CoreDNS is compared against is the file run here) starts under `ferrodns` and
//! under `node-cache` (as the ConfigMap's `Corefile.base`) and answers, in a network namespace
//! this test creates with the ConfigMap's address on loopback and a fake node resolver at
//! 127.0.0.2:53. Both binaries must also list every node-cache plugin under `-plugins`.

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use e2e_support::*;
use ferrodns_plugin_test::{self as testkit, TempDir};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nix::sched::{CloneFlags, setns};

mod e2e_support;

const LOCAL: &str = "169.254.20.10";
/// The version line of the startup banner, printed once the listeners are up.
const BANNER: &str = concat!("ferrodns-", env!("CARGO_PKG_VERSION"));

/// What node-cache 1.26.8 compiles in and registers (shared/reference/node-cache.md §6.1).
const NODE_CACHE_PLUGINS: [&str; 22] = [
    "bind",
    "bufsize",
    "cache",
    "debug",
    "dns64",
    "dnstap",
    "errors",
    "forward",
    "health",
    "hosts",
    "loadbalance",
    "log",
    "loop",
    "metadata",
    "pprof",
    "prometheus",
    "reload",
    "rewrite",
    "template",
    "timeouts",
    "trace",
    "whoami",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The case's Corefile, which uses fixed addresses and no placeholder.
fn corefile() -> String {
    let path = repo().join("conformance/cases/nodelocaldns/every_directive.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let case: toml::Table = toml::from_str(&text).unwrap();
    let corefile = case["corefile"].as_str().unwrap().to_string();
    assert!(
        !corefile.contains('{') || !corefile.contains("{PORT"),
        "placeholders"
    );
    for p in NODE_CACHE_PLUGINS {
        assert!(
            corefile.lines().any(|l| l.trim_start().starts_with(p)),
            "the Corefile does not use {p}"
        );
    }
    corefile
}

/// The node's resolver: answers as the case's scripted upstream does, over UDP on
/// 127.0.0.2:53 inside `ns`, until the returned flag is set.
fn fake_resolver(ns: &Ns) -> Arc<AtomicBool> {
    let file = File::open(format!("/run/netns/{}", ns.0)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (ready, bound) = mpsc::channel();
    let done = stop.clone();
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
        let s = UdpSocket::bind("127.0.0.2:53").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        ready.send(()).unwrap();
        let mut buf = [0u8; 4096];
        while !done.load(Ordering::Relaxed) {
            let Ok((n, from)) = s.recv_from(&mut buf) else {
                continue;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if let Some(reply) = resolve(&q) {
                let _ = s.send_to(&reply, from);
            }
        }
    });
    bound.recv_timeout(WAIT).unwrap();
    stop
}

fn resolve(q: &Message) -> Option<Vec<u8>> {
    let question = q.queries.first()?.clone();
    let mut m = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.queries.push(question.clone());
    let name = question.name().to_ascii().to_ascii_lowercase();
    let a = |ip: [u8; 4]| {
        Record::from_rdata(
            question.name().clone(),
            300,
            RData::A(A::from(std::net::Ipv4Addr::from(ip))),
        )
    };
    let soa = || {
        let n = |s: &str| Name::from_ascii(s).unwrap();
        let rdata = SOA::new(
            n("ns.example.com."),
            n("hostmaster.example.com."),
            1,
            7200,
            1800,
            86400,
            30,
        );
        Record::from_rdata(n("example.com."), 60, RData::SOA(rdata))
    };
    match (name.as_str(), question.query_type()) {
        ("www.example.com.", RecordType::A) => {
            m.answers.push(a([192, 0, 2, 1]));
            m.answers.push(a([192, 0, 2, 2]));
        }
        ("v4only.example.com.", RecordType::A) => m.answers.push(a([192, 0, 2, 3])),
        ("v4only.example.com.", RecordType::AAAA) => m.authorities.push(soa()),
        _ => {
            m.metadata.response_code = ResponseCode::NXDomain;
            m.authorities.push(soa());
        }
    }
    m.to_vec().ok()
}

/// The answers' data as text, sorted (loadbalance shuffles them), and the rcode; asked over
/// UDP and TCP, which must agree.
fn answers(ns: &Ns, name: &str, qtype: RecordType) -> (ResponseCode, Vec<String>) {
    let to: SocketAddr = format!("{LOCAL}:53").parse().unwrap();
    let text = |m: &Message| {
        let mut v: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
        v.sort();
        (m.metadata.response_code, v)
    };
    let name2 = name.to_string();
    let (udp, tcp) = ns.inside(move || {
        let q = Message::from_vec(&query(&name2, qtype, 4343)).unwrap();
        (testkit::udp_exchange(to, &q), testkit::tcp_exchange(to, &q))
    });
    let (u, t) = (text(&udp), text(&tcp));
    assert_eq!(u, t, "{name} {qtype} over UDP and TCP");
    u
}

/// Every node-cache plugin at work in one Corefile, whichever binary serves it.
fn check_answers(ns: &Ns) {
    let ok = |v: &[&str]| {
        (
            ResponseCode::NoError,
            v.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    // hosts, and rewrite in front of it.
    assert_eq!(
        answers(ns, "host.test.", RecordType::A),
        ok(&["192.0.2.10"])
    );
    assert_eq!(
        answers(ns, "alias.test.", RecordType::A),
        ok(&["192.0.2.10"])
    );
    // template.
    assert_eq!(answers(ns, "tpl.test.", RecordType::TXT), ok(&["hello"]));
    // dns64 (allow_ipv4) over hosts and over forward.
    assert_eq!(
        answers(ns, "host.test.", RecordType::AAAA),
        ok(&["64:ff9b::c000:20a"])
    );
    assert_eq!(
        answers(ns, "v4only.example.com.", RecordType::AAAA),
        ok(&["64:ff9b::c000:203"])
    );
    // forward (and cache, loadbalance) to the node's resolver.
    assert_eq!(
        answers(ns, "www.example.com.", RecordType::A),
        ok(&["192.0.2.1", "192.0.2.2"])
    );
    assert_eq!(
        answers(ns, "nope.example.com.", RecordType::A),
        (ResponseCode::NXDomain, Vec::new())
    );
    // The second block: whoami tells the client its address (the test kit's client is bound to
    // 127.0.0.1).
    let to: SocketAddr = format!("{LOCAL}:53").parse().unwrap();
    let reply = ns.inside(move || {
        let q = Message::from_vec(&query("whoami.test.", RecordType::A, 4444)).unwrap();
        testkit::udp_exchange(to, &q)
    });
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    let seen: Vec<String> = reply
        .additionals
        .iter()
        .map(|r| r.data.to_string())
        .collect();
    assert!(
        seen.contains(&"127.0.0.1".to_string()),
        "whoami said {seen:?}"
    );
    // health, pprof and prometheus on their addresses.
    assert_eq!(
        http_get(ns, "169.254.20.10:8080", "/health"),
        (200, "OK".to_string())
    );
    assert_eq!(
        http_get(ns, "169.254.20.10:6053", "/debug/pprof/cmdline").0,
        200
    );
    let (status, metrics) = http_get(ns, "127.0.0.1:9253", "/metrics");
    assert_eq!(status, 200);
    for family in [
        "coredns_dns_requests_total{",
        "coredns_dns64_requests_translated_total{",
        "coredns_cache_entries{",
        "coredns_proxy_request_duration_seconds_count{",
    ] {
        assert!(
            metrics.contains(family),
            "no {family} in /metrics:\n{metrics}"
        );
    }
}

fn namespace(role: &str) -> Ns {
    let ns = Ns::new(role);
    ns.ip(&["addr", "add", &format!("{LOCAL}/32"), "dev", "lo"]);
    ns
}

#[test]
fn every_node_cache_directive_under_ferrodns() {
    let ns = namespace("every-fd");
    let stop = fake_resolver(&ns);
    let dir = TempDir::new("every-ferrodns");
    let conf = dir.write("Corefile", &corefile());
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.0])
        .arg(ferrodns_bin())
        .args(["-conf", &conf]);
    let mut server = Proc::spawn(cmd);
    server.expect(BANNER, 1, WAIT);
    check_answers(&ns);
    drop(server);
    stop.store(true, Ordering::Relaxed);
}

#[test]
fn every_node_cache_directive_under_node_cache() {
    let ns = namespace("every-nc");
    let stop = fake_resolver(&ns);
    let dir = TempDir::new("every-node-cache");
    let base = dir.write("Corefile.base", &corefile());
    std::fs::create_dir_all(dir.path().join("kube-dns")).unwrap();
    let d = |p: &str| dir.file(p);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_node-cache")])
        .args([
            "-localip",
            LOCAL,
            "-setupinterface=false",
            "-setupiptables=false",
        ])
        .args(["-skipteardown", "-metrics-listen-address", "127.0.0.1:9353"])
        .args(["-basecorefile", &base])
        .args(["-conf", &d("Corefile"), "-kubednscm", &d("kube-dns")])
        .args(["-pidfile", &d("node-cache.pid")]);
    let mut server = Proc::spawn(cmd);
    server.expect(BANNER, 1, WAIT);
    check_answers(&ns);
    drop(server);
    stop.store(true, Ordering::Relaxed);
}

#[test]
fn plugins_lists_every_node_cache_plugin() {
    let dir = TempDir::new("every-plugins");
    let d = |p: &str| dir.file(p);
    let ferrodns = Command::new(ferrodns_bin())
        .arg("-plugins")
        .output()
        .unwrap();
    let node_cache = Command::new(env!("CARGO_BIN_EXE_node-cache"))
        .args([
            "-localip",
            LOCAL,
            "-setupinterface=false",
            "-setupiptables=false",
        ])
        .args([
            "-skipteardown",
            "-basecorefile",
            &d("Corefile.base"),
            "-conf",
            &d("Corefile"),
        ])
        .arg("-plugins")
        .output()
        .unwrap();
    for (bin, out) in [("ferrodns", ferrodns), ("node-cache", node_cache)] {
        assert!(out.status.success(), "{bin} -plugins: {out:?}");
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        let names: Vec<&str> = listed.lines().map(str::trim).collect();
        for p in NODE_CACHE_PLUGINS {
            assert!(
                names.contains(&p),
                "{bin} -plugins does not list {p}:\n{listed}"
            );
        }
    }
}

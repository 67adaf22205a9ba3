//! `ferrodns-testdns` and its library against a small responder on 127.0.0.1 that logs every
//! query: the order of the search candidates, a new socket per query, the retry after a
//! timeout, TCP after a truncated reply, and the binary's flags and report.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrodns_loadgen::lookup::{self, HostLookup, ResolvConf, TestDnsSpec};
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

const HOST: &str = "kube-dns.kube-system";
const FIRST: &str = "kube-dns.kube-system.ns1.svc.example.";
const FOUND: &str = "kube-dns.kube-system.svc.example.";
const THIRD: &str = "kube-dns.kube-system.example.";
const KUBE_DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

#[derive(Clone, Debug)]
struct Seen {
    name: String,
    qtype: RecordType,
    id: u16,
    port: u16,
    tcp: bool,
    dropped: bool,
}

/// What the responder does besides answering.
#[derive(Clone, Default)]
struct Behaviour {
    /// Drop the first UDP query of each type for this name.
    drop_once: Option<&'static str>,
    /// Answer UDP queries for this name with TC set and no records (TCP answers in full).
    truncate: Option<&'static str>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// The answer: an A record for `FOUND`, NODATA for its other types, NXDOMAIN for any other
/// name; RA and AA set.
fn answer(query: &Message, truncate: bool) -> Vec<u8> {
    let q = &query.queries[0];
    let mut r = Message::response(query.metadata.id, OpCode::Query);
    r.metadata.recursion_desired = query.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.metadata.authoritative = true;
    r.add_query(q.clone());
    if truncate {
        r.metadata.truncation = true;
    } else if q.name.to_ascii().eq_ignore_ascii_case(FOUND) {
        if q.query_type == RecordType::A {
            r.add_answer(Record::from_rdata(
                q.name.clone(),
                30,
                RData::A(A(KUBE_DNS)),
            ));
        }
    } else {
        r.metadata.response_code = ResponseCode::NXDomain;
    }
    r.to_vec().unwrap()
}

async fn responder(b: Behaviour) -> (SocketAddr, Log) {
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().unwrap();
    let log: Log = Arc::default();

    let l = log.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        let mut dropped: HashSet<RecordType> = HashSet::new();
        loop {
            let (len, from) = udp.recv_from(&mut buf).await.unwrap();
            let Ok(query) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            let q = &query.queries[0];
            let name = q.name.to_ascii().to_ascii_lowercase();
            let drop = b.drop_once == Some(name.as_str()) && dropped.insert(q.query_type);
            l.lock().unwrap().push(Seen {
                name: name.clone(),
                qtype: q.query_type,
                id: query.metadata.id,
                port: from.port(),
                tcp: false,
                dropped: drop,
            });
            if !drop {
                let tc = b.truncate == Some(name.as_str());
                let _ = udp.send_to(&answer(&query, tc), from).await;
            }
        }
    });

    let l = log.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, from) = tcp.accept().await.unwrap();
            let l = l.clone();
            tokio::spawn(async move {
                let len = s.read_u16().await.unwrap() as usize;
                let mut buf = vec![0u8; len];
                s.read_exact(&mut buf).await.unwrap();
                let query = Message::from_vec(&buf).unwrap();
                let q = &query.queries[0];
                l.lock().unwrap().push(Seen {
                    name: q.name.to_ascii().to_ascii_lowercase(),
                    qtype: q.query_type,
                    id: query.metadata.id,
                    port: from.port(),
                    tcp: true,
                    dropped: false,
                });
                let a = answer(&query, false);
                s.write_all(&(a.len() as u16).to_be_bytes()).await.unwrap();
                s.write_all(&a).await.unwrap();
            });
        }
    });
    (addr, log)
}

/// A directory of its own under the system temp dir, with a resolv.conf in it.
fn resolv_conf(tag: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrodns-testdns-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("resolv.conf");
    std::fs::write(&path, text).unwrap();
    path
}

fn cleanup(path: &std::path::Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

const POD_RESOLV: &str = "nameserver 127.0.0.1\n\
                          search ns1.svc.example svc.example example\n\
                          options ndots:5\n";

/// The names and types of `seen`, as a set (the A and AAAA of a candidate go out together).
fn pair(seen: &[Seen]) -> HashSet<(String, RecordType)> {
    seen.iter().map(|s| (s.name.clone(), s.qtype)).collect()
}

fn both(name: &str) -> HashSet<(String, RecordType)> {
    [RecordType::A, RecordType::AAAA]
        .into_iter()
        .map(|t| (name.to_string(), t))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_follow_the_search_list() {
    let (addr, log) = responder(Behaviour::default()).await;
    let path = resolv_conf("order", POD_RESOLV);
    let mut conf = ResolvConf::load(&path).unwrap();
    cleanup(&path);
    assert_eq!(conf.nameservers, ["127.0.0.1:53".parse().unwrap()]);
    assert_eq!(conf.ndots, 5);
    conf.nameservers = vec![addr];

    // One lookup: the first suffix (NXDOMAIN for A and AAAA), then the second (A found,
    // AAAA NODATA), and nothing more.
    let l = HostLookup::new(HOST, conf.clone()).unwrap();
    assert_eq!(l.names(), [FIRST, FOUND, THIRD, "kube-dns.kube-system."]);
    let addrs = l.lookup().await.unwrap();
    assert_eq!(addrs, [std::net::IpAddr::V4(KUBE_DNS)]);
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:#?}");
    assert_eq!(pair(&seen[..2]), both(FIRST), "{seen:#?}");
    assert_eq!(pair(&seen[2..]), both(FOUND), "{seen:#?}");
    let ports: HashSet<u16> = seen.iter().map(|s| s.port).collect();
    assert_eq!(ports.len(), 4, "a new socket for every query: {seen:#?}");
    assert!(seen.iter().all(|s| !s.tcp));

    // Four loops for a second.
    let mut spec = TestDnsSpec::new(conf);
    spec.concurrency = 4;
    spec.duration = Duration::from_secs(1);
    let report = lookup::run(spec).await.unwrap();
    assert!(report.lookups > 0, "{report}");
    assert_eq!(report.failed, 0, "{report}");
    assert_eq!(report.total(), report.lookups);
    assert!(
        report.max_us >= report.p50_us && report.max_us > 0,
        "{report}"
    );
    let seen = log.lock().unwrap().clone();
    assert!(
        seen.len() as u64 >= 4 * (report.lookups + 1),
        "{}",
        seen.len()
    );
    let names: HashSet<&str> = seen.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        HashSet::from([FIRST, FOUND]),
        "never the third suffix or the bare name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_query_is_sent_again_after_the_timeout() {
    let (addr, log) = responder(Behaviour {
        drop_once: Some(FIRST),
        ..Behaviour::default()
    })
    .await;
    let mut conf = ResolvConf::parse(&format!("{POD_RESOLV}options timeout:1 attempts:2\n"));
    assert_eq!((conf.timeout, conf.attempts), (Duration::from_secs(1), 2));
    conf.nameservers = vec![addr];
    let l = HostLookup::new(HOST, conf).unwrap();
    let t0 = Instant::now();
    let addrs = l.lookup().await.unwrap();
    let took = t0.elapsed();
    assert_eq!(addrs, [std::net::IpAddr::V4(KUBE_DNS)]);
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(1900),
        "one timeout of 1 s: {took:?}"
    );
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 6, "{seen:#?}");
    assert!(seen[..2].iter().all(|s| s.dropped), "{seen:#?}");
    assert_eq!(pair(&seen[..2]), both(FIRST));
    assert_eq!(pair(&seen[2..4]), both(FIRST), "sent again: {seen:#?}");
    assert_eq!(pair(&seen[4..]), both(FOUND));
    for t in [RecordType::A, RecordType::AAAA] {
        let tries: Vec<&Seen> = seen[..4].iter().filter(|s| s.qtype == t).collect();
        assert_ne!(tries[0].port, tries[1].port, "a new socket for the retry");
        assert_ne!(tries[0].id, tries[1].id, "a new ID for the retry");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_reply_is_asked_again_over_tcp() {
    let (addr, log) = responder(Behaviour {
        truncate: Some(FOUND),
        ..Behaviour::default()
    })
    .await;
    let mut conf = ResolvConf::parse(POD_RESOLV);
    conf.nameservers = vec![addr];
    let addrs = HostLookup::new(HOST, conf).unwrap().lookup().await.unwrap();
    assert_eq!(addrs, [std::net::IpAddr::V4(KUBE_DNS)]);
    let seen = log.lock().unwrap().clone();
    let tcp: Vec<&Seen> = seen.iter().filter(|s| s.tcp).collect();
    assert_eq!(tcp.len(), 2, "{seen:#?}");
    assert!(tcp.iter().all(|s| s.name == FOUND));
    for s in &tcp {
        let udp = seen
            .iter()
            .find(|u| !u.tcp && u.name == FOUND && u.qtype == s.qtype)
            .unwrap();
        assert_eq!(udp.id, s.id, "the same query, over TCP");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_name_is_counted_as_failed() {
    let (addr, _log) = responder(Behaviour::default()).await;
    let mut conf = ResolvConf::parse(POD_RESOLV);
    conf.nameservers = vec![addr];
    let l = HostLookup::new("nowhere.kube-system", conf.clone()).unwrap();
    assert_eq!(
        l.lookup().await,
        Err(lookup::LookupFailure::NoSuchHost),
        "every candidate is NXDOMAIN"
    );
    let mut spec = TestDnsSpec::new(conf);
    spec.host = "nowhere.kube-system".into();
    spec.concurrency = 2;
    spec.duration = Duration::from_millis(300);
    let report = lookup::run(spec).await.unwrap();
    assert_eq!(report.lookups, 0);
    assert!(report.failed > 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reports_one_json_object() {
    let (addr, log) = responder(Behaviour::default()).await;
    let path = resolv_conf("bin", POD_RESOLV);
    let bin = env!("CARGO_BIN_EXE_ferrodns-testdns");
    let out = tokio::process::Command::new(bin)
        .args(["-resolv", path.to_str().unwrap(), "-server"])
        .arg(addr.to_string())
        .args(["-c", "4", "--d", "1s", "-l=5000", "-json"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("[INFO] testdns: running"), "{stderr}");
    let line = stdout.trim();
    assert_eq!(line.lines().count(), 1, "{stdout}");
    let fields = [
        "lookups",
        "failed",
        "total",
        "per_second",
        "slow",
        "limit_ms",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
        "duration_s",
    ];
    let body = line.strip_prefix('{').unwrap().strip_suffix('}').unwrap();
    let kv: Vec<(&str, f64)> = body
        .split(',')
        .map(|f| {
            let (k, v) = f.split_once(':').unwrap();
            (k.trim_matches('"'), v.parse().unwrap())
        })
        .collect();
    assert_eq!(kv.iter().map(|(k, _)| *k).collect::<Vec<_>>(), fields);
    let get = |k: &str| kv.iter().find(|(n, _)| *n == k).unwrap().1;
    assert!(get("lookups") > 0.0, "{line}");
    assert_eq!(get("failed"), 0.0, "{line}");
    assert_eq!(get("limit_ms"), 5000.0);
    assert_eq!(get("duration_s"), 1.0);
    let names: HashSet<String> = log.lock().unwrap().iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, HashSet::from([FIRST.to_string(), FOUND.to_string()]));

    // Errors: a bad flag, a missing file, no nameserver.
    let run = |args: Vec<String>| async move {
        tokio::process::Command::new(bin)
            .args(args)
            .output()
            .await
            .unwrap()
    };
    let o = run(vec!["-bogus".into(), "1".into()]).await;
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown flag -bogus"));
    let o = run(vec!["-resolv".into(), "/nonexistent/resolv.conf".into()]).await;
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/resolv.conf"));
    std::fs::write(&path, "search svc.example\n").unwrap();
    let o = run(vec!["-resolv".into(), path.display().to_string()]).await;
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no usable nameserver"));
    let o = run(vec!["-c".into(), "x".into()]).await;
    assert!(!o.status.success());
    cleanup(&path);
}

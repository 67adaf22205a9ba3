//! The loop plugin in the real binary: a Corefile that forwards to itself ends the process
//! with status 1 and CoreDNS's fatal line; one without a loop keeps serving.

mod common;

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::RecordType;

#[test]
fn forwarding_to_itself_exits_1_with_the_fatal_line() {
    let port = free_port();
    let dir = TempDir::new("loop-exit");
    let conf = dir.write(
        "Corefile",
        &format!(".:{port} {{\n    loop\n    forward . 127.0.0.1:{port}\n}}\n"),
    );
    let mut child = Command::new(bin())
        .args(["-conf", conf.to_str().unwrap()])
        .current_dir(&dir.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ferrodns did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    let fatal: Vec<&str> = out.lines().filter(|l| l.starts_with("[FATAL]")).collect();
    assert_eq!(fatal.len(), 1, "{out}");
    let line = fatal[0];
    let rest = line
        .strip_prefix("[FATAL] plugin/loop: Loop (127.0.0.1:")
        .unwrap_or_else(|| panic!("{line}"));
    let (client_port, rest) = rest.split_once(' ').unwrap();
    assert!(client_port.parse::<u16>().is_ok(), "{line}");
    let want = format!(
        "-> :{port}) detected for zone \".\", see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO "
    );
    let probe = rest
        .strip_prefix(want.as_str())
        .unwrap_or_else(|| panic!("{line}"));
    let labels: Vec<&str> = probe
        .strip_suffix(".\"")
        .unwrap_or_else(|| panic!("{line}"))
        .split('.')
        .collect();
    assert_eq!(labels.len(), 2, "{line}");
    for l in labels {
        assert!(l.parse::<u64>().unwrap() < 1 << 62, "{line}");
    }
    assert!(err.is_empty(), "{err}");
}

/// Past the probe: the plugin has turned itself off; the process serves on.
fn still_serves(r: &mut Running) {
    for qtype in [RecordType::A, RecordType::HINFO] {
        let m = udp(r.addr(), &query("example.org.", qtype));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    }
    assert!(r.child.try_wait().unwrap().is_none(), "ferrodns exited");
    while let Ok(l) = r.lines.try_recv() {
        assert!(!l.contains("[FATAL]"), "{l}");
    }
}

#[test]
fn loop_with_whoami_keeps_serving() {
    let port = free_port();
    let mut r = Running::start(&format!(".:{port} {{\n    loop\n    whoami\n}}\n"), &[]);
    // An observation window, not a wait for a signal: the probe goes to the server itself and
    // nothing outside shows it was answered, so the check is that no fatal exit came in it.
    std::thread::sleep(Duration::from_millis(300));
    still_serves(&mut r);
    let m = udp(r.addr(), &query("example.org.", RecordType::A));
    assert_eq!(m.additionals.len(), 2, "whoami answers");
}

#[test]
fn loop_with_a_real_upstream_keeps_serving() {
    // A fake upstream answering everything NOERROR with an empty answer.
    let up = UdpSocket::bind("127.0.0.1:0").unwrap();
    let up_addr: SocketAddr = up.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, RecordType)>::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = up.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if let Some(qq) = q.queries.first() {
                s.lock()
                    .unwrap()
                    .push((qq.name().to_ascii(), qq.query_type()));
            }
            let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
            r.metadata.recursion_desired = q.metadata.recursion_desired;
            r.metadata.recursion_available = true;
            r.queries = q.queries.clone();
            let _ = up.send_to(&r.to_vec().unwrap(), from);
        }
    });
    let port = free_port();
    let mut r = Running::start(
        &format!(".:{port} {{\n    loop\n    forward . {up_addr}\n}}\n"),
        &[],
    );
    // The probe reaching the upstream, whose answer turns the plugin off (bounded wait).
    let deadline = Instant::now() + WAIT;
    while !seen
        .lock()
        .unwrap()
        .iter()
        .any(|(n, _)| n != "example.org.")
    {
        assert!(Instant::now() < deadline, "no probe reached the upstream");
        std::thread::sleep(Duration::from_millis(10));
    }
    still_serves(&mut r);
    // The probe reached the upstream once, as an HINFO query for `<n>.<n>.`.
    let seen = seen.lock().unwrap();
    let probes: Vec<&(String, RecordType)> =
        seen.iter().filter(|(n, _)| n != "example.org.").collect();
    assert_eq!(probes.len(), 1, "{seen:?}");
    assert_eq!(probes[0].1, RecordType::HINFO);
    assert_eq!(probes[0].0.split('.').count(), 3, "{seen:?}");
}

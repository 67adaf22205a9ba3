//! The command line: CoreDNS's flags and messages, `-validate`, finding the Corefile, the
//! pidfile and signals.

mod common;

use common::*;
use hickory_proto::rr::RecordType;

#[test]
fn broken_corefiles_exit_1_with_file_and_line() {
    let dir = examples_dir().join("broken");
    let cases = [
        (
            "unknown-directive.Corefile",
            ":3 - Error during parsing: Unknown directive 'frobnicate'",
        ),
        (
            "missing-brace.Corefile",
            ":2 - Syntax error: Unexpected token 'whoami', expecting '}'",
        ),
        ("bad-errors.Corefile", "plugin/errors: "),
        (
            "one-line-block.Corefile",
            ":1 - Error during parsing: Unexpected '}' because no matching opening brace",
        ),
        (
            "duplicate-zone.Corefile",
            "cannot serve dns://example.org.:1053 - it is already defined",
        ),
    ];
    for (file, want) in cases {
        let path = dir.join(file);
        let (code, _out, err) = run_to_end(&["-conf", path.to_str().unwrap()], &dir);
        assert_eq!(code, 1, "{file}: {err}");
        assert!(
            err.contains(want),
            "{file}: {err:?} does not contain {want:?}"
        );
        if file == "bad-errors.Corefile" {
            assert!(
                err.contains(&format!(
                    "{}:2 - Error during parsing: invalid log file: nowhere",
                    path.display()
                )),
                "{err}"
            );
        }
    }
}

#[test]
fn validate_passes_on_every_example_and_fails_on_broken_ones() {
    let dir = examples_dir();
    // What the examples read from the environment: kube-dns.Corefile's port and kubeconfig
    // (its header says how to run it against a test API server).
    let env_dir = TempDir::new("cli-examples-env");
    let kubeconfig = env_dir.write(
        "kubeconfig",
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
    );
    let kubeconfig = kubeconfig.to_str().unwrap();
    let env = [("DNS_PORT", "1053"), ("KUBECONFIG", kubeconfig)];
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("Corefile") {
            continue;
        }
        seen += 1;
        let (code, out, err) =
            run_to_end_env(&["-conf", path.to_str().unwrap(), "-validate"], &dir, &env);
        assert_eq!(code, 0, "{}: {err}", path.display());
        assert!(out.contains("valid"), "{out}");
    }
    assert!(seen >= 5, "only {seen} examples");
    let broken = dir.join("broken");
    for entry in std::fs::read_dir(&broken).unwrap() {
        let path = entry.unwrap().path();
        let (code, _, err) = run_to_end(&["-conf", path.to_str().unwrap(), "-validate"], &broken);
        assert_eq!(code, 1, "{}", path.display());
        assert!(
            err.contains(".Corefile:") || err.contains("cannot serve"),
            "{}: {err}",
            path.display()
        );
    }
}

#[test]
fn validate_reports_every_setup_error() {
    let d = TempDir::new("validate");
    let conf = d.write(
        "Corefile",
        ".:1053 {\n    errors bad\n    whoami extra\n}\nexample.org:1053 {\n    log {\n        class nope\n    }\n}\n",
    );
    let (code, _, err) = run_to_end(&["-conf", conf.to_str().unwrap(), "-validate"], &d.0);
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines.iter().any(|l| l.contains("Corefile:2 -")), "{err}");
    assert!(lines.iter().any(|l| l.contains("Corefile:3 -")), "{err}");
    // CoreDNS's log plugin reports a bad class without file:line; so do we.
    assert!(lines.contains(&"plugin/log: invalid Class: nope"), "{err}");
}

#[test]
fn flags_behave_like_corefiles_go_flags() {
    let d = TempDir::new("flags");
    let (code, _, err) = run_to_end(&["-conf", "/nonexistent/Corefile"], &d.0);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "loading Caddyfile via flag: open /nonexistent/Corefile: no such file or directory"
    );
    let (code, _, err) = run_to_end(&["extra"], &d.0);
    assert_eq!(
        (code, err.trim()),
        (1, "extra command line arguments: [extra]")
    );
    let (code, _, err) = run_to_end(&["-nope"], &d.0);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("flag provided but not defined: -nope\nUsage of "),
        "{err}"
    );
    let (code, out, _) = run_to_end(&["-version"], &d.0);
    assert_eq!(code, 0);
    assert!(out.starts_with("ferrodns-"), "{out}");
    let (code, out, _) = run_to_end(&["-plugins"], &d.0);
    assert_eq!(code, 0);
    // The directives of plugin.cfg, sorted, as CoreDNS lists its plugins.
    let cfg = std::fs::read_to_string(examples_dir().join("../plugin.cfg")).unwrap();
    let mut want: Vec<&str> = cfg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(':').next())
        .collect();
    want.sort_unstable();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
    assert!(want.contains(&"whoami") && want.contains(&"log"));
}

#[test]
fn default_corefile_is_whoami_and_log_on_the_dns_port() {
    // No -conf and no ./Corefile: `.:<port> { whoami log }`.
    let d = TempDir::new("default");
    let srv = Running::start_in(d, &[], &["-dns.port", "0"]);
    assert_eq!(srv.banner.len(), 1);
    assert!(srv.banner[0].starts_with(".:"), "{:?}", srv.banner);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], srv.port()));
    let r = udp(addr, &query("default.example.", RecordType::A));
    assert_eq!(r.additionals.len(), 2);
    // log is on: a query line in CoreDNS's format.
    let line = srv.expect_line("\"A IN default.example. udp ");
    assert!(line.starts_with("[INFO] 127.0.0.1:"), "{line}");
}

#[test]
fn corefile_in_working_directory_and_stdin() {
    let d = TempDir::new("cwd");
    d.write("Corefile", ".:0 {\n    bind 127.0.0.1\n    whoami\n}\n");
    let srv = Running::start_in(d, &[], &[]);
    assert!(srv.banner[0].ends_with(" on 127.0.0.1"), "{:?}", srv.banner);

    // -conf stdin
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(bin())
        .args(["-conf", "stdin", "-validate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b".:53 {\n    whoami bad\n}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stdin:2 - Error during parsing: Wrong argument count"),
        "{err}"
    );
}

#[test]
fn pidfile_and_signals() {
    let d = TempDir::new("pid");
    let pid_path = d.0.join("ferrodns.pid");
    let conf = d.write("Corefile", ".:0 {\n    bind 127.0.0.1\n    whoami\n}\n");
    let srv = Running::start_in(
        d,
        &["-conf", conf.to_str().unwrap()],
        &["-pidfile", pid_path.to_str().unwrap()],
    );
    let pid = std::fs::read_to_string(&pid_path).unwrap();
    assert_eq!(pid.trim().parse::<u32>().unwrap(), srv.child.id());
    // SIGHUP is ignored.
    let id = srv.child.id() as i32;
    unsafe_free_kill(id, "HUP");
    let r = udp(srv.addr(), &query("after.hup.", RecordType::A));
    assert_eq!(r.additionals.len(), 2);
    // SIGTERM: CoreDNS's message, exit 0, pidfile removed.
    unsafe_free_kill(id, "TERM");
    srv.expect_line("[INFO] SIGTERM: Shutting down servers then terminating");
    let mut srv = srv;
    let status = srv.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!pid_path.exists(), "pidfile removed");
}

fn unsafe_free_kill(pid: i32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// SIGTERM stops after answering what is in flight: a query waiting on a slow upstream, over
/// UDP and over TCP, still gets its answer.
#[test]
fn sigterm_answers_queries_in_flight() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::time::Duration;

    // A slow upstream: answers every query 1 s late, with one A record.
    let up = UdpSocket::bind("127.0.0.1:0").unwrap();
    let up_addr = up.local_addr().unwrap();
    let up_tcp = TcpListener::bind(up_addr).unwrap();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<()>();
    let answer = |q: &[u8]| {
        let mut m = hickory_proto::op::Message::from_vec(q).unwrap();
        let name = m.queries[0].name().clone();
        m.metadata.message_type = hickory_proto::op::MessageType::Response;
        m.answers.push(hickory_proto::rr::Record::from_rdata(
            name,
            60,
            hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, 9)),
        ));
        m.to_vec().unwrap()
    };
    {
        let seen_tx = seen_tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = up.recv_from(&mut buf) {
                let _ = seen_tx.send(());
                // The slowness under test (a query in flight at SIGTERM), not a wait.
                std::thread::sleep(Duration::from_secs(1));
                let _ = up.send_to(&answer(&buf[..n]), from);
            }
        });
    }
    std::thread::spawn(move || {
        for c in up_tcp.incoming() {
            let Ok(mut c) = c else { return };
            let seen_tx = seen_tx.clone();
            std::thread::spawn(move || {
                let mut len = [0u8; 2];
                while c.read_exact(&mut len).is_ok() {
                    let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if c.read_exact(&mut q).is_err() {
                        return;
                    }
                    let _ = seen_tx.send(());
                    // The slowness under test, as over UDP.
                    std::thread::sleep(Duration::from_secs(1));
                    let r = answer(&q);
                    let mut out = (r.len() as u16).to_be_bytes().to_vec();
                    out.extend_from_slice(&r);
                    let _ = c.write_all(&out);
                }
            });
        }
    });

    let srv = Running::start(
        &format!(".:0 {{\n    bind 127.0.0.1\n    forward . {up_addr}\n}}\n"),
        &[],
    );
    let addr = srv.addr();
    let id = srv.child.id() as i32;
    let client_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    client_udp
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client_udp
        .send_to(&query("slow.udp.", RecordType::A).to_vec().unwrap(), addr)
        .unwrap();
    let mut client_tcp = TcpStream::connect(addr).unwrap();
    client_tcp
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let wire = query("slow.tcp.", RecordType::A).to_vec().unwrap();
    let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&wire);
    client_tcp.write_all(&framed).unwrap();
    // Both are at the upstream: they are in flight.
    for _ in 0..2 {
        seen_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }
    unsafe_free_kill(id, "TERM");
    let mut buf = [0u8; 1500];
    let (n, _) = client_udp
        .recv_from(&mut buf)
        .expect("UDP answer after SIGTERM");
    let r = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(r.answers.len(), 1);
    let mut len = [0u8; 2];
    client_tcp
        .read_exact(&mut len)
        .expect("TCP answer after SIGTERM");
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    client_tcp.read_exact(&mut body).unwrap();
    assert_eq!(
        hickory_proto::op::Message::from_vec(&body)
            .unwrap()
            .answers
            .len(),
        1
    );
    let mut srv = srv;
    assert_eq!(srv.child.wait().unwrap().code(), Some(0));
}

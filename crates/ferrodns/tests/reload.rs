//! SIGUSR1 reloads the Corefile as CoreDNS does: the new config answers once
//! "Reloading complete" is logged, a broken Corefile leaves the running one serving, addresses
//! that stay keep their sockets (no query is lost meanwhile), new ones are bound and removed ones
//! closed.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn rcode(addr: SocketAddr, name: &str) -> ResponseCode {
    udp(addr, &query(name, RecordType::A))
        .metadata
        .response_code
}

#[test]
fn sigusr1_reloads_without_losing_queries() {
    let (p1, p2) = (free_port(), free_port());
    let first = format!("example.org:{p1} {{\n    bind 127.0.0.1\n    whoami\n}}\n");
    let srv = Running::start(&first, &[]);
    let conf = srv.dir.0.join("Corefile");
    let a1 = SocketAddr::from(([127, 0, 0, 1], p1));
    let a2 = SocketAddr::from(([127, 0, 0, 1], p2));
    assert_eq!(rcode(a1, "www.example.org."), ResponseCode::NoError);
    assert_eq!(rcode(a1, "www.example.net."), ResponseCode::Refused);

    // Queries keep flowing from another thread through every reload below; each must be
    // answered (NOERROR or REFUSED, whichever config answers it).
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, lost) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, sent, lost) = (stop.clone(), sent.clone(), lost.clone());
        std::thread::spawn(move || {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 4096];
            let mut id = 0u16;
            while !stop.load(Ordering::SeqCst) {
                id = id.wrapping_add(1);
                let mut q = query("www.example.org.", RecordType::A);
                q.metadata.id = id;
                s.send_to(&q.to_vec().unwrap(), a1).unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
                match s.recv_from(&mut buf) {
                    Ok((n, _))
                        if Message::from_vec(&buf[..n]).is_ok_and(|m| m.metadata.id == id) => {}
                    _ => {
                        lost.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        })
    };

    // 1. A new zone on the same port, and a new port.
    let second = format!(
        "{first}example.net:{p1} {{\n    bind 127.0.0.1\n    whoami\n}}\n\
         example.com:{p2} {{\n    bind 127.0.0.1\n    whoami\n}}\n"
    );
    std::fs::write(&conf, &second).unwrap();
    signal(srv.child.id(), "USR1");
    srv.expect_line("[INFO] SIGUSR1: Reloading");
    srv.expect_line("[INFO] Reloading complete");
    assert_eq!(rcode(a1, "www.example.net."), ResponseCode::NoError);
    assert_eq!(rcode(a2, "www.example.com."), ResponseCode::NoError);

    // 2. A broken Corefile: logged, and the running config keeps serving.
    std::fs::write(&conf, format!("{second}broken {{\n")).unwrap();
    signal(srv.child.id(), "USR1");
    let line = srv.expect_line("[ERROR] Restart failed:");
    assert!(line.contains("Corefile:"), "{line}");
    assert_eq!(rcode(a1, "www.example.net."), ResponseCode::NoError);
    assert_eq!(rcode(a2, "www.example.com."), ResponseCode::NoError);

    // 3. Back to the first config: example.net goes, the second port closes.
    std::fs::write(&conf, &first).unwrap();
    signal(srv.child.id(), "USR1");
    srv.expect_line("[INFO] Reloading complete");
    assert_eq!(rcode(a1, "www.example.net."), ResponseCode::Refused);
    assert!(
        udp_raw(
            a2,
            &query("www.example.com.", RecordType::A).to_vec().unwrap(),
            Duration::from_millis(500)
        )
        .is_none(),
        "the removed listener still answers"
    );

    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    let (sent, lost) = (sent.load(Ordering::SeqCst), lost.load(Ordering::SeqCst));
    assert!(sent > 50, "only {sent} queries sent");
    assert_eq!(lost, 0, "{lost} of {sent} queries lost across reloads");
}

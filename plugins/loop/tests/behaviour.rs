//! The loop handler and its probe: non-probe queries pass, the probe seen three times is a
//! loop, a completed exchange turns the plugin off, a failed one resets the count.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrodns_plugin::proto::op::{Message, MessageType, ResponseCode};
use ferrodns_plugin::proto::rr::RecordType;
use ferrodns_plugin::{ListenAddr, Listening, Plugin, Reply};
use ferrodns_plugin_loop::{Destination, Loop, Timing, probe};
use ferrodns_plugin_test::{self as testkit, Fixed};

type Seen = Arc<Mutex<Vec<String>>>;

fn looping(zone: &str, qname: &str) -> (Arc<Loop>, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let l = Loop::with_probe_name(zone, qname).on_loop(Arc::new(move |m: &str| {
        s.lock().unwrap().push(m.to_string());
    }));
    (Arc::new(l), seen)
}

async fn rcode(l: &Arc<Loop>, name: &str, qtype: RecordType) -> ResponseCode {
    let chain: Vec<Arc<dyn Plugin>> = vec![l.clone(), Fixed::rcode(ResponseCode::NXDomain)];
    let mut req = testkit::request(name, qtype);
    match testkit::run(&chain, &mut req).await {
        Ok(Reply::Message(m)) => m.metadata.response_code,
        Ok(Reply::Rcode(rc)) => rc,
        other => panic!("unexpected outcome {other:?}"),
    }
}

#[tokio::test]
async fn other_queries_pass_through() {
    let (l, fatal) = looping(".", "1.2.");
    for _ in 0..5 {
        assert_eq!(
            rcode(&l, "example.org.", RecordType::A).await,
            ResponseCode::NXDomain
        );
        // The probe name with another type is not counted.
        assert_eq!(
            rcode(&l, "1.2.", RecordType::A).await,
            ResponseCode::NXDomain
        );
        // HINFO for another name is not counted.
        assert_eq!(
            rcode(&l, "3.4.", RecordType::HINFO).await,
            ResponseCode::NXDomain
        );
    }
    assert_eq!(l.seen(), 0);
    assert!(fatal.lock().unwrap().is_empty());
}

#[tokio::test]
async fn zone_mismatch_passes() {
    let (l, fatal) = looping("example.org.", "1.2.example.org.");
    for _ in 0..4 {
        assert_eq!(
            rcode(&l, "a.example.com.", RecordType::HINFO).await,
            ResponseCode::NXDomain
        );
    }
    assert_eq!(l.seen(), 0);
    assert!(fatal.lock().unwrap().is_empty());
}

#[tokio::test]
async fn probe_seen_three_times_is_a_loop() {
    let (l, fatal) = looping("example.org.", "11.22.example.org.");
    l.set_target(":1053");
    // Counted without case, passed on each time.
    for (i, name) in ["11.22.example.org.", "11.22.EXAMPLE.org."]
        .iter()
        .enumerate()
    {
        assert_eq!(
            rcode(&l, name, RecordType::HINFO).await,
            ResponseCode::NXDomain
        );
        assert_eq!(l.seen(), i + 1);
    }
    assert!(fatal.lock().unwrap().is_empty());
    rcode(&l, "11.22.example.org.", RecordType::HINFO).await;
    assert_eq!(
        fatal.lock().unwrap().as_slice(),
        [
            "Loop (127.0.0.1:40212 -> :1053) detected for zone \"example.org.\", see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO 11.22.example.org.\""
        ]
    );
}

#[tokio::test]
async fn disabled_passes_everything() {
    let (l, fatal) = looping(".", "1.2.");
    l.disable();
    for _ in 0..5 {
        assert_eq!(
            rcode(&l, "1.2.", RecordType::HINFO).await,
            ResponseCode::NXDomain
        );
    }
    assert_eq!(l.seen(), 0);
    assert!(fatal.lock().unwrap().is_empty());
}

#[test]
fn message_names_ipv6_and_mapped_clients_as_go_does() {
    let l = Loop::with_probe_name(".", "1.2.");
    l.set_target("[::1]:53");
    let v6: SocketAddr = "[2001:db8::1]:5353".parse().unwrap();
    assert!(
        l.message(v6)
            .starts_with("Loop ([2001:db8::1]:5353 -> [::1]:53) detected for zone \".\"")
    );
    let mapped: SocketAddr = "[::ffff:127.0.0.1]:999".parse().unwrap();
    assert!(l.message(mapped).starts_with("Loop (127.0.0.1:999 -> "));
}

fn quick() -> Timing {
    Timing {
        deadline: Duration::from_secs(5),
        retry: Duration::from_millis(50),
        timeout: Duration::from_millis(500),
    }
}

/// A UDP server on loopback answering every query NOERROR; returns its address and what it
/// received.
async fn answering_server() -> (SocketAddr, Arc<Mutex<Vec<Message>>>) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let got: Arc<Mutex<Vec<Message>>> = Arc::default();
    let g = got.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
            r.queries = q.queries.clone();
            g.lock().unwrap().push(q);
            sock.send_to(&r.to_vec().unwrap(), from).await.unwrap();
        }
    });
    (addr, got)
}

#[tokio::test]
async fn probe_goes_to_the_bound_address_and_turns_the_plugin_off() {
    let (server, got) = answering_server().await;
    let (l, fatal) = looping("example.org.", "5.6.example.org.");
    let listening = Listening::default();
    // Configured as all addresses, port 53; bound where the fake server is.
    listening.set(vec![ListenAddr {
        host: String::new(),
        port: 53,
        bound: server,
    }]);
    let dest = Destination {
        host: String::new(),
        port: "53".into(),
    };
    tokio::time::timeout(
        Duration::from_secs(5),
        probe(l.clone(), listening, dest, quick()),
    )
    .await
    .expect("probe ends");
    assert!(l.is_disabled());
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1);
    let q = &got[0];
    assert!(q.metadata.recursion_desired);
    assert_eq!(q.queries.len(), 1);
    assert_eq!(q.queries[0].name().to_ascii(), "5.6.example.org.");
    assert_eq!(q.queries[0].query_type(), RecordType::HINFO);
    assert_eq!(u16::from(q.queries[0].query_class()), 1);
    assert!(fatal.lock().unwrap().is_empty());
}

#[tokio::test]
async fn probe_waits_for_the_listeners() {
    let (server, got) = answering_server().await;
    let (l, _) = looping(".", "7.8.");
    let listening = Listening::default();
    let dest = Destination {
        host: "127.0.0.1".into(),
        port: "0".into(),
    };
    let task = tokio::spawn(probe(l.clone(), listening.clone(), dest, quick()));
    // 200 ms of the probe's (tokio) time pass with no listener: paused, the clock only moves
    // once the probe has run as far as it can, so it has had every chance to send too early.
    tokio::time::pause();
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::resume();
    assert!(got.lock().unwrap().is_empty());
    assert!(!l.is_disabled());
    listening.set(vec![ListenAddr {
        host: "127.0.0.1".into(),
        port: 0,
        bound: server,
    }]);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("probe ends")
        .unwrap();
    assert!(l.is_disabled());
    assert_eq!(got.lock().unwrap().len(), 1);
    // With port 0 configured, the message names the port actually bound.
    assert!(
        l.message("127.0.0.1:1".parse().unwrap())
            .contains(&format!("-> 127.0.0.1:{})", server.port()))
    );
}

#[tokio::test]
async fn failed_exchanges_reset_the_count_and_the_deadline_turns_it_off() {
    // Nothing listens on this port: every exchange fails (refused or timed out).
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let (l, fatal) = looping(".", "9.9.");
    rcode(&l, "9.9.", RecordType::HINFO).await;
    rcode(&l, "9.9.", RecordType::HINFO).await;
    assert_eq!(l.seen(), 2);
    let listening = Listening::default();
    listening.set(vec![ListenAddr {
        host: "127.0.0.1".into(),
        port: addr.port(),
        bound: addr,
    }]);
    let dest = Destination {
        host: "127.0.0.1".into(),
        port: addr.port().to_string(),
    };
    let timing = Timing {
        deadline: Duration::from_millis(600),
        retry: Duration::from_millis(50),
        timeout: Duration::from_millis(100),
    };
    tokio::time::timeout(
        Duration::from_secs(5),
        probe(l.clone(), listening, dest, timing),
    )
    .await
    .expect("probe ends");
    assert_eq!(l.seen(), 0);
    assert!(l.is_disabled());
    assert!(fatal.lock().unwrap().is_empty());
}

#[tokio::test]
async fn startup_hook_probes_the_blocks_listener() {
    let (server, got) = answering_server().await;
    let shared = ferrodns_plugin::Shared::default();
    // The test kit's block is `.:53`: all addresses, port 53.
    testkit::setup_with(&ferrodns_plugin_loop::DESCRIPTOR, "loop", &shared).expect("setup");
    let hooks = shared.lifecycles();
    assert_eq!(hooks.len(), 1);
    // Startup returns at once: the probe waits for the listeners in the background.
    tokio::time::timeout(Duration::from_secs(1), hooks[0].on_startup())
        .await
        .expect("startup does not block")
        .expect("startup");
    shared.listening.set(vec![ListenAddr {
        host: String::new(),
        port: 53,
        bound: server,
    }]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while got.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no probe arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let name = got.lock().unwrap()[0].queries[0].name().to_ascii();
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    assert_eq!(labels.len(), 2, "{name}");
    hooks[0].on_shutdown().await;
}

//! Sick and hostile upstreams never stall or crash the forwarder, and nothing they forge is
//! taken as an answer: silent, slow, SERVFAIL storms, closing TCP, TCP reset mid-reply, UDP
//! replies cut short or oversized, garbage, wrong ID, wrong question, refused port, and forged
//! answers raced against the real one from another port, another address or with another ID.
//! Each case has a measured upper bound with slack.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Act, Fake, Via, answer, decoded, forwarder, ok, query};
use ferrodns_plugin::proto::op::ResponseCode;
use ferrodns_plugin::{Plugin, PluginError, Protocol, Reply};

fn chain(f: &Arc<ferrodns_plugin_forward::Forward>) -> Vec<Arc<dyn Plugin>> {
    vec![f.clone() as Arc<dyn Plugin>]
}

fn servfail(r: &Result<Reply, PluginError>) -> String {
    match r {
        Err(e) if e.rcode == ResponseCode::ServFail => e.message.clone(),
        other => panic!("expected SERVFAIL, got {other:?}"),
    }
}

const OPTS: &str = "read_timeout 150ms\nmax_fails 0";

async fn timed(
    f: &Arc<ferrodns_plugin_forward::Forward>,
    proto: Protocol,
) -> (Duration, Result<Reply, PluginError>) {
    let t0 = Instant::now();
    let r = query(&chain(f), "example.org.", proto).await.1;
    (t0.elapsed(), r)
}

#[tokio::test]
async fn silent_upstream_fails_within_two_read_timeouts() {
    let up = Fake::start(|_, _| Act::Drop).await;
    let (f, _) = forwarder(&format!(". {} {{\n{OPTS}\n}}", up.addr));
    for proto in [Protocol::Udp, Protocol::Tcp] {
        let (took, r) = timed(&f, proto).await;
        let msg = servfail(&r);
        assert!(msg.contains("i/o timeout"), "{msg}");
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_millis(1000),
            "{took:?}"
        );
    }
    // Two attempts per query (max_connect_attempts defaults to 2 per upstream).
    assert_eq!(up.count(), 4);
    assert_eq!(f.upstreams()[0].in_flight(), 0);
}

#[tokio::test]
async fn slow_upstream_is_a_failure_and_late_replies_are_dropped() {
    let up = Fake::start(|q, _| Act::Later(Duration::from_millis(400), ok(q))).await;
    let (f, _) = forwarder(&format!(". {} {{\n{OPTS}\n}}", up.addr));
    let (took, r) = timed(&f, Protocol::Udp).await;
    servfail(&r);
    assert!(took < Duration::from_millis(1000), "{took:?}");
    // The late replies arrive on the pooled socket and are dropped without harm: wait
    // (bounded) until the upstream has sent every one of them.
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.late_sent() < up.count() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(up.late_sent(), up.count(), "late replies not sent");
    assert_eq!(f.upstreams()[0].in_flight(), 0);
}

#[tokio::test]
async fn wrong_id_is_ignored() {
    let up = Fake::start(|q, _| {
        let mut r = ok(q);
        r[0] ^= 0x5a;
        Act::Reply(r)
    })
    .await;
    let (f, _) = forwarder(&format!(". {} {{\n{OPTS}\n}}", up.addr));
    for proto in [Protocol::Udp, Protocol::Tcp] {
        let (took, r) = timed(&f, proto).await;
        servfail(&r);
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }
}

#[tokio::test]
async fn garbage_is_skipped_or_fails() {
    // Too short for a header: skipped on UDP, a broken stream on TCP.
    let up = Fake::start(|_, _| Act::Reply(vec![0xde, 0xad, 0xbe])).await;
    let (f, _) = forwarder(&format!(". {} {{\n{OPTS}\n}}", up.addr));
    for proto in [Protocol::Udp, Protocol::Tcp] {
        let (took, r) = timed(&f, proto).await;
        servfail(&r);
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }
    // The right ID but a body that does not parse (a bad label type).
    let up = Fake::start(|q, _| {
        let mut r = q[..12].to_vec();
        r[2] |= 0x80;
        r.extend_from_slice(&[0x80, 0, 0, 0]);
        Act::Reply(r)
    })
    .await;
    let (f, _) = forwarder(&format!(
        ". {} {{\nread_timeout 3s\nmax_fails 0\n}}",
        up.addr
    ));
    let (took, r) = timed(&f, Protocol::Udp).await;
    servfail(&r);
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[tokio::test]
async fn wrong_question_is_formerr() {
    let up = Fake::start(|q, _| {
        let mut other = q.to_vec();
        // Change the first letter of the name.
        other[13] = b'z';
        let mut r = ok(&other);
        r[0..2].copy_from_slice(&q[0..2]);
        Act::Reply(r)
    })
    .await;
    let (f, _) = forwarder(&format!(". {}", up.addr));
    let (req, r) = query(&chain(&f), "example.org.", Protocol::Udp).await;
    let m = decoded(&r);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(m.metadata.id, req.id());
    assert_eq!(m.queries, req.message().queries);
    assert!(m.answers.is_empty());
    // A reply without QR does not match either.
    let up = Fake::start(|q, _| {
        let mut r = ok(q);
        r[2] &= 0x7f;
        Act::Reply(r)
    })
    .await;
    let (f, _) = forwarder(&format!(". {}", up.addr));
    let m = decoded(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
}

#[tokio::test]
async fn closing_tcp_upstream_fails_fast() {
    let up = Fake::start(|_, _| Act::Close).await;
    let (f, _) = forwarder(&format!(". {} {{\nforce_tcp\nmax_fails 0\n}}", up.addr));
    let (took, r) = timed(&f, Protocol::Udp).await;
    assert_eq!(servfail(&r), "EOF");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(up.count_via(Via::Tcp), 2);
}

#[tokio::test]
async fn upstream_closing_after_each_answer_is_retried_silently() {
    // Answers once per connection, then closes it: the next query finds the pooled connection
    // closed and retries on a new one without an error.
    let up = Fake::start(|q, _| Act::Reply(ok(q))).await;
    let (f, _) = forwarder(&format!(". {} {{\nforce_tcp\nmax_fails 0\n}}", up.addr));
    let once = Fake::start(|_, _| Act::Close).await;
    drop(once);
    for _ in 0..3 {
        let m = decoded(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
        assert_eq!(m.answers.len(), 1);
    }
}

#[tokio::test]
async fn refused_port_fails_fast() {
    // Bind and drop to find a port nobody listens on.
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr").port()
    };
    let (f, _) = forwarder(&format!(". 127.0.0.1:{port} {{\nmax_fails 0\n}}"));
    let (took, r) = timed(&f, Protocol::Tcp).await;
    let msg = servfail(&r);
    assert!(msg.contains("connection refused"), "{msg}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    let (took, r) = timed(&f, Protocol::Udp).await;
    servfail(&r);
    assert!(took < Duration::from_millis(2500), "{took:?}");
}

#[tokio::test]
async fn one_sick_upstream_does_not_hold_back_the_other() {
    let sick = Fake::start(|_, _| Act::Drop).await;
    let good = Fake::start(|q, _| Act::Reply(ok(q))).await;
    let (f, _) = forwarder(&format!(
        ". {} {} {{\npolicy sequential\nread_timeout 150ms\n}}",
        sick.addr, good.addr
    ));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let plugins = chain(&f);
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = query(&plugins, &format!("n{i}.example."), Protocol::Udp)
                .await
                .1;
            (t0.elapsed(), decoded(&r))
        }));
    }
    for t in tasks {
        let (took, m) = t.await.expect("join");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }
    assert_eq!(f.upstreams()[0].in_flight(), 0);
    assert_eq!(f.upstreams()[1].in_flight(), 0);
}

#[tokio::test]
async fn cancelled_queries_leave_nothing_pending() {
    let up = Fake::start(|_, _| Act::Drop).await;
    let (f, _) = forwarder(&format!(
        ". {} {{\nread_timeout 5s\nmax_fails 0\n}}",
        up.addr
    ));
    for proto in [Protocol::Udp, Protocol::Tcp] {
        let plugins = chain(&f);
        let r = tokio::time::timeout(
            Duration::from_millis(100),
            query(&plugins, "example.org.", proto),
        )
        .await;
        assert!(r.is_err());
    }
    assert_eq!(f.upstreams()[0].in_flight(), 0);
}

#[tokio::test]
async fn in_flight_is_bounded_per_upstream() {
    let up = Fake::start(|_, _| Act::Drop).await;
    let (f, _) = forwarder(&format!(
        ". {} {{\nforce_tcp\nread_timeout 1s\nmax_fails 0\nmax_connect_attempts 1\n}}",
        up.addr
    ));
    let mut tasks = Vec::new();
    for i in 0..1200 {
        let plugins = chain(&f);
        tasks.push(tokio::spawn(async move {
            query(&plugins, &format!("n{i}.example."), Protocol::Udp)
                .await
                .1
        }));
    }
    // Past 32 connections x 32 queries the rest fail at once instead of queueing. Wait
    // (bounded) until every query is either in flight or done: in flight is then at its peak.
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.upstreams()[0].in_flight() + tasks.iter().filter(|t| t.is_finished()).count()
        < tasks.len()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pending = f.upstreams()[0].in_flight();
    assert!(pending <= 32 * 32, "{pending}");
    let mut busy = 0;
    for t in tasks {
        if let Err(e) = t.await.expect("join")
            && e.message.contains("too many queries in flight")
        {
            busy += 1;
        }
    }
    assert!(busy >= 1200 - 32 * 32, "{busy}");
    assert_eq!(f.upstreams()[0].in_flight(), 0);
    let _ = answer;
}

#[tokio::test]
async fn tcp_connection_with_an_unanswered_query_is_not_reused() {
    let up = Fake::start(|q, _| {
        if q.windows(5).any(|w| w == b"stuck") {
            Act::Drop
        } else {
            Act::Reply(ok(q))
        }
    })
    .await;
    let (f, _) = forwarder(&format!(
        ". {} {{\nforce_tcp\nread_timeout 150ms\nmax_fails 0\nmax_connect_attempts 1\n}}",
        up.addr
    ));
    servfail(&query(&chain(&f), "stuck.example.", Protocol::Udp).await.1);
    let m = decoded(&query(&chain(&f), "fine.example.", Protocol::Udp).await.1);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(up.tcp_accepts.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn servfail_storm_is_passed_on_promptly_and_leaves_nothing_pending() {
    let up = Fake::start(|q, _| Act::Reply(answer(q, ResponseCode::ServFail, &[]))).await;
    let (f, _) = forwarder(&format!(". {} {{\n{OPTS}\n}}", up.addr));
    let mut tasks = Vec::new();
    for i in 0..500 {
        let plugins = chain(&f);
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = query(&plugins, &format!("s{i}.example."), Protocol::Udp)
                .await
                .1;
            (t0.elapsed(), decoded(&r))
        }));
    }
    for t in tasks {
        let (took, m) = t.await.expect("join");
        // The upstream's own SERVFAIL, as a reply (CoreDNS does not retry it).
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }
    assert_eq!(up.count(), 500);
    assert_eq!(f.upstreams()[0].in_flight(), 0);
}

#[tokio::test]
async fn tcp_stream_reset_mid_reply_fails_fast_and_the_next_connection_works() {
    let torn = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let t = torn.clone();
    let up = Fake::start(move |q, _| {
        if t.load(std::sync::atomic::Ordering::SeqCst) {
            Act::Torn(ok(q))
        } else {
            Act::Reply(ok(q))
        }
    })
    .await;
    let (f, _) = forwarder(&format!(
        ". {} {{\nforce_tcp\nread_timeout 2s\nmax_fails 0\n}}",
        up.addr
    ));
    let (took, r) = timed(&f, Protocol::Udp).await;
    servfail(&r);
    // Well under the read timeout: the closed stream ends the wait.
    assert!(took < Duration::from_millis(1500), "{took:?}");
    torn.store(false, std::sync::atomic::Ordering::SeqCst);
    let m = decoded(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(f.upstreams()[0].in_flight(), 0);
}

#[tokio::test]
async fn udp_reply_cut_short_is_never_an_answer() {
    let up =
        Fake::start(|q, _| Act::Torn(answer(q, ResponseCode::NoError, &[[192, 0, 2, 1]; 8]))).await;
    let (f, _) = forwarder(&format!(". {} {{\n{OPTS}\n}}", up.addr));
    let (took, r) = timed(&f, Protocol::Udp).await;
    assert!(took < Duration::from_millis(1000), "{took:?}");
    // CoreDNS's DNS library makes an overflowing UDP reply an empty TC one: the client retries
    // over TCP; none of the cut records is passed on.
    let m = decoded(&r);
    assert!(m.metadata.truncation, "{m:?}");
    assert!(m.answers.is_empty(), "{m:?}");
}

#[tokio::test]
async fn oversized_udp_reply_becomes_an_empty_tc_reply() {
    // 200 A records: about 3 KB, more than a client without EDNS takes.
    let up =
        Fake::start(|q, _| Act::Reply(answer(q, ResponseCode::NoError, &[[192, 0, 2, 9]; 200])))
            .await;
    let (f, _) = forwarder(&format!(". {} {{\n{OPTS}\n}}", up.addr));
    let m = decoded(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    assert!(m.metadata.truncation, "{m:?}");
    assert!(m.answers.is_empty());
    assert_eq!(m.queries.len(), 1);
    // Over TCP from the client the whole answer comes back.
    let m = decoded(&query(&chain(&f), "example.org.", Protocol::Tcp).await.1);
    assert_eq!(m.answers.len(), 200);
}

/// An upstream that, for every query, first sends forged answers (192.0.2.66) with the right ID
/// and question from another port and from another address, and one with a wrong ID from its
/// own address, then the real answer (192.0.2.1) from its own. Records the IDs and source
/// ports it saw.
struct Spoofing {
    addr: std::net::SocketAddr,
    seen: Arc<std::sync::Mutex<Vec<(u16, u16)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Spoofing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Spoofing {
    async fn start() -> Spoofing {
        let real = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = real.local_addr().expect("addr");
        let other_port = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        // Loopback answers for all of 127/8: the same port on another address.
        let other_addr = tokio::net::UdpSocket::bind(("127.0.0.2", addr.port()))
            .await
            .expect("bind 127.0.0.2");
        let seen: Arc<std::sync::Mutex<Vec<(u16, u16)>>> = Arc::default();
        let s = seen.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = real.recv_from(&mut buf).await else {
                    return;
                };
                let q = &buf[..n];
                s.lock()
                    .expect("lock")
                    .push((u16::from_be_bytes([q[0], q[1]]), from.port()));
                let forged = answer(q, ResponseCode::NoError, &[[192, 0, 2, 66]]);
                let _ = other_port.send_to(&forged, from).await;
                let _ = other_addr.send_to(&forged, from).await;
                let mut wrong_id = forged.clone();
                wrong_id[1] ^= 0x01;
                let _ = real.send_to(&wrong_id, from).await;
                let _ = real.send_to(&ok(q), from).await;
            }
        });
        Spoofing { addr, seen, task }
    }
}

#[tokio::test]
async fn forged_replies_raced_against_the_real_one_are_never_accepted() {
    let up = Spoofing::start().await;
    let (f, _) = forwarder(&format!(". {} {{\nmax_fails 0\n}}", up.addr));
    for i in 0..100 {
        let m = decoded(
            &query(&chain(&f), &format!("q{i}.example."), Protocol::Udp)
                .await
                .1,
        );
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.answers.len(), 1, "{m:?}");
        assert_eq!(
            m.answers[0].data,
            ferrodns_plugin::proto::rr::RData::A(ferrodns_plugin::proto::rr::rdata::A::new(
                192, 0, 2, 1
            )),
            "a forged answer was taken"
        );
    }
    assert_eq!(f.upstreams()[0].in_flight(), 0);
}

#[tokio::test]
async fn upstream_query_ids_are_random_whatever_the_client_sent() {
    let up = Spoofing::start().await;
    let (f, _) = forwarder(&format!(". {} {{\nmax_fails 0\n}}", up.addr));
    // Every client query has ID 4242 (the test kit's).
    for i in 0..300 {
        let r = query(&chain(&f), &format!("r{i}.example."), Protocol::Udp).await;
        assert_eq!(decoded(&r.1).answers.len(), 1);
    }
    let seen = up.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 300);
    let ids: std::collections::HashSet<u16> = seen.iter().map(|(id, _)| *id).collect();
    // 300 draws from 65536: a few collisions at most.
    assert!(ids.len() >= 295, "only {} distinct IDs", ids.len());
    let steps: std::collections::HashSet<u16> = seen
        .windows(2)
        .map(|w| w[1].0.wrapping_sub(w[0].0))
        .collect();
    assert!(
        steps.len() > 250,
        "IDs follow a pattern: {} steps",
        steps.len()
    );
    // Sent from an ephemeral port, never the client's.
    assert!(seen.iter().all(|(_, port)| *port >= 1024 && *port != 40212));
}

//! Request-path behaviour against in-process fake upstreams on 127.0.0.1: pass-through, IDs,
//! policies, failover and next, max_concurrent, health checks, truncation, TCP pipelining.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Act, Fake, Via, answer, decoded, forwarder, ok, query, wire};
use ferrodns_plugin::proto::op::ResponseCode;
use ferrodns_plugin::{Plugin, Protocol, Reply};
use ferrodns_plugin_test::{self as testkit, Fixed};

fn chain(f: &Arc<ferrodns_plugin_forward::Forward>) -> Vec<Arc<dyn Plugin>> {
    vec![f.clone() as Arc<dyn Plugin>]
}

#[tokio::test]
async fn passes_query_bytes_through_with_a_fresh_id_and_restores_it() {
    let up = Fake::start(|q, _| Act::Reply(ok(q))).await;
    let (f, _) = forwarder(&format!(". {}", up.addr));
    let mut req = testkit::request("Example.ORG.", ferrodns_plugin::proto::rr::RecordType::A);
    req.enable_metadata();
    let r = testkit::run(&chain(&f), &mut req).await;
    let got = wire(&r);
    let seen = up.seen.lock().expect("lock")[0].1.clone();
    // Everything but the ID is the client's bytes.
    assert_eq!(seen[2..], req.raw[2..]);
    // The reply is the upstream's bytes with the client's ID back.
    let mut expect = ok(&seen);
    expect[0..2].copy_from_slice(&req.id().to_be_bytes());
    assert_eq!(got, expect);
    assert_eq!(
        req.metadata("forward/upstream").as_deref(),
        Some(up.addr.to_string().as_str())
    );
    // Without the metadata plugin's state the label is not recorded, as in CoreDNS.
    let (req, r) = query(&chain(&f), "example.org.", Protocol::Udp).await;
    wire(&r);
    assert_eq!(req.metadata("forward/upstream"), None);
}

#[tokio::test]
async fn ids_are_random() {
    let up = Fake::start(|q, _| Act::Reply(ok(q))).await;
    let (f, _) = forwarder(&format!(". {}", up.addr));
    for _ in 0..20 {
        let (_, r) = query(&chain(&f), "example.org.", Protocol::Udp).await;
        wire(&r);
    }
    let ids: std::collections::HashSet<u16> = up
        .seen
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, q)| u16::from_be_bytes([q[0], q[1]]))
        .collect();
    assert!(ids.len() > 15, "ids not random: {ids:?}");
}

#[tokio::test]
async fn transport_follows_client_unless_forced() {
    let up = Fake::start(|q, _| Act::Reply(ok(q))).await;
    let (f, _) = forwarder(&format!(". {}", up.addr));
    wire(&query(&chain(&f), "a.example.", Protocol::Udp).await.1);
    wire(&query(&chain(&f), "b.example.", Protocol::Tcp).await.1);
    assert_eq!((up.count_via(Via::Udp), up.count_via(Via::Tcp)), (1, 1));

    let (f, _) = forwarder(&format!(". {} {{\nforce_tcp\nprefer_udp\n}}", up.addr));
    wire(&query(&chain(&f), "c.example.", Protocol::Udp).await.1);
    assert_eq!(up.count_via(Via::Tcp), 2);
    let (f, _) = forwarder(&format!(". {} {{\nprefer_udp\n}}", up.addr));
    wire(&query(&chain(&f), "d.example.", Protocol::Tcp).await.1);
    assert_eq!(up.count_via(Via::Udp), 2);
}

#[tokio::test]
async fn policies_order_upstreams() {
    let a = Fake::start(|q, _| Act::Reply(ok(q))).await;
    let b = Fake::start(|q, _| Act::Reply(ok(q))).await;
    let (f, _) = forwarder(&format!(
        ". {} {} {{\npolicy sequential\n}}",
        a.addr, b.addr
    ));
    for _ in 0..6 {
        wire(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    }
    assert_eq!((a.count(), b.count()), (6, 0));

    let (f, _) = forwarder(&format!(
        ". {} {} {{\npolicy round_robin\n}}",
        a.addr, b.addr
    ));
    for _ in 0..6 {
        wire(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    }
    // Starts with the second upstream and alternates.
    assert_eq!((a.count(), b.count()), (9, 3));

    let (f, _) = forwarder(&format!(". {} {}", a.addr, b.addr));
    for _ in 0..60 {
        wire(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    }
    let (na, nb) = (a.count() - 9, b.count() - 3);
    assert_eq!(na + nb, 60);
    assert!(na > 10 && nb > 10, "random policy skewed: {na}/{nb}");
}

#[tokio::test]
async fn failover_tries_the_next_upstream() {
    let bad = Fake::start(|q, _| Act::Reply(answer(q, ResponseCode::ServFail, &[]))).await;
    let good = Fake::start(|q, _| Act::Reply(ok(q))).await;
    let (f, _) = forwarder(&format!(
        ". {} {} {{\npolicy sequential\nfailover SERVFAIL\n}}",
        bad.addr, good.addr
    ));
    let m = decoded(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);

    let (f, _) = forwarder(&format!(
        ". {} {} {{\npolicy sequential\n}}",
        bad.addr, good.addr
    ));
    let m = decoded(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn next_hands_over_only_to_another_forward() {
    let nx = Fake::start(|q, _| Act::Reply(answer(q, ResponseCode::NXDomain, &[]))).await;
    let good = Fake::start(|q, _| Act::Reply(ok(q))).await;
    let (f1, _) = forwarder(&format!(". {} {{\nnext NXDOMAIN\n}}", nx.addr));
    let (f2, _) = forwarder(&format!(". {}", good.addr));
    let plugins: Vec<Arc<dyn Plugin>> = vec![f1.clone(), f2.clone()];
    let m = decoded(&query(&plugins, "example.org.", Protocol::Udp).await.1);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);

    let plugins: Vec<Arc<dyn Plugin>> = vec![f1.clone(), Fixed::rcode(ResponseCode::NoError)];
    let m = decoded(&query(&plugins, "example.org.", Protocol::Udp).await.1);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // next_on_nodata: an empty NOERROR moves on.
    let empty = Fake::start(|q, _| Act::Reply(answer(q, ResponseCode::NoError, &[]))).await;
    let (f3, _) = forwarder(&format!(". {} {{\nnext_on_nodata\n}}", empty.addr));
    let plugins: Vec<Arc<dyn Plugin>> = vec![f3, f2];
    let m = decoded(&query(&plugins, "example.org.", Protocol::Udp).await.1);
    assert_eq!(m.answers.len(), 1);
}

#[tokio::test]
async fn names_outside_from_or_excepted_go_next() {
    let up = Fake::start(|q, _| Act::Reply(ok(q))).await;
    let (f, _) = forwarder(&format!(
        "example.org {} {{\nexcept private.example.org\n}}",
        up.addr
    ));
    let plugins: Vec<Arc<dyn Plugin>> = vec![f.clone(), Fixed::rcode(ResponseCode::Refused)];
    for n in [
        "example.net.",
        "a.private.example.org.",
        "private.example.org.",
    ] {
        let m = decoded(&query(&plugins, n, Protocol::Udp).await.1);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{n}");
    }
    let m = decoded(&query(&plugins, "www.example.org.", Protocol::Udp).await.1);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let m = decoded(&query(&plugins, "example.org.", Protocol::Udp).await.1);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn max_concurrent_refuses_and_counts() {
    let up = Fake::start(|q, _| Act::Later(Duration::from_millis(300), ok(q))).await;
    let (f, metrics) = forwarder(&format!(". {} {{\nmax_concurrent 2\n}}", up.addr));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let plugins = chain(&f);
        tasks.push(tokio::spawn(async move {
            query(&plugins, &format!("q{i}.example."), Protocol::Udp)
                .await
                .1
        }));
    }
    let mut refused = 0;
    let mut answered = 0;
    for t in tasks {
        match t.await.expect("join") {
            Err(e) if e.rcode == ResponseCode::Refused => {
                assert_eq!(e.message, "concurrent queries exceeded maximum 2");
                refused += 1;
            }
            Ok(Reply::Wire(_)) => answered += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((answered, refused), (2, 3));
    assert!(
        metrics
            .encode()
            .contains("coredns_forward_max_concurrent_rejects_total 3"),
        "{}",
        metrics.encode()
    );
    // The slots are given back.
    wire(&query(&chain(&f), "again.example.", Protocol::Udp).await.1);
}

#[tokio::test]
async fn truncated_replies() {
    let up = Fake::start(|q, via| {
        let mut r = ok(q);
        if via == Via::Udp {
            r = answer(q, ResponseCode::NoError, &[]);
            r[2] |= 0x02;
        }
        Act::Reply(r)
    })
    .await;
    let (f, _) = forwarder(&format!(". {}", up.addr));
    let m = decoded(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    assert!(m.metadata.truncation);
    assert_eq!(up.count_via(Via::Tcp), 0);

    let (f, _) = forwarder(&format!(". {} {{\nprefer_udp\n}}", up.addr));
    let m = decoded(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(up.count_via(Via::Tcp), 1);
}

#[tokio::test]
async fn oversized_udp_reply_becomes_empty_tc() {
    let up = Fake::start(|q, _| {
        let ips: Vec<[u8; 4]> = (0..60).map(|i| [192, 0, 2, i]).collect();
        Act::Reply(answer(q, ResponseCode::NoError, &ips))
    })
    .await;
    let (f, _) = forwarder(&format!(". {}", up.addr));
    let m = decoded(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    assert!(m.metadata.truncation);
    assert!(m.answers.is_empty());
    assert_eq!(m.queries.len(), 1);
    // Over TCP the whole answer comes back.
    let m = decoded(&query(&chain(&f), "example.org.", Protocol::Tcp).await.1);
    assert_eq!(m.answers.len(), 60);
}

#[tokio::test]
async fn pipelines_many_queries_over_few_tcp_connections() {
    // Answers arrive out of order (random delays) on each connection.
    let up = Fake::start(|q, _| {
        let d = Duration::from_millis(u64::from(q[5] ^ q[12]) % 40);
        Act::Later(d, ok(q))
    })
    .await;
    let (f, _) = forwarder(&format!(". {} {{\nforce_tcp\n}}", up.addr));
    let mut tasks = Vec::new();
    for i in 0..300 {
        let plugins = chain(&f);
        tasks.push(tokio::spawn(async move {
            let name = format!("n{i}.example.");
            let (req, r) = query(&plugins, &name, Protocol::Udp).await;
            let m = decoded(&r);
            assert_eq!(m.metadata.id, req.id());
            assert_eq!(m.queries[0].name().to_ascii(), name);
        }));
    }
    for t in tasks {
        t.await.expect("query ok");
    }
    assert_eq!(up.count_via(Via::Tcp), 300);
    let conns = up.tcp_accepts.load(Ordering::SeqCst);
    assert!(conns <= 32, "{conns} connections");
    assert_eq!(f.upstreams()[0].in_flight(), 0);
}

#[tokio::test]
async fn health_check_marks_down_and_up() {
    let healthy = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    let a = Fake::start(move |q, _| {
        if h.load(Ordering::SeqCst) {
            Act::Reply(ok(q))
        } else {
            Act::Drop
        }
    })
    .await;
    let b = Fake::start(|q, _| Act::Reply(ok(q))).await;
    let (f, metrics) = forwarder(&format!(
        ". {} {} {{\npolicy sequential\nmax_fails 1\nhealth_check 20ms\nread_timeout 800ms\n}}",
        a.addr, b.addr
    ));
    // The first query fails over to b and starts probing a.
    let m = decoded(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    assert_eq!(m.answers.len(), 1);
    let ua = f.upstreams()[0].clone();
    let start = Instant::now();
    while !ua.down(1) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "never marked down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        metrics
            .encode()
            .contains("coredns_proxy_healthcheck_failures_total{")
    );
    // While down, a is skipped: no A queries reach it.
    let before = a
        .questions()
        .iter()
        .filter(|(_, t)| *t == ferrodns_plugin::proto::rr::RecordType::A)
        .count();
    let t0 = Instant::now();
    decoded(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    assert!(t0.elapsed() < Duration::from_millis(600));
    let after = a
        .questions()
        .iter()
        .filter(|(_, t)| *t == ferrodns_plugin::proto::rr::RecordType::A)
        .count();
    assert_eq!(before, after);
    // The probes are `. IN NS`.
    assert!(
        a.questions()
            .iter()
            .any(|(n, t)| n == "." && *t == ferrodns_plugin::proto::rr::RecordType::NS)
    );
    // Once a answers again a probe succeeds and it is back.
    healthy.store(true, Ordering::SeqCst);
    let start = Instant::now();
    while ua.fails() != 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "never back up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    decoded(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    assert!(a.count_via(Via::Udp) > after);
}

#[tokio::test]
async fn failfast_when_all_upstreams_are_down() {
    let a = Fake::start(|_, _| Act::Drop).await;
    let (f, metrics) = forwarder(&format!(
        ". {} {{\nmax_fails 1\nhealth_check 10ms\nread_timeout 100ms\nfailfast_all_unhealthy_upstreams\n}}",
        a.addr
    ));
    let _ = query(&chain(&f), "example.org.", Protocol::Udp).await;
    let ua = f.upstreams()[0].clone();
    let start = Instant::now();
    while !ua.down(1) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "never marked down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = Instant::now();
    match query(&chain(&f), "example.org.", Protocol::Udp).await.1 {
        Err(e) => {
            assert_eq!(e.rcode, ResponseCode::ServFail);
            assert_eq!(e.message, "no healthy proxies");
        }
        other => panic!("{other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_millis(500));
    assert!(
        metrics
            .encode()
            .contains("coredns_forward_healthcheck_broken_total 1")
    );
}

#[tokio::test]
async fn all_down_without_failfast_still_tries_one() {
    let answering = Arc::new(AtomicBool::new(false));
    let a2 = answering.clone();
    // Answers queries only once told to, and never answers probes.
    let a = Fake::start(move |q, _| {
        let probe = q[q.len() - 3] == 2; // qtype NS
        if a2.load(Ordering::SeqCst) && !probe {
            Act::Reply(ok(q))
        } else {
            Act::Drop
        }
    })
    .await;
    let (f, _) = forwarder(&format!(
        ". {} {{\nmax_fails 1\nhealth_check 10ms\nread_timeout 100ms\n}}",
        a.addr
    ));
    let _ = query(&chain(&f), "example.org.", Protocol::Udp).await;
    let ua = f.upstreams()[0].clone();
    let start = Instant::now();
    while !ua.down(1) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "never marked down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    answering.store(true, Ordering::SeqCst);
    let m = decoded(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    assert_eq!(m.answers.len(), 1);
}

#[tokio::test]
async fn metrics_have_coredns_names_and_labels() {
    let up = Fake::start(|q, _| Act::Reply(ok(q))).await;
    let (f, metrics) = forwarder(&format!(". {}", up.addr));
    wire(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    wire(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    wire(&query(&chain(&f), "example.org.", Protocol::Tcp).await.1);
    let text = metrics.encode();
    let to = up.addr.to_string();
    for want in [
        format!(
            "coredns_proxy_request_duration_seconds_count{{proxy_name=\"forward\",to=\"{to}\",rcode=\"NOERROR\"}} 3"
        ),
        format!(
            "coredns_proxy_conn_cache_misses_total{{proxy_name=\"forward\",to=\"{to}\",proto=\"udp\"}} 1"
        ),
        format!(
            "coredns_proxy_conn_cache_hits_total{{proxy_name=\"forward\",to=\"{to}\",proto=\"udp\"}} 1"
        ),
        format!(
            "coredns_proxy_conn_cache_misses_total{{proxy_name=\"forward\",to=\"{to}\",proto=\"tcp\"}} 1"
        ),
        "coredns_proxy_request_duration_seconds_bucket{le=\"0.00025\"".to_string(),
        "coredns_forward_healthcheck_broken_total 0".to_string(),
    ] {
        if want.contains("_bucket{le") {
            assert!(
                text.contains("le=\"0.00025\"") && text.contains("le=\"8.192\""),
                "{text}"
            );
        } else {
            assert!(text.contains(&want), "missing {want} in\n{text}");
        }
    }
}

#[tokio::test]
async fn connections_are_reused_and_expire() {
    let up = Fake::start(|q, _| Act::Reply(ok(q))).await;
    let (f, _) = forwarder(&format!(". {} {{\nforce_tcp\nexpire 200ms\n}}", up.addr));
    for _ in 0..5 {
        wire(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    }
    assert_eq!(up.tcp_accepts.load(Ordering::SeqCst), 1);
    // Past `expire`; real time, as the pool reads the wall clock (std Instant), not tokio's.
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.upstreams()[0].cleanup();
    assert_eq!(f.upstreams()[0].open_conns().1, 0);
    wire(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    assert_eq!(up.tcp_accepts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn ch_class_and_modified_requests_are_forwarded() {
    let up = Fake::start(|q, _| Act::Reply(ok(q))).await;
    let (f, _) = forwarder(&format!(". {}", up.addr));
    let mut req = testkit::request("example.org.", ferrodns_plugin::proto::rr::RecordType::A);
    req.message_mut().metadata.checking_disabled = true;
    let r = testkit::run(&chain(&f), &mut req).await;
    wire(&r);
    let seen = up.seen.lock().expect("lock")[0].1.clone();
    assert_eq!(seen[3] & 0x10, 0x10, "CD set in the forwarded query");
    let _ = AtomicUsize::new(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_names_resolve_once_through_resolver() {
    // One fake is both the resolver (dns.test. A -> 127.0.0.1) and the upstream.
    let up = Fake::start(|q, _| Act::Reply(ok_localhost(q))).await;
    let port = up.addr.port();
    let (f, _) = tokio::task::spawn_blocking(move || {
        forwarder(&format!(
            ". dns.test:{port} {{\nresolver 127.0.0.1:{port}\n}}"
        ))
    })
    .await
    .expect("setup");
    assert_eq!(f.upstreams().len(), 1);
    assert_eq!(f.upstreams()[0].addr, format!("127.0.0.1:{port}"));
    let before = up.count();
    wire(&query(&chain(&f), "example.org.", Protocol::Udp).await.1);
    assert_eq!(up.count(), before + 1);

    // A name the resolver does not know fails setup.
    let nx = Fake::start(|q, _| Act::Reply(answer(q, ResponseCode::NXDomain, &[]))).await;
    let nport = nx.addr.port();
    let e = tokio::task::spawn_blocking(move || {
        let mut d = testkit::dispenser(
            "forward",
            &format!("forward . nowhere.test {{\nresolver 127.0.0.1:{nport}\n}}"),
        )
        .expect("corefile");
        ferrodns_plugin_forward::config::parse_all(&mut d)
            .err()
            .map(|e| e.to_string())
    })
    .await
    .expect("join");
    assert_eq!(
        e.as_deref(),
        Some("failed to resolve \"nowhere.test\": no addresses found for \"nowhere.test\"")
    );
}

/// A reply with A 127.0.0.1 for A questions and an empty NOERROR otherwise.
fn ok_localhost(q: &[u8]) -> Vec<u8> {
    if q[q.len() - 3] == 1 {
        answer(q, ResponseCode::NoError, &[[127, 0, 0, 1]])
    } else {
        answer(q, ResponseCode::NoError, &[])
    }
}

/// A reload runs the old instance's shutdown hook (`Forward::stop`) while queries are still
/// on their way through the old chain: one waiting for its reply, one that reaches forward only
/// after the hook. Both must be answered, not failed with a stopped transport.
#[tokio::test]
async fn queries_routed_before_a_reload_are_answered_after_stop() {
    let up = Fake::start(|q, _| Act::Later(Duration::from_millis(200), ok(q))).await;
    let (f, _) = forwarder(&format!(". {}", up.addr));
    let waiting = {
        let f = f.clone();
        tokio::spawn(async move { query(&chain(&f), "before.example.", Protocol::Udp).await })
    };
    // Stop once the upstream has the first query, so that it is really in flight.
    while up.seen.lock().expect("lock").is_empty() {
        tokio::task::yield_now().await;
    }
    f.stop();
    let (_, late) = query(&chain(&f), "after.example.", Protocol::Udp).await;
    assert_eq!(decoded(&late).metadata.response_code, ResponseCode::NoError);
    let (_, first) = waiting.await.expect("join");
    assert_eq!(
        decoded(&first).metadata.response_code,
        ResponseCode::NoError
    );
    assert_eq!(up.seen.lock().expect("lock").len(), 2);
}

//! Runs the load generator against a tiny in-test responder on 127.0.0.1 and checks its
//! accounting against what the responder did.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferrodns_loadgen::{LoadError, LoadSpec, NameOrder, run};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// What the responder does besides answering.
#[derive(Clone, Copy, Default)]
struct Behaviour {
    /// Drop every n-th UDP query.
    drop_every: Option<u64>,
    /// Answer every n-th UDP query after this delay.
    delay_every: Option<(u64, Duration)>,
    /// On each TCP connection: answer this many queries, read one more, close.
    tcp_close_after: Option<usize>,
}

#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
    delayed: AtomicU64,
    tcp_closes: AtomicU64,
}

/// The query turned into an answer: QR and RA set, NOERROR, no records.
fn answer(query: &[u8]) -> Vec<u8> {
    let mut a = query.to_vec();
    a[2] |= 0x80;
    a[3] = 0x80;
    a
}

async fn responder(b: Behaviour) -> (SocketAddr, Arc<Counters>) {
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            break (Arc::new(udp), tcp);
        }
    };
    let addr = udp.local_addr().unwrap();
    let counters = Arc::new(Counters::default());

    let c = counters.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        let mut n: u64 = 0;
        loop {
            let (len, from) = udp.recv_from(&mut buf).await.unwrap();
            n += 1;
            let a = answer(&buf[..len]);
            if b.drop_every.is_some_and(|k| n.is_multiple_of(k)) {
                c.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if let Some((k, delay)) = b.delay_every
                && n.is_multiple_of(k)
            {
                c.delayed.fetch_add(1, Ordering::Relaxed);
                let udp = udp.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = udp.send_to(&a, from).await;
                });
                continue;
            }
            let _ = udp.send_to(&a, from).await;
        }
    });

    let c = counters.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = tcp.accept().await.unwrap();
            tokio::spawn(serve_tcp(s, b.tcp_close_after, c.clone()));
        }
    });
    (addr, counters)
}

async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let len = s.read_u16().await.ok()?;
    let mut q = vec![0u8; len as usize];
    s.read_exact(&mut q).await.ok()?;
    Some(q)
}

async fn serve_tcp(mut s: TcpStream, close_after: Option<usize>, c: Arc<Counters>) {
    let mut answered = 0;
    while let Some(q) = read_frame(&mut s).await {
        if close_after == Some(answered) {
            // A query read and left unanswered, as a server does when it closes.
            c.tcp_closes.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let a = answer(&q);
        let mut frame = (a.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(&a);
        if s.write_all(&frame).await.is_err() {
            return;
        }
        answered += 1;
    }
}

fn spec(target: SocketAddr, udp_rate: f64, secs: f64) -> LoadSpec {
    let mut s = LoadSpec::new(target);
    s.udp_rate = udp_rate;
    s.udp_sockets = 4;
    s.names = LoadSpec::pattern(50, "example.org.");
    s.duration = Some(Duration::from_secs_f64(secs));
    s
}

#[tokio::test]
async fn everything_answered_nothing_lost() {
    let (addr, _) = responder(Behaviour::default()).await;
    let mut s = spec(addr, 500.0, 1.0);
    s.tcp_connections = 4;
    s.tcp_rate = 20.0;
    s.order = NameOrder::RoundRobin;
    let r = run(s, std::future::pending()).await.unwrap();
    assert_eq!(r.total.lost, 0, "{r}");
    assert_eq!(r.total.sent, r.total.answered, "{r}");
    assert_eq!(r.total.mismatched, 0, "{r}");
    assert_eq!(r.total.slow, 0, "{r}");
    assert_eq!(r.total.rcodes.noerror, r.total.answered, "{r}");
    // Paced on the clock: the rate times the time it ran, give or take a few.
    let due = 500.0 * r.elapsed.as_secs_f64();
    assert!((r.udp.sent as f64 - due).abs() <= 0.02 * due + 5.0, "{r}");
    assert!((70..=90).contains(&r.tcp.sent), "{r}");
    assert_eq!(r.udp.sent + r.tcp.sent, r.total.sent);
    assert_eq!(r.tcp_reconnects, 0, "{r}");
    assert_eq!(r.udp_local_drops, Some(0), "{r}");
    assert!(
        r.total.latency.max_us > 0 && r.total.latency.max_us < 500_000,
        "{r}"
    );
    assert!(r.total.latency.p50_us <= r.total.latency.p99_us);
    let json = r.to_json();
    assert!(
        json.starts_with(r#"{"sent":"#) && json.ends_with('}'),
        "{json}"
    );
    assert!(
        json.contains(r#""lost":0,"#) && json.contains(r#""udp":{"sent":"#),
        "{json}"
    );
}

#[tokio::test]
async fn every_dropped_udp_query_is_counted_lost() {
    let (addr, c) = responder(Behaviour {
        drop_every: Some(10),
        ..Default::default()
    })
    .await;
    let mut s = spec(addr, 500.0, 1.0);
    s.timeout = Duration::from_millis(300);
    let r = run(s, std::future::pending()).await.unwrap();
    let dropped = c.dropped.load(Ordering::Relaxed);
    assert!(dropped >= 45, "{dropped} {r}");
    assert_eq!(r.total.lost, dropped, "{r}");
    assert_eq!(r.total.answered, r.total.sent - dropped, "{r}");
    assert_eq!(r.total.late, 0, "{r}");
    // The drain waits the timeout for the dropped ones, no longer.
    assert!(
        r.drain >= Duration::from_millis(250) && r.drain < Duration::from_secs(1),
        "{r}"
    );
}

#[tokio::test]
async fn tcp_closed_connections_are_reopened_and_queries_resent() {
    let (addr, c) = responder(Behaviour {
        tcp_close_after: Some(5),
        ..Default::default()
    })
    .await;
    let mut s = spec(addr, 0.0, 1.0);
    s.tcp_connections = 4;
    s.tcp_rate = 50.0;
    let r = run(s, std::future::pending()).await.unwrap();
    assert!(r.tcp.sent >= 180, "{r}");
    assert_eq!(r.total.lost, 0, "{r}");
    assert_eq!(r.tcp.answered, r.tcp.sent, "{r}");
    assert_eq!(r.udp.sent, 0, "{r}");
    let closes = c.tcp_closes.load(Ordering::Relaxed);
    assert!(closes >= 30, "{closes} {r}");
    assert!(r.tcp_reconnects >= closes - 4, "{closes} {r}");
    // Every close left at least the query it read unanswered.
    assert!(r.tcp_resends >= closes - 4, "{closes} {r}");
    assert_eq!(r.total.mismatched, 0, "{r}");
}

#[tokio::test]
async fn slow_answers_are_counted_slow_not_lost() {
    let delay = Duration::from_millis(1200);
    let (addr, c) = responder(Behaviour {
        delay_every: Some((10, delay)),
        ..Default::default()
    })
    .await;
    let r = run(spec(addr, 100.0, 1.0), std::future::pending())
        .await
        .unwrap();
    let delayed = c.delayed.load(Ordering::Relaxed);
    assert!(delayed >= 9, "{r}");
    assert_eq!(r.total.slow, delayed, "{r}");
    assert_eq!(r.total.lost, 0, "{r}");
    assert_eq!(r.total.answered, r.total.sent, "{r}");
    assert!(r.total.latency.max_us >= 1_200_000, "{r}");
}

#[tokio::test]
async fn answers_after_the_timeout_are_late_and_lost() {
    let (addr, c) = responder(Behaviour {
        delay_every: Some((5, Duration::from_millis(500))),
        ..Default::default()
    })
    .await;
    let mut s = spec(addr, 100.0, 1.0);
    s.timeout = Duration::from_millis(300);
    s.slow = Duration::from_millis(100);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async {
        let _ = rx.await;
    };
    // Stop through the future rather than the duration.
    s.duration = None;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = tx.send(());
    });
    let r = run(s, stop).await.unwrap();
    let delayed = c.delayed.load(Ordering::Relaxed);
    assert!(delayed >= 18, "{r}");
    assert_eq!(r.total.lost, delayed, "{r}");
    assert_eq!(r.total.slow, 0, "{r}");
    assert_eq!(r.total.answered, r.total.sent - delayed, "{r}");
    // Late answers still arriving during the drain are counted; the last ones may not be.
    assert!(r.total.late > 0 && r.total.late <= delayed, "{r}");
    assert!(
        r.elapsed >= Duration::from_secs(1) && r.elapsed < Duration::from_millis(1500),
        "{r}"
    );
}

#[tokio::test]
async fn invalid_specs_are_refused() {
    let mut s = LoadSpec::new("127.0.0.1:53".parse().unwrap());
    s.names.clear();
    assert!(matches!(
        run(s, async {}).await,
        Err(LoadError::InvalidSpec(_))
    ));
    let mut s = LoadSpec::new("127.0.0.1:53".parse().unwrap());
    s.names = vec!["a..b".into()];
    assert!(matches!(
        run(s, async {}).await,
        Err(LoadError::InvalidName { .. })
    ));
}

/// The binary as a test drives it: wait for the readiness line, close stdin, read the JSON.
#[tokio::test]
async fn binary_stops_at_stdin_eof_and_prints_json() {
    use std::process::Stdio;
    use tokio::io::AsyncBufReadExt;

    let (addr, _) = responder(Behaviour::default()).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrodns-load"))
        .args([
            "--target",
            &addr.to_string(),
            "--udp-rate",
            "1000",
            "--tcp-conns",
            "2",
        ])
        .args([
            "--tcp-rate",
            "10",
            "--names",
            "10",
            "--zone",
            "example.net",
            "--qtype",
            "aaaa",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(5), stderr.next_line())
        .await
        .expect("readiness line in time")
        .unwrap()
        .unwrap();
    assert_eq!(line, "[INFO] load: running");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    drop(child.stdin.take());
    let mut progress = Vec::new();
    while let Some(l) = stderr.next_line().await.unwrap() {
        progress.push(l);
    }
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(json.lines().count(), 1, "{json}");
    assert!(json.contains(r#""lost":0,"#), "{json}");
    assert!(json.contains(r#""tcp":{"sent":"#), "{json}");
    assert!(
        progress
            .iter()
            .any(|l| l.starts_with("[INFO] load: t=1s sent=")),
        "{progress:?}"
    );
}

#[tokio::test]
async fn binary_quiet_keeps_the_readiness_line_and_stops_after_duration() {
    let (addr, _) = responder(Behaviour::default()).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrodns-load"))
        .args([
            "--target",
            &addr.to_string(),
            "--udp-rate",
            "200",
            "--duration",
            "300ms",
        ])
        .args([
            "--quiet",
            "--ignore-stdin",
            "--name",
            "a.example.",
            "--edns",
            "1232",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.first(), Some(&"[INFO] load: running"), "{err}");
    assert!(!err.contains("load: t="), "{err}");
    let json = String::from_utf8(out.stdout).unwrap();
    assert!(
        json.contains(r#""lost":0,"#) && json.contains(r#""mismatched":0,"#),
        "{json}"
    );
}

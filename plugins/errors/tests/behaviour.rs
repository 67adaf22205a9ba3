//! Request-path behaviour of the errors plugin: the error line, consolidation with and without
//! `show_first`, levels, and the flush at shutdown.

use ferrodns_plugin_test::capture;
use std::sync::Arc;
use std::time::Duration;

use ferrodns_plugin::proto::op::ResponseCode;
use ferrodns_plugin::proto::rr::RecordType;
use ferrodns_plugin::{Lifecycle, Plugin, PluginError, Reply, Shared};
use ferrodns_plugin_errors::DESCRIPTOR;
use ferrodns_plugin_test::{self as testkit, Fixed};
use tracing::Level;

/// The errors handler of `directives`, and its lifecycle hooks.
fn errors(directives: &str) -> (Arc<dyn Plugin>, Vec<Arc<dyn Lifecycle>>) {
    let shared = Shared::default();
    let block =
        testkit::setup_with(&DESCRIPTOR, directives, &shared).unwrap_or_else(|e| panic!("{e}"));
    (block.plugins[0].clone(), shared.lifecycles())
}

fn failing(message: &str) -> Arc<dyn Plugin> {
    Fixed::new(Err(PluginError::servfail(message)))
}

async fn query(handler: &Arc<dyn Plugin>, next: &Arc<dyn Plugin>, name: &str) {
    let mut req = testkit::request(name, RecordType::A);
    let chain = vec![handler.clone(), next.clone()];
    let _ = testkit::run(&chain, &mut req).await;
}

fn events(c: &capture::Captured) -> Vec<(Level, String)> {
    c.events()
        .into_iter()
        .filter(|(_, t, _)| t == "plugin/errors")
        .map(|(l, _, m)| (l, m))
        .collect()
}

#[tokio::test]
async fn logs_errors_and_passes_results_through() {
    let (captured, _g) = capture::capture();
    let (h, _) = errors("errors");

    let mut req = testkit::request("Example.ORG.", RecordType::AAAA);
    let chain = vec![
        h.clone(),
        failing("plugin/forward: read udp 10.0.0.1:53->8.8.8.8:53: i/o timeout"),
    ];
    match testkit::run(&chain, &mut req).await {
        Err(e) => {
            assert_eq!(e.rcode, ResponseCode::ServFail);
            assert_eq!(
                e.message,
                "plugin/forward: read udp 10.0.0.1:53->8.8.8.8:53: i/o timeout"
            );
        }
        other => panic!("error not passed through: {other:?}"),
    }

    // CoreDNS's errors_test: rcode NOTAUTH with "test error".
    let mut req = testkit::request("example.org.", RecordType::A);
    let chain = vec![
        h.clone(),
        Fixed::new(Err(PluginError::with_rcode(
            ResponseCode::NotAuth,
            "test error",
        ))),
    ];
    let _ = testkit::run(&chain, &mut req).await;

    // Success: nothing logged, reply unchanged.
    let mut req = testkit::request("example.org.", RecordType::A);
    let chain = vec![h.clone(), Fixed::rcode(ResponseCode::NXDomain)];
    match testkit::run(&chain, &mut req).await {
        Ok(Reply::Message(m)) => assert_eq!(m.metadata.response_code, ResponseCode::NXDomain),
        other => panic!("{other:?}"),
    }

    // The chain's own "no next plugin" error, as CoreDNS logs it with `errors` + `log` alone.
    let mut req = testkit::request("exAmple.org.", RecordType::A);
    let _ = testkit::run(std::slice::from_ref(&h), &mut req).await;

    assert_eq!(
        captured.lines(),
        vec![
            "[ERROR] plugin/errors: 2 example.org. AAAA: plugin/forward: read udp 10.0.0.1:53->8.8.8.8:53: i/o timeout",
            "[ERROR] plugin/errors: 9 example.org. A: test error",
            "[ERROR] plugin/errors: 2 example.org. A: plugin/errors: no next plugin found",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn consolidates_matching_errors() {
    let (captured, _g) = capture::capture();
    let (h, _) = errors("errors {\n consolidate 30s ^boom\n}");
    let boom = failing("boom: it broke");
    let other = failing("other failure");

    for _ in 0..3 {
        query(&h, &boom, "example.org.").await;
    }
    query(&h, &other, "example.net.").await;
    assert_eq!(
        events(&captured),
        vec![(Level::ERROR, "2 example.net. A: other failure".to_string())]
    );

    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(
        events(&captured).len(),
        1,
        "summary before the period ended"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        events(&captured)[1..],
        [(
            Level::ERROR,
            "3 errors like '^boom' occurred in last 30s".to_string()
        )]
    );

    // A new period starts with the next match.
    query(&h, &boom, "example.org.").await;
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(
        events(&captured)[2..],
        [(
            Level::ERROR,
            "1 errors like '^boom' occurred in last 30s".to_string()
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn levels_and_first_matching_pattern() {
    let (captured, _g) = capture::capture();
    let (h, _) = errors(
        "errors {\n consolidate 5m \".* i/o timeout$\" warning\n consolidate 1m timeout info\n consolidate 2s ^x debug\n}",
    );
    query(&h, &failing("read udp: i/o timeout"), "a.").await;
    query(&h, &failing("dial timeout"), "b.").await;
    query(&h, &failing("dial timeout"), "b.").await;
    query(&h, &failing("xyz"), "c.").await;
    tokio::time::sleep(Duration::from_secs(301)).await;
    assert_eq!(
        events(&captured),
        vec![
            (
                Level::DEBUG,
                "1 errors like '^x' occurred in last 2s".to_string()
            ),
            (
                Level::INFO,
                "2 errors like 'timeout' occurred in last 1m0s".to_string()
            ),
            (
                Level::WARN,
                "1 errors like '.* i/o timeout$' occurred in last 5m0s".to_string()
            ),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn show_first_logs_the_first_error_at_the_pattern_level() {
    let (captured, _g) = capture::capture();
    let (h, _) = errors("errors {\n consolidate 30s \"i/o timeout$\" warning show_first\n}");
    let timeout = failing("read udp 10.0.0.1:53->8.8.8.8:53: i/o timeout");

    // Three errors: the first at once, then a summary of all three.
    for _ in 0..3 {
        query(&h, &timeout, "example.org.").await;
    }
    assert_eq!(
        events(&captured),
        vec![(
            Level::WARN,
            "2 example.org. A: read udp 10.0.0.1:53->8.8.8.8:53: i/o timeout".to_string()
        )]
    );
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(
        events(&captured)[1..],
        [(
            Level::WARN,
            "3 errors like 'i/o timeout$' occurred in last 30s".to_string()
        )]
    );

    // One error: logged at once, no summary.
    query(&h, &timeout, "example.org.").await;
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(events(&captured).len(), 3);
    assert_eq!(events(&captured)[2].0, Level::WARN);
    assert!(events(&captured)[2].1.starts_with("2 example.org. A: "));
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_pending_summaries() {
    let (captured, _g) = capture::capture();
    let (h, hooks) = errors("errors {\n consolidate 5m ^boom info\n consolidate 5m ^quiet\n}");
    assert_eq!(hooks.len(), 1);
    let boom = failing("boom");
    query(&h, &boom, "example.org.").await;
    query(&h, &boom, "example.org.").await;
    assert!(events(&captured).is_empty());

    hooks[0].on_shutdown().await;
    assert_eq!(
        events(&captured),
        vec![(
            Level::INFO,
            "2 errors like '^boom' occurred in last 5m0s".to_string()
        )]
    );

    // The timer that was pending does not log again.
    tokio::time::sleep(Duration::from_secs(301)).await;
    assert_eq!(events(&captured).len(), 1);

    // After shutdown, matching errors are logged one by one at the pattern's level.
    query(&h, &boom, "example.org.").await;
    assert_eq!(
        events(&captured)[1..],
        [(Level::INFO, "2 example.org. A: boom".to_string())]
    );

    // A second shutdown has nothing left to say.
    hooks[0].on_shutdown().await;
    assert_eq!(events(&captured).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn negative_period_fires_at_once() {
    let (captured, _g) = capture::capture();
    let (h, _) = errors("errors {\n consolidate -1s .\n}");
    query(&h, &failing("x"), "example.org.").await;
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        events(&captured),
        vec![(
            Level::ERROR,
            "1 errors like '.' occurred in last -1s".to_string()
        )]
    );
}

#[tokio::test]
async fn real_timer_fires() {
    // A short real period, waited for by polling the captured events with a deadline.
    let (captured, _g) = capture::capture();
    let (h, _) = errors("errors {\n consolidate 50ms ^boom\n}");
    query(&h, &failing("boom"), "example.org.").await;
    query(&h, &failing("boom"), "example.org.").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events(&captured).is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        events(&captured),
        vec![(
            Level::ERROR,
            "2 errors like '^boom' occurred in last 50ms".to_string()
        )]
    );
}

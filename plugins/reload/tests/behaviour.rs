//! What the checker does once its instance serves: it logs the running configuration's hash,
//! reads the Corefile every period through the process's [`Control`], and asks for a restart
//! only when the parsed server blocks changed; a failed restart is counted and not retried until
//! the Corefile changes again. Time is tokio's paused clock, so every period is exact; each step
//! waits on the control being called (a channel), not on the clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrodns_plugin::{Control, CorefileInput, Lifecycle, Shared, async_trait};
use ferrodns_plugin_reload::{Config, DESCRIPTOR, hash};
use ferrodns_plugin_test::{self as testkit, capture};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

/// A Corefile whose hash CoreDNS v1.14.7 logged.
const RUNNING: &str = ".:15353 {\n  reload 2s 1s\n  whoami\n}\n";
const RUNNING_SHA512: &str = "b47267ef5742bb6391ea5ddd358ea52966831e49758f081d6cedda562f50a992\
                              5ffe5c529553c4393e09438090ab2938bd60b55773995af79bd083503ca8cacc";

/// Longer than any wait the checker could need; with the paused clock a timeout this long only
/// fires when nothing at all is left to happen.
const NEVER: Duration = Duration::from_secs(3600);

fn input(text: &str) -> CorefileInput {
    CorefileInput {
        filename: "Corefile".to_string(),
        text: text.as_bytes().to_vec(),
    }
}

/// The process side: serves whatever Corefile the test sets, reports every load (with the
/// paused clock's time) and every restart on channels, and answers restarts as told.
struct FakeControl {
    corefile: Mutex<Result<CorefileInput, String>>,
    restart_result: Mutex<Result<(), String>>,
    loads: mpsc::UnboundedSender<Instant>,
    restarts: mpsc::UnboundedSender<CorefileInput>,
}

impl FakeControl {
    fn set_corefile(&self, c: Result<CorefileInput, String>) {
        *self.corefile.lock().unwrap() = c;
    }
    fn set_restart_result(&self, r: Result<(), String>) {
        *self.restart_result.lock().unwrap() = r;
    }
}

#[async_trait]
impl Control for FakeControl {
    fn load(&self) -> Result<CorefileInput, String> {
        let _ = self.loads.send(Instant::now());
        self.corefile.lock().unwrap().clone()
    }
    async fn restart(&self, input: CorefileInput) -> Result<(), String> {
        let _ = self.restarts.send(input);
        self.restart_result.lock().unwrap().clone()
    }
}

struct Harness {
    control: Arc<FakeControl>,
    loads: mpsc::UnboundedReceiver<Instant>,
    restarts: mpsc::UnboundedReceiver<CorefileInput>,
    shared: Shared,
}

impl Harness {
    /// An instance loaded from [`RUNNING`] whose blocks hold `lines` (each a `reload` line of
    /// its own block, in order).
    fn new(lines: &[&str]) -> Harness {
        let (load_tx, loads) = mpsc::unbounded_channel();
        let (restart_tx, restarts) = mpsc::unbounded_channel();
        let control = Arc::new(FakeControl {
            corefile: Mutex::new(Ok(input(RUNNING))),
            restart_result: Mutex::new(Ok(())),
            loads: load_tx,
            restarts: restart_tx,
        });
        let mut shared = Shared::default();
        shared.corefile = input(RUNNING);
        shared.control = Some(control.clone() as Arc<dyn Control>);
        for line in lines {
            testkit::setup_with(&DESCRIPTOR, line, &shared).unwrap();
        }
        Harness {
            control,
            loads,
            restarts,
            shared,
        }
    }

    fn hook(&self) -> Arc<dyn Lifecycle> {
        let hooks = self.shared.lifecycles();
        assert_eq!(hooks.len(), 1);
        hooks[0].clone()
    }

    /// The time of the checker's next read of the Corefile.
    async fn next_load(&mut self) -> Instant {
        timeout(NEVER, self.loads.recv())
            .await
            .expect("the checker read the Corefile")
            .expect("control alive")
    }

    /// The Corefile of the next restart the checker asks for.
    async fn next_restart(&mut self) -> CorefileInput {
        timeout(NEVER, self.restarts.recv())
            .await
            .expect("the checker asked for a restart")
            .expect("control alive")
    }

    fn no_restart_yet(&mut self) {
        assert!(self.restarts.try_recv().is_err(), "no restart was expected");
    }

    /// Whether the checker stopped reading the Corefile: nothing is left to wake it.
    async fn stopped_loading(&mut self) -> bool {
        timeout(NEVER, self.loads.recv()).await.is_err()
    }

    fn metrics(&self) -> String {
        self.shared.metrics.encode()
    }
}

fn version_sample(hash: &str) -> String {
    format!("coredns_reload_version_info{{hash=\"sha512\",value=\"{hash}\"}} 1")
}

#[test]
fn period_stays_within_half_the_jitter() {
    let c = Config {
        interval: Duration::from_secs(30),
        jitter: Duration::from_secs(15),
    };
    for _ in 0..1000 {
        let p = c.period();
        assert!(p >= Duration::from_millis(22_500) && p < Duration::from_millis(37_500));
    }
}

#[test]
fn period_without_jitter_is_the_interval() {
    let c = Config {
        interval: Duration::from_secs(7),
        jitter: Duration::ZERO,
    };
    for _ in 0..100 {
        assert_eq!(c.period(), Duration::from_secs(7));
    }
}

#[test]
fn the_logged_hash_is_coredns_s() {
    assert_eq!(hash::of(&input(RUNNING)).unwrap(), RUNNING_SHA512);
}

#[tokio::test(start_paused = true)]
async fn a_changed_corefile_is_handed_to_restart_once() {
    let mut h = Harness::new(&["reload 2s 0"]);
    let (captured, _g) = capture::capture();
    let start = Instant::now();
    h.hook().on_started().await;
    assert_eq!(
        captured.lines(),
        vec![format!(
            "[INFO] plugin/reload: Running configuration SHA512 = {RUNNING_SHA512}"
        )]
    );

    // Unchanged: read every interval (jitter 0: exactly 2s), no restart.
    assert_eq!(h.next_load().await - start, Duration::from_secs(2));
    assert_eq!(h.next_load().await - start, Duration::from_secs(4));
    h.no_restart_yet();

    // Only comments and spaces changed: the same server blocks, no restart.
    h.control.set_corefile(Ok(input(
        ".:15353 {\n  reload   2s 1s # again\n  whoami\n}\n",
    )));
    assert_eq!(h.next_load().await - start, Duration::from_secs(6));
    h.no_restart_yet();

    let changed = ".:15353 {\n  reload 2s 1s\n  whoami\n  log\n}\n";
    h.control.set_corefile(Ok(input(changed)));
    assert_eq!(h.next_load().await - start, Duration::from_secs(8));
    assert_eq!(h.next_restart().await, input(changed));
    let new_hash = hash::of(&input(changed)).unwrap();
    let text = h.metrics();
    assert!(text.contains(&version_sample(&new_hash)), "{text}");
    assert!(!text.contains(RUNNING_SHA512), "{text}");
    assert!(text.contains("coredns_reload_failed_total 0"), "{text}");

    // A successful restart hands over to the new instance's checker: this one stops.
    assert!(h.stopped_loading().await);
    h.no_restart_yet();
    assert_eq!(captured.lines().len(), 1, "{:?}", captured.lines());
}

#[tokio::test(start_paused = true)]
async fn a_failed_restart_is_counted_logged_and_not_retried_until_the_next_change() {
    let mut h = Harness::new(&["reload 3s 0"]);
    h.control.set_restart_result(Err("boom".to_string()));
    let (captured, _g) = capture::capture();
    let start = Instant::now();
    h.hook().on_started().await;

    let broken = ".:15353 {\n  reload 3s 0\n  nosuchplugin\n}\n";
    h.control.set_corefile(Ok(input(broken)));
    assert_eq!(h.next_load().await - start, Duration::from_secs(3));
    assert_eq!(h.next_restart().await, input(broken));
    let text = h.metrics();
    assert!(text.contains("coredns_reload_failed_total 1"), "{text}");
    let broken_hash = hash::of(&input(broken)).unwrap();
    assert!(text.contains(&version_sample(&broken_hash)), "{text}");
    assert_eq!(
        captured.lines()[1..],
        ["[ERROR] plugin/reload: Corefile changed but reload failed: boom".to_string()]
    );

    // The same broken Corefile is read again and again but not tried again.
    assert_eq!(h.next_load().await - start, Duration::from_secs(6));
    assert_eq!(h.next_load().await - start, Duration::from_secs(9));
    h.no_restart_yet();
    assert!(h.metrics().contains("coredns_reload_failed_total 1"));

    // Changing it back is a change again (from the failed hash), and now the restart works.
    h.control.set_restart_result(Ok(()));
    h.control.set_corefile(Ok(input(RUNNING)));
    h.next_load().await;
    assert_eq!(h.next_restart().await, input(RUNNING));
    let text = h.metrics();
    assert!(text.contains(&version_sample(RUNNING_SHA512)), "{text}");
    assert!(
        !text.contains(&broken_hash),
        "the old hash's sample is removed: {text}"
    );
    assert!(text.contains("coredns_reload_failed_total 1"), "{text}");
    assert!(h.stopped_loading().await);
}

#[tokio::test(start_paused = true)]
async fn a_corefile_that_does_not_parse_is_logged_and_skipped() {
    let mut h = Harness::new(&["reload 2s 0"]);
    let (captured, _g) = capture::capture();
    h.hook().on_started().await;
    let unclosed = input(".:15353 {\n  whoami\n");
    let reason = hash::of(&unclosed).unwrap_err();
    assert!(reason.starts_with("Corefile:"), "{reason}");
    h.control.set_corefile(Ok(unclosed));
    h.next_load().await;
    h.next_load().await;
    h.no_restart_yet();
    assert_eq!(
        captured.lines()[1..],
        [
            format!("[WARN] plugin/reload: Corefile parse failed: {reason}"),
            format!("[WARN] plugin/reload: Corefile parse failed: {reason}"),
        ]
    );
    assert!(h.metrics().contains("coredns_reload_failed_total 0"));
    assert!(!h.metrics().contains("coredns_reload_version_info{"));
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_corefile_is_skipped_silently() {
    let mut h = Harness::new(&["reload 2s 0"]);
    let (captured, _g) = capture::capture();
    h.hook().on_started().await;
    h.control
        .set_corefile(Err("open Corefile: permission denied".into()));
    h.next_load().await;
    h.next_load().await;
    h.no_restart_yet();
    assert_eq!(captured.lines().len(), 1, "{:?}", captured.lines());

    // Readable again, and changed: the checker is still at work.
    let changed = ".:15353 {\n  whoami\n}\n";
    h.control.set_corefile(Ok(input(changed)));
    h.next_load().await;
    assert_eq!(h.next_restart().await, input(changed));
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_the_checker() {
    let mut h = Harness::new(&["reload 2s 0"]);
    let hook = h.hook();
    hook.on_started().await;
    h.next_load().await;
    hook.on_shutdown().await;
    h.control
        .set_corefile(Ok(input(".:15353 {\n  whoami\n}\n")));
    assert!(h.stopped_loading().await);
    h.no_restart_yet();
}

#[tokio::test(start_paused = true)]
async fn the_last_block_s_setting_wins() {
    let mut h = Harness::new(&["reload 10s 0", "reload 2s 0"]);
    let start = Instant::now();
    h.hook().on_started().await;
    assert_eq!(h.next_load().await - start, Duration::from_secs(2));
    assert_eq!(h.next_load().await - start, Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn the_period_is_jittered_within_half_the_jitter() {
    // `reload 10s 4s`: each configuration draws one period in [8s, 12s).
    let mut h = Harness::new(&["reload 10s 4s"]);
    let start = Instant::now();
    h.hook().on_started().await;
    let first = h.next_load().await - start;
    assert!(
        first >= Duration::from_secs(8) && first < Duration::from_secs(12),
        "{first:?}"
    );
    let second = h.next_load().await - start - first;
    // The same drawn period again, to the timer wheel's millisecond.
    assert!(
        second.abs_diff(first) <= Duration::from_millis(1),
        "the drawn period stays: {first:?}, then {second:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_control_only_the_hash_is_logged() {
    let mut shared = Shared::default();
    shared.corefile = input(RUNNING);
    testkit::setup_with(&DESCRIPTOR, "reload 2s 0", &shared).unwrap();
    let (captured, _g) = capture::capture();
    shared.lifecycles()[0].on_started().await;
    assert_eq!(
        captured.lines(),
        vec![format!(
            "[INFO] plugin/reload: Running configuration SHA512 = {RUNNING_SHA512}"
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn a_running_corefile_that_does_not_parse_is_logged_as_an_error() {
    let mut shared = Shared::default();
    let unclosed = input(".:15353 {\n  whoami\n");
    let reason = hash::of(&unclosed).unwrap_err();
    shared.corefile = unclosed;
    testkit::setup_with(&DESCRIPTOR, "reload 2s 0", &shared).unwrap();
    let (captured, _g) = capture::capture();
    shared.lifecycles()[0].on_started().await;
    assert_eq!(
        captured.lines(),
        vec![format!("[ERROR] plugin/reload: {reason}")]
    );
}

//! # reload
//!
//! Checks the Corefile every interval (plus or minus half the jitter) and, when its server
//! blocks changed, asks the process for a reload, as CoreDNS's *reload* plugin does. The reload
//! itself is the server's: the new instance is built off the serving path and swapped in, and a
//! Corefile that does not load leaves the running one serving.
//!
//! Change is judged by the SHA-512 of the parsed server blocks (see [`hash`]), equal to the hash
//! CoreDNS logs for the same Corefile. A hash that failed to load is remembered, so a broken
//! Corefile is tried once, not at every tick.

pub mod hash;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrodns_go::time::{self, DurationError};
use ferrodns_plugin::{
    Control, CorefileInput, Descriptor, Lifecycle, Metrics, Setup, SetupError, async_trait,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

/// The directive name.
pub const NAME: &str = "reload";

/// The plugin's descriptor: its failure counter shows at 0 from process start, as in CoreDNS.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup).with_metrics(register_metrics);

/// CoreDNS's default interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// CoreDNS's default jitter.
pub const DEFAULT_JITTER: Duration = Duration::from_secs(15);
const MIN_INTERVAL: Duration = Duration::from_secs(2);
const MIN_JITTER: Duration = Duration::from_secs(1);

/// The plugin's metric families.
#[derive(Clone, Default)]
pub struct ReloadMetrics {
    /// `coredns_reload_failed_total`.
    pub failed: Counter<u64, AtomicU64>,
    /// `coredns_reload_version_info{hash, value}`.
    pub version: Family<Vec<(String, String)>, Gauge>,
}

impl ReloadMetrics {
    /// Register (or find) the families.
    pub fn register(m: &Metrics) -> Self {
        ReloadMetrics {
            failed: m.register(
                "coredns_reload_failed",
                "Counter of the number of failed reload attempts.",
                Counter::default,
            ),
            version: m.register(
                "coredns_reload_version_info",
                "A metric with a constant '1' value labeled by hash, and value which type of hash generated.",
                Family::default,
            ),
        }
    }
}

fn register_metrics(m: &Metrics) {
    ReloadMetrics::register(m);
}

/// Parse a Go duration as CoreDNS's setup does, negative values included (they then fail the
/// minimum checks, as in Go).
fn go_duration(s: &str) -> Result<(Duration, bool), DurationError> {
    match s.strip_prefix('-') {
        Some(rest) if !rest.starts_with(['-', '+']) => {
            let d =
                time::parse_duration(rest).map_err(|_| DurationError::Invalid(s.to_string()))?;
            Ok((d, !d.is_zero()))
        }
        _ => time::parse_duration(s).map(|d| (d, false)),
    }
}

/// What the block's `reload` line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The interval.
    pub interval: Duration,
    /// The jitter, already clamped to half the interval.
    pub jitter: Duration,
}

/// Read the first `reload` line of the block (CoreDNS reads only that one).
pub fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    c.next();
    let args = c.remaining_args();
    if args.len() > 2 {
        return Err(SetupError::plugin(NAME, c.arg_err()));
    }
    let mut interval = DEFAULT_INTERVAL;
    if let Some(a) = args.first() {
        let (d, negative) = go_duration(a).map_err(|e| SetupError::plugin(NAME, e))?;
        if negative || d < MIN_INTERVAL {
            return Err(SetupError::plugin(
                NAME,
                "interval value must be greater or equal to 2s",
            ));
        }
        interval = d;
    }
    let mut jitter = DEFAULT_JITTER;
    if let Some(a) = args.get(1) {
        let (d, negative) = go_duration(a).map_err(|e| SetupError::plugin(NAME, e))?;
        if negative || (!d.is_zero() && d < MIN_JITTER) {
            return Err(SetupError::plugin(
                NAME,
                "jitter value must be 0 or greater or equal to 1s",
            ));
        }
        jitter = d;
    }
    jitter = jitter.min(interval / 2);
    Ok(Config { interval, jitter })
}

impl Config {
    /// The checking period: the interval moved by a random amount in [-jitter/2, +jitter/2).
    pub fn period(&self) -> Duration {
        let j = self.jitter.as_nanos() as i128;
        if j == 0 {
            return self.interval;
        }
        let offset = rand::random_range(0..j) - j / 2;
        let nanos = (self.interval.as_nanos() as i128 + offset).max(0);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg = parse(c)?;
    let checker = c.shared().state::<Checker>();
    // The setting is per process in CoreDNS: the last block's line wins.
    checker.configure(
        cfg.period(),
        c.shared().corefile.clone(),
        c.shared().control.clone(),
        ReloadMetrics::register(c.metrics()),
    );
    if checker.claim() {
        c.add_lifecycle(checker);
    }
    Ok(())
}

#[derive(Default)]
struct State {
    period: Duration,
    corefile: CorefileInput,
    control: Option<Arc<dyn Control>>,
    metrics: ReloadMetrics,
    registered: bool,
    stop: Option<watch::Sender<bool>>,
}

/// One instance's checker: logs the running configuration's hash once the instance serves, then
/// polls the Corefile until the instance is replaced or stopped.
#[derive(Default)]
pub struct Checker {
    state: Mutex<State>,
}

impl Checker {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn configure(
        &self,
        period: Duration,
        corefile: CorefileInput,
        control: Option<Arc<dyn Control>>,
        metrics: ReloadMetrics,
    ) {
        let mut s = self.lock();
        s.period = period;
        s.corefile = corefile;
        s.control = control;
        s.metrics = metrics;
    }

    /// True the first time: the hook is registered once per instance.
    fn claim(&self) -> bool {
        let mut s = self.lock();
        !std::mem::replace(&mut s.registered, true)
    }
}

#[async_trait]
impl Lifecycle for Checker {
    async fn on_started(&self) {
        let (period, corefile, control, metrics) = {
            let s = self.lock();
            (
                s.period,
                s.corefile.clone(),
                s.control.clone(),
                s.metrics.clone(),
            )
        };
        let running = match hash::of(&corefile) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(target: "plugin/reload", "{e}");
                return;
            }
        };
        tracing::info!(target: "plugin/reload", "Running configuration SHA512 = {running}");
        let Some(control) = control else {
            return;
        };
        let (tx, rx) = watch::channel(false);
        self.lock().stop = Some(tx);
        tokio::spawn(check(period, running, control, metrics, rx));
    }

    async fn on_shutdown(&self) {
        if let Some(tx) = self.lock().stop.take() {
            let _ = tx.send(true);
        }
    }
}

/// The polling loop of one instance.
async fn check(
    period: Duration,
    mut running: String,
    control: Arc<dyn Control>,
    metrics: ReloadMetrics,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        // An unreadable Corefile is skipped silently, as in CoreDNS.
        let Ok(input) = control.load() else {
            continue;
        };
        let next = match hash::of(&input) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(target: "plugin/reload", "Corefile parse failed: {e}");
                continue;
            }
        };
        if next == running {
            continue;
        }
        metrics.version.remove(&vec![
            ("hash".into(), "sha512".into()),
            ("value".into(), running),
        ]);
        // A Corefile that fails is not tried again until it changes again.
        running = next;
        if *stop.borrow() {
            return;
        }
        let result = control.restart(input).await;
        metrics
            .version
            .get_or_create(&vec![
                ("hash".into(), "sha512".into()),
                ("value".into(), running.clone()),
            ])
            .set(1);
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(target: "plugin/reload", "Corefile changed but reload failed: {e}");
                metrics.failed.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrodns_plugin_test as testkit;

    fn parse_text(text: &str) -> Result<Config, SetupError> {
        let disp = testkit::dispenser(NAME, text)?;
        let mut block = ferrodns_plugin::BlockSettings::default();
        let shared = ferrodns_plugin::Shared::default();
        let mut c = Setup::new(disp, &mut block, &shared);
        parse(&mut c)
    }

    #[test]
    fn setup_registers_one_hook_per_instance() {
        let shared = ferrodns_plugin::Shared::default();
        testkit::setup_with(&DESCRIPTOR, "reload 5s", &shared).unwrap();
        testkit::setup_with(&DESCRIPTOR, "reload 8s", &shared).unwrap();
        assert_eq!(shared.lifecycles().len(), 1);
    }

    #[test]
    fn defaults_and_arguments() {
        assert_eq!(
            parse_text("reload").unwrap(),
            Config {
                interval: DEFAULT_INTERVAL,
                jitter: DEFAULT_JITTER
            }
        );
        assert_eq!(
            parse_text("reload 10s").unwrap(),
            Config {
                interval: Duration::from_secs(10),
                jitter: Duration::from_secs(5)
            }
        );
        assert_eq!(
            parse_text("reload 3s 0").unwrap(),
            Config {
                interval: Duration::from_secs(3),
                jitter: Duration::ZERO
            }
        );
    }

    #[test]
    fn coredns_errors() {
        let e = |t: &str| parse_text(t).unwrap_err().to_string();
        assert_eq!(
            e("reload 1s"),
            "plugin/reload: interval value must be greater or equal to 2s"
        );
        assert_eq!(
            e("reload -5s"),
            "plugin/reload: interval value must be greater or equal to 2s"
        );
        assert_eq!(
            e("reload 10s 500ms"),
            "plugin/reload: jitter value must be 0 or greater or equal to 1s"
        );
        assert_eq!(
            e("reload 10s x"),
            "plugin/reload: time: invalid duration \"x\""
        );
        assert!(
            e("reload 1 2 3").contains("Wrong argument count"),
            "{}",
            e("reload 1 2 3")
        );
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
}

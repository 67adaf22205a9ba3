//! Log lines shaped like CoreDNS's: `[INFO] message`, and `[INFO] plugin/<name>: message` for
//! events whose tracing target is `plugin/<name>`. Written to standard output, no timestamps.
//!
//! `[DEBUG]` lines are off until a loaded Corefile uses `debug` ([`set_debug`]), and off again
//! when a reload loads one without it, as CoreDNS's `log.D` switch.
//!
//! Dependencies' own log events never print one line each: a client or an upstream could then
//! fill the log at will (hickory-proto warns about every malformed EDNS option it reads, and
//! CoreDNS logs nothing there). Their warnings and errors are counted in
//! `ferrodns_library_log_events_total{library,level}` and printed at most once a minute, with
//! the number held back since the last one ([`LibraryLog`]); their lower levels are dropped.

use std::fmt;
use std::io::Write as _;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferrodns_plugin::Metrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;

use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The CoreDNS log line format.
pub struct CoreDnsFormat;

/// The target prefix that marks an event as fatal (`[FATAL]`); log such events at ERROR level.
pub const FATAL_PREFIX: &str = "fatal:";

/// CoreDNS's name for a level.
pub fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "DEBUG",
    }
}

impl<S, N> FormatEvent<S, N> for CoreDnsFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        // tracing has no fatal level: an event whose target starts `fatal:` is one (CoreDNS's
        // `log.Fatal`; the emitter exits after it). `fatal:plugin/loop` prints
        // `[FATAL] plugin/loop: `.
        let (level, target) = match meta.target().strip_prefix(FATAL_PREFIX) {
            Some(t) => ("FATAL", t),
            None => (level_name(meta.level()), meta.target()),
        };
        write!(writer, "[{level}] ")?;
        if target.starts_with("plugin/") {
            write!(writer, "{target}: ")?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Whether `[DEBUG]` lines are printed (CoreDNS's `log.D`).
static DEBUG: AtomicBool = AtomicBool::new(false);

/// Turn `[DEBUG]` lines on or off, process-wide. The server calls it each time a Corefile is
/// loaded: on when a block of it uses `debug`, off otherwise (so a reload without `debug` turns
/// them off again, as CoreDNS does).
pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

/// Whether `[DEBUG]` lines are printed now (for plugins whose debug output is costly to build,
/// as CoreDNS's `log.D.Value()`).
pub fn debug_enabled() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

/// The level filter: everything at INFO and above; DEBUG events of plugins (target
/// `plugin/<name>`, CoreDNS's `log.Debug` lines) while [`debug_enabled`]. The server's own debug
/// events (send errors and the like, which CoreDNS does not log) and dependencies' stay off.
/// Lock-free: callsites at INFO and above are always on, plugins' debug callsites check the
/// switch per event, the rest are never on.
pub struct DebugSwitch;

impl DebugSwitch {
    /// A plugin's debug event.
    fn switchable(meta: &Metadata<'_>) -> bool {
        *meta.level() == Level::DEBUG && meta.target().starts_with("plugin/")
    }

    fn wanted(meta: &Metadata<'_>) -> bool {
        let level = *meta.level();
        !from_library(meta) && (level <= Level::INFO || (Self::switchable(meta) && debug_enabled()))
    }
}

/// Whether an event comes from a dependency rather than from ferrodns: ours have the targets
/// `server`, `node-cache`, `corefile`, `trace`, `querylog` (the log plugin's query lines),
/// `plugin/<name>`, `fatal:...`, or a module path in a `ferrodns*` crate or the xtask. A new
/// target of ours must be added here, or its lines are taken for a dependency's.
pub fn from_library(meta: &Metadata<'_>) -> bool {
    let t = meta.target();
    if t.starts_with("plugin/") || t.starts_with(FATAL_PREFIX) {
        return false;
    }
    let krate = t.split("::").next().unwrap_or(t);
    !(krate.starts_with("ferrodns")
        || matches!(
            krate,
            "server" | "node-cache" | "corefile" | "trace" | "querylog" | "xtask"
        ))
}

/// How often at most a dependency's warning or error is printed.
pub const LIBRARY_LOG_EVERY: Duration = Duration::from_secs(60);

static LIBRARY_EVENTS: LazyLock<Family<Vec<(String, String)>, Counter>> =
    LazyLock::new(Family::default);

/// Register `ferrodns_library_log_events_total` (idempotent; the server calls it on each load).
pub fn register_metrics(metrics: &Metrics) {
    metrics.register(
        "ferrodns_library_log_events",
        "Warnings and errors logged by dependencies (printed at most once a minute), by library and level.",
        || LIBRARY_EVENTS.clone(),
    );
}

/// A dependency's warning or error seen, not yet printed.
#[derive(Debug)]
pub struct RateLimit {
    start: Instant,
    every: Duration,
    /// Milliseconds since `start` when the next line may print (0: the first may).
    next_ms: AtomicU64,
    held: AtomicU64,
}

impl RateLimit {
    /// At most one line per `every`.
    pub fn new(every: Duration) -> Self {
        RateLimit {
            start: Instant::now(),
            every,
            next_ms: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// One event at `now`: `Some(n)` when it may print, `n` being how many were held back since
    /// the last printed one; `None` when it is held back.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let now_ms = u64::try_from(now.saturating_duration_since(self.start).as_millis())
            .unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        let every = u64::try_from(self.every.as_millis()).unwrap_or(u64::MAX);
        if now_ms >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now_ms.saturating_add(every),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.held.swap(0, Ordering::Relaxed));
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// The layer that counts dependencies' warnings and errors and prints them rate-limited, in
/// CoreDNS's format, to its writer. Give it a per-layer filter for those events (as [`init`]
/// does): it ignores any other, but a plain layer must not disable callsites for the others.
pub struct LibraryLog<W> {
    writer: W,
    limit: RateLimit,
}

impl<W> LibraryLog<W> {
    /// Print to `writer` at most once per `every`.
    pub fn new(writer: W, every: Duration) -> Self {
        LibraryLog {
            writer,
            limit: RateLimit::new(every),
        }
    }
}

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        use std::fmt::Write as _;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl<S, W> Layer<S> for LibraryLog<W>
where
    S: Subscriber,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        if !(from_library(meta) && *meta.level() <= Level::WARN) {
            return;
        }
        let library = meta.target().split("::").next().unwrap_or("").to_string();
        let level = level_name(meta.level());
        LIBRARY_EVENTS
            .get_or_create(&vec![
                ("library".to_string(), library.clone()),
                ("level".to_string(), level.to_lowercase()),
            ])
            .inc();
        let Some(held) = self.limit.admit(Instant::now()) else {
            return;
        };
        let mut msg = Message::default();
        event.record(&mut msg);
        let mut line = format!("[{level}] {library}: {}", msg.0.trim());
        if held > 0 {
            line.push_str(&format!(
                " ({held} more from dependencies not logged since the last one; see ferrodns_library_log_events_total)"
            ));
        }
        line.push('\n');
        let _ = self.writer.make_writer().write_all(line.as_bytes());
    }
}

impl<S> Filter<S> for DebugSwitch {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        Self::wanted(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        let level = *meta.level();
        if from_library(meta) {
            Interest::never()
        } else if level <= Level::INFO {
            Interest::always()
        } else if Self::switchable(meta) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::DEBUG)
    }
}

/// Install the process-wide subscriber: CoreDNS format on stdout at INFO, with `[DEBUG]` lines
/// switched by [`set_debug`] (`debug` starts them on), and dependencies' warnings and errors
/// rate-limited ([`LibraryLog`]). `FERRODNS_LOG` (an `EnvFilter` directive) replaces the switch
/// and the rate limit with a fixed filter, for debugging.
/// Library events CoreDNS has no counterpart for, which would only add noise to its log: the
/// Kubernetes client's own request log (one error per failed request, which the kubernetes
/// plugin reports once as "Failed to watch ...") and its warning on every connection made
/// with `insecure-skip-tls-verify`, which client-go accepts silently.
fn quiet_library(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with("kube_client::client")
}

pub fn init(debug: bool) {
    set_debug(debug);
    let fmt = tracing_subscriber::fmt::layer()
        .event_format(CoreDnsFormat)
        .with_writer(std::io::stdout);
    match tracing_subscriber::EnvFilter::try_from_env("FERRODNS_LOG") {
        Ok(filter) => {
            let _ = tracing_subscriber::registry()
                .with(tracing_subscriber::Layer::with_filter(fmt, filter))
                .try_init();
        }
        Err(_) => {
            let _ = tracing_subscriber::registry()
                .with(tracing_subscriber::Layer::with_filter(fmt, DebugSwitch))
                .with(
                    LibraryLog::new(std::io::stdout, LIBRARY_LOG_EVERY).with_filter(
                        tracing_subscriber::filter::filter_fn(|m| {
                            from_library(m) && *m.level() <= Level::WARN && !quiet_library(m)
                        }),
                    ),
                )
                .try_init();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::CoreDnsFormat;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn fatal_targets_print_as_fatal() {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .event_format(CoreDnsFormat)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::error!(target: "fatal:plugin/loop", "Loop detected");
            tracing::error!(target: "plugin/loop", "plain");
            tracing::info!("hello");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "[FATAL] plugin/loop: Loop detected\n[ERROR] plugin/loop: plain\n[INFO] hello\n"
        );
    }

    #[test]
    fn debug_lines_follow_the_switch() {
        use tracing_subscriber::layer::SubscriberExt;
        let buf = Buf::default();
        let out = buf.clone();
        let fmt = tracing_subscriber::fmt::layer()
            .event_format(CoreDnsFormat)
            .with_writer(move || out.clone());
        let sub = tracing_subscriber::registry().with(tracing_subscriber::Layer::with_filter(
            fmt,
            super::DebugSwitch,
        ));
        tracing::subscriber::with_default(sub, || {
            super::set_debug(false);
            tracing::debug!(target: "plugin/hosts", "hidden");
            super::set_debug(true);
            tracing::debug!(target: "plugin/hosts", "Parsed hosts file into 1 entries");
            tracing::debug!(target: "some_crate::module", "a dependency's line");
            tracing::debug!(target: "server", "UDP send to 127.0.0.1:1: refused");
            tracing::trace!(target: "plugin/hosts", "never");
            super::set_debug(false);
            tracing::debug!(target: "plugin/hosts", "hidden again");
            tracing::info!("still shown");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "[DEBUG] plugin/hosts: Parsed hosts file into 1 entries\n[INFO] still shown\n"
        );
    }

    #[test]
    fn our_targets_are_not_taken_for_dependencies() {
        use tracing::Level;
        use tracing::callsite::Identifier;
        use tracing::field::FieldSet;
        use tracing::metadata::Kind;
        struct Cs;
        impl tracing::Callsite for Cs {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &tracing::Metadata<'_> {
                unimplemented!()
            }
        }
        static CS: Cs = Cs;
        let meta = |target: &'static str| {
            tracing::Metadata::new(
                "e",
                target,
                Level::WARN,
                None,
                None,
                None,
                FieldSet::new(&[], Identifier(&CS)),
                Kind::EVENT,
            )
        };
        for ours in [
            "server",
            "node-cache",
            "corefile",
            "trace",
            "querylog",
            "plugin/forward",
            "fatal:plugin/loop",
            "ferrodns_server::run",
            "ferrodns_plugin_cache::store",
            "xtask::bench",
        ] {
            assert!(!super::from_library(&meta(ours)), "{ours}");
        }
        for theirs in [
            "hickory_proto::rr::rdata::opt",
            "pprof",
            "rustls::conn",
            "h2",
        ] {
            assert!(super::from_library(&meta(theirs)), "{theirs}");
        }
    }

    #[test]
    fn a_rate_limit_admits_one_per_period_and_counts_the_rest() {
        use std::time::{Duration, Instant};
        let limit = super::RateLimit::new(Duration::from_secs(60));
        let t0 = Instant::now() + Duration::from_secs(1);
        assert_eq!(limit.admit(t0), Some(0));
        for s in 1..=5 {
            assert_eq!(limit.admit(t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(limit.admit(t0 + Duration::from_secs(59)), None);
        assert_eq!(limit.admit(t0 + Duration::from_secs(61)), Some(6));
        assert_eq!(limit.admit(t0 + Duration::from_secs(62)), None);
    }

    #[test]
    fn dependencies_warnings_print_once_a_period_our_own_every_time() {
        use std::time::Duration;
        use tracing_subscriber::Layer;
        use tracing_subscriber::layer::SubscriberExt;
        let buf = Buf::default();
        let (out, lib_out) = (buf.clone(), buf.clone());
        let fmt = tracing_subscriber::fmt::layer()
            .event_format(CoreDnsFormat)
            .with_writer(move || out.clone());
        let lib = super::LibraryLog::new(move || lib_out.clone(), Duration::from_secs(60))
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                super::from_library(m) && *m.level() <= tracing::Level::WARN
            }));
        let sub = tracing_subscriber::registry()
            .with(fmt.with_filter(super::DebugSwitch))
            .with(lib);
        tracing::subscriber::with_default(sub, || {
            for i in 0..1000 {
                tracing::warn!(target: "hickory_proto::rr::rdata::opt", "bad option {i}");
                tracing::info!(target: "hickory_proto::op", "chatter");
            }
            tracing::warn!(target: "plugin/forward", "ours");
            tracing::error!(target: "server", "ours too");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "[WARNING] hickory_proto: bad option 0\n[WARNING] plugin/forward: ours\n[ERROR] ours too\n"
        );
    }
}

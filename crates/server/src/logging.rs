//! Log lines shaped like CoreDNS's: `[INFO] message`, and `[INFO] plugin/<name>: message` for
//! events whose tracing target is `plugin/<name>`. Written to standard output, no timestamps.
//!
//! `[DEBUG]` lines are off until a loaded Corefile uses `debug` ([`set_debug`]), and off again
//! when a reload loads one without it, as CoreDNS's `log.D` switch.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

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

    /// The `pprof` crate (behind the pprof plugin) logs each CPU profile's start and stop at
    /// INFO; CoreDNS logs nothing there, so only its warnings and errors are shown.
    fn quiet_crate(meta: &Metadata<'_>) -> bool {
        let t = meta.target();
        (t == "pprof" || t.starts_with("pprof::")) && *meta.level() > Level::WARN
    }

    fn wanted(meta: &Metadata<'_>) -> bool {
        let level = *meta.level();
        (level <= Level::INFO && !Self::quiet_crate(meta))
            || (Self::switchable(meta) && debug_enabled())
    }
}

impl<S> Filter<S> for DebugSwitch {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        Self::wanted(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        let level = *meta.level();
        if Self::quiet_crate(meta) {
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
/// switched by [`set_debug`] (`debug` starts them on). `FERRODNS_LOG` (an `EnvFilter`
/// directive) replaces the switch with a fixed filter.
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
}

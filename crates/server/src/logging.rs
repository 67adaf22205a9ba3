//! Log lines shaped like CoreDNS's: `[INFO] message`, and `[INFO] plugin/<name>: message` for
//! events whose tracing target is `plugin/<name>`. Written to standard output, no timestamps.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

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

/// Install the process-wide subscriber: CoreDNS format on stdout at INFO (DEBUG when `debug`),
/// overridable with `FERRODNS_LOG` (an `EnvFilter` directive).
pub fn init(debug: bool) {
    // The `pprof` crate (behind the pprof plugin) logs each CPU profile's start and stop at
    // INFO; CoreDNS logs nothing there.
    let default = if debug {
        "debug,pprof=warn"
    } else {
        "info,pprof=warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRODNS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(CoreDnsFormat)
        .with_writer(std::io::stdout)
        .try_init();
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
}

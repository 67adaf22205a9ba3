//! Log lines shaped like CoreDNS's: `[INFO] message`, and `[INFO] plugin/<name>: message` for
//! events whose tracing target is `plugin/<name>`. Written to standard output, no timestamps.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The CoreDNS log line format.
pub struct CoreDnsFormat;

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
        write!(writer, "[{}] ", level_name(meta.level()))?;
        if meta.target().starts_with("plugin/") {
            write!(writer, "{}: ", meta.target())?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Install the process-wide subscriber: CoreDNS format on stdout at INFO (DEBUG when `debug`),
/// overridable with `FERRODNS_LOG` (an `EnvFilter` directive).
pub fn init(debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRODNS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(CoreDnsFormat)
        .with_writer(std::io::stdout)
        .try_init();
}

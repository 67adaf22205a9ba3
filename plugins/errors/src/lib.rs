//! # errors
//!
//! Error logging as CoreDNS's *errors* plugin does it: when the rest of the chain fails, one line
//! `<rcode> <qname> <qtype>: <error>` is logged at ERROR through the `plugin/errors` tracing
//! target. Errors matching a `consolidate` pattern are counted instead and summarised once per
//! period (`<N> errors like '<regexp>' occurred in last <duration>`), at the pattern's level.
//!
//! ```text
//! errors [stdout] {
//!     stacktrace
//!     consolidate DURATION REGEXP [LEVEL] [show_first]
//! }
//! ```

mod setup;
pub use setup::parse;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use ferrodns_go::regexp::Regex;
use ferrodns_go::time::SignedDuration;
use ferrodns_pkg::text::{name_lower, type_name};
use ferrodns_plugin::{
    Descriptor, Lifecycle, Next, Plugin, PluginError, Reply, Request, async_trait,
};

/// The directive name.
pub const NAME: &str = "errors";

/// The tracing target of every line this plugin writes.
pub const TARGET: &str = "plugin/errors";

/// The longest REGEXP accepted, in bytes.
pub const MAX_REGEXP_LEN: usize = 10000;

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// The level consolidated lines (and, with `show_first`, first errors) are logged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `warning`
    Warning,
    /// `error` (the default)
    Error,
    /// `info`
    Info,
    /// `debug`
    Debug,
}

impl Level {
    pub(crate) fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "warning" => Level::Warning,
            "error" => Level::Error,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return None,
        })
    }

    fn log(self, msg: &str) {
        match self {
            Level::Warning => tracing::warn!(target: TARGET, "{msg}"),
            Level::Error => tracing::error!(target: TARGET, "{msg}"),
            Level::Info => tracing::info!(target: TARGET, "{msg}"),
            Level::Debug => tracing::debug!(target: TARGET, "{msg}"),
        }
    }
}

/// One `consolidate` line.
#[derive(Debug, Clone)]
pub struct Consolidate {
    /// How long errors are counted after the first one.
    /// (Go accepts a negative one: the timer then fires at once.)
    pub period: SignedDuration,
    /// The pattern, as written.
    pub pattern: String,
    /// The pattern compiled with Go's syntax.
    pub regex: Regex,
    /// The level of the summary (and of the first error with `show_first`).
    pub level: Level,
    /// Log the first error of a period at once.
    pub show_first: bool,
}

/// What an `errors` directive configures.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The `consolidate` lines, in order (the first matching one wins).
    pub patterns: Vec<Consolidate>,
}

/// A pending period's timer: whichever of the timer and a shutdown claims it first logs.
struct Timer {
    claimed: AtomicBool,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Timer {
    /// True for the one caller that gets to act on the timer.
    fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::AcqRel)
    }
}

struct Counter {
    spec: Consolidate,
    count: AtomicU32,
    timer: Mutex<Option<Arc<Timer>>>,
}

struct Inner {
    counters: Vec<Counter>,
    stopped: AtomicBool,
}

impl Inner {
    /// Log and reset pattern `i`'s count.
    fn log_pattern(&self, i: usize) {
        let Some(p) = self.counters.get(i) else {
            return;
        };
        let cnt = p.count.swap(0, Ordering::AcqRel);
        if cnt == 0 {
            return;
        }
        if cnt > 1 || !p.spec.show_first {
            let msg = format!(
                "{cnt} errors like '{}' occurred in last {}",
                p.spec.pattern, p.spec.period
            );
            p.spec.level.log(&msg);
        }
    }

    /// Count an error for pattern `i`. True when the error is taken care of (not to be logged
    /// by the caller); false after shutdown, without a runtime, and for the first error of a
    /// period with `show_first`.
    fn consolidate(self: &Arc<Self>, i: usize) -> bool {
        if self.stopped.load(Ordering::Acquire) {
            return false;
        }
        let Some(p) = self.counters.get(i) else {
            return false;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let cnt = p.count.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        if cnt == 1 {
            let timer = Arc::new(Timer {
                claimed: AtomicBool::new(false),
                task: Mutex::new(None),
            });
            let inner = Arc::clone(self);
            let t = Arc::clone(&timer);
            let wait = p.spec.period.or_zero();
            let handle = rt.spawn(async move {
                tokio::time::sleep(wait).await;
                if t.claim() {
                    inner.log_pattern(i);
                }
            });
            if let Ok(mut slot) = timer.task.lock() {
                *slot = Some(handle.abort_handle());
            }
            if let Ok(mut slot) = p.timer.lock() {
                *slot = Some(Arc::clone(&timer));
            }
            if self.stopped.load(Ordering::Acquire) && timer.claim() {
                handle.abort();
                self.log_pattern(i);
            }
            return !p.spec.show_first;
        }
        true
    }

    /// Stop counting and log what is pending.
    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        for (i, p) in self.counters.iter().enumerate() {
            let timer = p.timer.lock().ok().and_then(|t| t.clone());
            if let Some(timer) = timer
                && timer.claim()
            {
                if let Ok(task) = timer.task.lock()
                    && let Some(task) = task.as_ref()
                {
                    task.abort();
                }
                self.log_pattern(i);
            }
        }
    }
}

/// The request handler.
pub struct Errors {
    inner: Arc<Inner>,
}

impl Errors {
    /// A handler for this configuration.
    pub fn new(config: Config) -> Self {
        Errors {
            inner: Arc::new(Inner {
                counters: config
                    .patterns
                    .into_iter()
                    .map(|spec| Counter {
                        spec,
                        count: AtomicU32::new(0),
                        timer: Mutex::new(None),
                    })
                    .collect(),
                stopped: AtomicBool::new(false),
            }),
        }
    }

    /// Flush pending summaries and stop consolidating (what the shutdown hook does).
    pub fn stop(&self) {
        self.inner.stop();
    }

    /// The lifecycle hook that flushes this handler at shutdown.
    pub fn shutdown_hook(&self) -> Arc<dyn Lifecycle> {
        Arc::new(Flush(self.inner.clone()))
    }
}

/// Flushes pending summaries when the instance stops.
struct Flush(Arc<Inner>);

#[async_trait]
impl Lifecycle for Flush {
    async fn on_shutdown(&self) {
        self.0.stop();
    }
}

#[async_trait]
impl Plugin for Errors {
    fn name(&self) -> &'static str {
        NAME
    }

    /// A reply from the fast path (a cache hit) carries no error, so errors has nothing to log
    /// there and does not keep the block off the fast path.
    fn fast_transparent(&self) -> bool {
        true
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        let result = next.serve(req).await;
        if let Err(e) = &result {
            let text = &e.message;
            let mut level = Level::Error;
            for (i, p) in self.inner.counters.iter().enumerate() {
                if p.spec.regex.is_match(text) {
                    if self.inner.consolidate(i) {
                        return result;
                    }
                    level = p.spec.level;
                    break;
                }
            }
            let msg = format!(
                "{} {} {}: {}",
                u16::from(e.rcode),
                name_lower(&req.qname()),
                type_name(u16::from(req.qtype())),
                text
            );
            level.log(&msg);
        }
        result
    }
}

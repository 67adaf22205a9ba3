//! A tracing subscriber for one test that keeps every event's level, target and message, so
//! tests can assert what a plugin logged.

use std::fmt::{self, Write};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Events recorded so far.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<(Level, String, String)>>>);

impl Captured {
    /// Every event as `[LEVEL] target: message`.
    pub fn lines(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .map(|(l, t, m)| format!("[{l}] {t}: {m}"))
            .collect()
    }

    /// The messages of events with this target.
    pub fn messages(&self, target: &str) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|(_, t, _)| t == target)
            .map(|(_, _, m)| m)
            .collect()
    }

    /// Every event.
    pub fn events(&self) -> Vec<(Level, String, String)> {
        match self.0.lock() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

struct Capture(Captured);

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        let meta = event.metadata();
        if let Ok(mut v) = (self.0).0.lock() {
            v.push((*meta.level(), meta.target().to_string(), m.0));
        }
    }
}

/// Install a capturing subscriber as this thread's default until the guard is dropped.
pub fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(Capture(captured.clone()));
    let guard = tracing::subscriber::set_default(subscriber);
    (captured, guard)
}

//! # ready
//!
//! Answers `/ready` on an HTTP listener (default `:8181`): `200 OK` once every plugin that
//! reports readiness is ready, `503` with the sorted, comma-joined names of those that are not,
//! and `503 Shutting down` once the process stops, as CoreDNS's *ready* plugin does.
//!
//! Plugins report readiness through [`ferrodns_plugin::Setup::add_readiness`]; the set is the
//! instance's. By default (`monitor until-ready`) a plugin that was ready once is not asked
//! again; `monitor continuously` asks every plugin on every request. The plugin adds no request
//! handler. Blocks naming the same address share one listener.

mod setup;
pub use setup::parse;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ferrodns_plugin::{
    Descriptor, HttpHandler, HttpResponse, Lifecycle, Readiness, ReadinessSet, async_trait,
};

/// The directive name.
pub const NAME: &str = "ready";

/// The plugin's descriptor, listed in `plugin.cfg`.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// CoreDNS's default address.
pub const DEFAULT_ADDR: &str = ":8181";

/// The path served.
pub const PATH: &str = "/ready";

const TARGET: &str = "plugin/ready";

/// How plugins are asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Monitor {
    /// A plugin that was ready once is not asked again.
    #[default]
    UntilReady,
    /// Every plugin is asked on every request.
    Continuously,
}

/// What a block's `ready` line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `host:port` to serve `/ready` on.
    pub addr: String,
    /// How plugins are asked.
    pub monitor: Monitor,
}

/// What every block's `ready` of one instance shares: the mode (the last block's, as in
/// CoreDNS), the plugins already seen ready, and whether the instance is stopping.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) continuously: AtomicBool,
    stopping: AtomicBool,
    seen_ready: Mutex<HashSet<String>>,
}

/// Serves `/ready`.
pub(crate) struct Page {
    pub(crate) plugins: ReadinessSet,
    pub(crate) state: Arc<State>,
}

impl Page {
    /// The sorted names of the plugins that are not ready.
    fn not_ready(&self) -> Vec<String> {
        // One reporter per name, the last registered (CoreDNS keeps them in a map by name).
        let by_name: BTreeMap<String, Arc<dyn Readiness>> =
            self.plugins.all().into_iter().collect();
        let keep = self.state.continuously.load(Ordering::SeqCst);
        let mut seen = match self.state.seen_ready.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut out = Vec::new();
        for (name, r) in by_name {
            if !keep && seen.contains(&name) {
                continue;
            }
            if r.ready() {
                if !keep {
                    seen.insert(name);
                }
            } else {
                out.push(name);
            }
        }
        out
    }
}

impl HttpHandler for Page {
    fn handle(&self) -> HttpResponse {
        if self.state.stopping.load(Ordering::SeqCst) {
            return HttpResponse::text(503, "Shutting down");
        }
        let not_ready = self.not_ready();
        if not_ready.is_empty() {
            return HttpResponse::text(200, "OK");
        }
        let names = not_ready.join(",");
        tracing::info!(target: TARGET, "Plugins not ready: {names:?}");
        HttpResponse::text(503, names)
    }
}

/// Turns `/ready` to `503 Shutting down` when the instance stops.
pub(crate) struct Stopping(pub(crate) Arc<State>);

#[async_trait]
impl Lifecycle for Stopping {
    async fn on_shutdown(&self) {
        self.0.stopping.store(true, Ordering::SeqCst);
    }
}

//! Plugin setup: descriptors, the registry in `plugin.cfg` order, and the context a setup
//! function works in.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use ferrodns_corefile::ZoneAddr;

use crate::process::{Control, CorefileInput, Listening, Readiness, ReadinessSet};
use crate::{Dispenser, Handles, HttpRegistry, Lifecycle, Metrics, Plugin};

/// A setup failure. Its text is printed as is, so it carries CoreDNS's wording, usually
/// `plugin/<name>: <file>:<line> - Error during parsing: ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

impl SetupError {
    /// An error with this exact text.
    pub fn new(msg: impl Into<String>) -> Self {
        SetupError(msg.into())
    }

    /// Prefix `plugin/<name>: `, as CoreDNS's `plugin.Error` does.
    pub fn plugin(name: &str, err: impl std::fmt::Display) -> Self {
        SetupError(format!("plugin/{name}: {err}"))
    }

    /// `plugin/<name>: this plugin can only be used once per Server Block`.
    pub fn once(name: &str) -> Self {
        Self::plugin(name, "this plugin can only be used once per Server Block")
    }
}

/// The signature of a plugin's setup function.
pub type SetupFn = fn(&mut Setup<'_>) -> Result<(), SetupError>;

/// Registers a plugin's process-wide metric families.
pub type MetricsFn = fn(&Metrics);

/// What a plugin crate exports: its directive name, setup function and, optionally, the metric
/// families it registers when the process starts.
#[derive(Clone, Copy)]
pub struct Descriptor {
    /// The directive name as written in the Corefile and in `plugin.cfg`.
    pub name: &'static str,
    /// Called once per server block that uses the directive.
    pub setup: SetupFn,
    /// Called once when the process starts, whether or not a block uses the plugin: CoreDNS
    /// registers its plugins' unlabelled families at start, so they show at 0 in `/metrics`.
    pub metrics: Option<MetricsFn>,
}

impl Descriptor {
    /// A plugin with no process-wide metrics.
    pub const fn new(name: &'static str, setup: SetupFn) -> Descriptor {
        Descriptor {
            name,
            setup,
            metrics: None,
        }
    }

    /// The same plugin, registering its families at process start with `f`. This matters for
    /// unlabelled metrics, which then show at 0 from the start; a labelled family shows nothing
    /// until its first series exists, wherever it is registered, so those are registered in
    /// setup.
    pub const fn with_metrics(self, f: MetricsFn) -> Descriptor {
        Descriptor {
            metrics: Some(f),
            ..self
        }
    }
}

impl std::fmt::Debug for Descriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Descriptor")
            .field("name", &self.name)
            .finish()
    }
}

/// The plugins a binary is built with, in chain order (generated from `plugin.cfg`).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    plugins: Vec<Descriptor>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Append a plugin; order of calls is chain order. A second descriptor with the same name
    /// replaces the first in place.
    pub fn add(&mut self, d: Descriptor) {
        match self.plugins.iter_mut().find(|p| p.name == d.name) {
            Some(p) => *p = d,
            None => self.plugins.push(d),
        }
    }

    /// The descriptors in chain order.
    pub fn descriptors(&self) -> &[Descriptor] {
        &self.plugins
    }

    /// Register every plugin's process-wide metric families (at process start).
    pub fn register_metrics(&self, metrics: &Metrics) {
        for d in &self.plugins {
            if let Some(f) = d.metrics {
                f(metrics);
            }
        }
    }

    /// The descriptor of a directive.
    pub fn get(&self, name: &str) -> Option<&Descriptor> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// Whether `name` is a directive of this binary.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// A server block's settings that setup functions may read or change. Every key (zone) of the
/// block shares them, as in CoreDNS.
#[derive(Default, Clone)]
pub struct BlockSettings {
    /// The block's keys after inspection, in order (CIDR keys already split).
    pub zones: Vec<ZoneAddr>,
    /// Addresses to listen on; empty means all (CoreDNS's `[""]`). Set by `bind`.
    pub listen_hosts: Vec<String>,
    /// Whether `bind` was used in the block (so that an empty list means "nothing left").
    pub bound: bool,
    /// Log a stack trace with recovered panics (`errors { stacktrace }`).
    pub stacktrace: bool,
    /// Do not recover panics (`debug`).
    pub debug: bool,
    /// Connection timeouts and limits asked for by `timeouts` (`None`: the listener's default).
    pub timeouts: ConnTimeouts,
    /// The largest EDNS UDP size a request may advertise past `bufsize` (its handler caps it on
    /// the async path; the server applies the same cap before a UDP fast hook).
    pub udp_size_cap: Option<u16>,
    /// The handlers, in chain order.
    pub plugins: Vec<Arc<dyn Plugin>>,
    /// Typed values one plugin's setup leaves for a later plugin of the same block (CoreDNS's
    /// `dnsserver.GetConfig(c).Handler(name)`: `forward` finds the block's `dnstap` taps).
    pub state: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    /// The typed handles the block's plugins publish for each other (see [`Handles`]).
    pub handles: Handles,
}

impl std::fmt::Debug for BlockSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockSettings")
            .field("zones", &self.zones)
            .field("listen_hosts", &self.listen_hosts)
            .field("bound", &self.bound)
            .field("stacktrace", &self.stacktrace)
            .field("debug", &self.debug)
            .field("timeouts", &self.timeouts)
            .field("udp_size_cap", &self.udp_size_cap)
            .field("handles", &self.handles)
            .field(
                "plugins",
                &self.plugins.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What a block's `timeouts` asks of its connection-oriented listeners (TCP now; TLS and HTTPS
/// read the same). Each `None` keeps the server's default; when several blocks share a listener
/// the last block (in file order) that sets a value wins, as in CoreDNS.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnTimeouts {
    /// Time allowed to read the first query of a connection.
    pub read: Option<std::time::Duration>,
    /// Time allowed to write a reply.
    pub write: Option<std::time::Duration>,
    /// Time a connection may wait for its next query.
    pub idle: Option<std::time::Duration>,
    /// Queries served on one connection before it is closed; `-1` is unlimited.
    pub max_queries: Option<i64>,
}

/// What one configuration instance (one Corefile load) shares across its blocks: the process's
/// metrics, the HTTP routes, lifecycle hooks and per-instance state that plugins keep across
/// blocks.
#[derive(Default)]
pub struct Shared {
    /// The process-wide metrics registry (survives reloads).
    pub metrics: Metrics,
    /// HTTP routes of this instance, served on listeners shared by address.
    pub http: HttpRegistry,
    /// The Corefile this instance was built from.
    pub corefile: CorefileInput,
    /// The binary's reload entry point (`None` in tests that build instances by hand).
    pub control: Option<Arc<dyn Control>>,
    /// This instance's DNS listeners, once bound.
    pub listening: Listening,
    /// Plugins that report readiness.
    pub readiness: ReadinessSet,
    lifecycles: Mutex<Vec<Arc<dyn Lifecycle>>>,
    state: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Shared {
    /// A context sharing the given process-wide metrics.
    pub fn new(metrics: Metrics) -> Self {
        Shared {
            metrics,
            ..Shared::default()
        }
    }

    /// The lifecycle hooks registered so far, in registration order.
    pub fn lifecycles(&self) -> Vec<Arc<dyn Lifecycle>> {
        self.lifecycles
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Register a lifecycle hook.
    pub fn add_lifecycle(&self, hook: Arc<dyn Lifecycle>) {
        if let Ok(mut l) = self.lifecycles.lock() {
            l.push(hook);
        }
    }

    /// Per-instance state of type `T`, created on first use; every block of this instance sees
    /// the same value (for plugins whose settings are per process, like `reload`).
    pub fn state<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        let mut map = match self.state.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let entry = map
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()) as Arc<dyn Any + Send + Sync>)
            .clone();
        match entry.downcast::<T>() {
            Ok(t) => t,
            // The map is keyed by TypeId, so the downcast cannot fail; keep a fresh value if
            // it somehow did rather than panicking.
            Err(_) => Arc::new(T::default()),
        }
    }
}

/// The context of one setup call: the directive's tokens (through [`Deref`] to [`Dispenser`])
/// and the block and instance it configures.
pub struct Setup<'a> {
    dispenser: Dispenser,
    block: &'a mut BlockSettings,
    shared: &'a Shared,
}

impl<'a> Setup<'a> {
    /// A setup context (used by the server and the test kit).
    pub fn new(dispenser: Dispenser, block: &'a mut BlockSettings, shared: &'a Shared) -> Self {
        Setup {
            dispenser,
            block,
            shared,
        }
    }

    /// The block's keys (zones with transport and port).
    pub fn zones(&self) -> &[ZoneAddr] {
        &self.block.zones
    }

    /// The block's zone names (`example.org.`), in key order: the default zones of most plugins.
    pub fn zone_names(&self) -> Vec<String> {
        self.block.zones.iter().map(|z| z.zone.clone()).collect()
    }

    /// Add a handler to the block's chain. Setup runs in `plugin.cfg` order, so handlers land in
    /// chain order.
    pub fn add_plugin(&mut self, plugin: Arc<dyn Plugin>) {
        self.block.plugins.push(plugin);
    }

    /// Replace the block's listen addresses (what `bind` does).
    pub fn set_listen_hosts(&mut self, hosts: Vec<String>) {
        self.block.listen_hosts = hosts;
        self.block.bound = true;
    }

    /// The block's listen addresses so far (empty = all).
    pub fn listen_hosts(&self) -> &[String] {
        &self.block.listen_hosts
    }

    /// Log stack traces of recovered panics for this block.
    pub fn set_stacktrace(&mut self, on: bool) {
        self.block.stacktrace = on;
    }

    /// Turn off panic recovery for this block.
    pub fn set_debug(&mut self, on: bool) {
        self.block.debug = on;
    }

    /// Set the block's connection timeouts and limits (what `timeouts` does).
    pub fn set_timeouts(&mut self, timeouts: ConnTimeouts) {
        self.block.timeouts = timeouts;
    }

    /// Cap the EDNS UDP size of the block's requests on the fast path (what `bufsize` does).
    pub fn set_udp_size_cap(&mut self, size: u16) {
        self.block.udp_size_cap = Some(size);
    }

    /// Leave a value of type `T` for the plugins set up after this one in the same block
    /// (replacing an earlier value of that type).
    pub fn set_block_state<T: Any + Send + Sync>(&mut self, value: T) {
        self.block.state.insert(
            TypeId::of::<T>(),
            Arc::new(value) as Arc<dyn Any + Send + Sync>,
        );
    }

    /// The value of type `T` an earlier plugin of this block left, if any.
    pub fn block_state<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.block
            .state
            .get(&TypeId::of::<T>())?
            .clone()
            .downcast::<T>()
            .ok()
    }

    /// Publish a handle that other plugins of this block find under `plugin`, this plugin's
    /// directive name (see [`Handles`]).
    pub fn publish_handle<T: Any + Send + Sync>(&self, plugin: &str, handle: T) {
        self.block.handles.publish(plugin, handle);
    }

    /// The block's handles, to keep and look up once every plugin of the block is set up (at
    /// startup or at the first query).
    pub fn handles(&self) -> Handles {
        self.block.handles.clone()
    }

    /// The block's settings as set so far.
    pub fn block(&self) -> &BlockSettings {
        self.block
    }

    /// The process-wide metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The HTTP routes of this instance.
    pub fn http(&self) -> &HttpRegistry {
        &self.shared.http
    }

    /// Register lifecycle hooks (startup, shutdown, restart).
    pub fn add_lifecycle(&self, hook: Arc<dyn Lifecycle>) {
        self.shared.add_lifecycle(hook);
    }

    /// Report this plugin's readiness to `ready`.
    pub fn add_readiness(&self, name: &str, r: Arc<dyn Readiness>) {
        self.shared.readiness.add(name, r);
    }

    /// The instance shared by every block.
    pub fn shared(&self) -> &Shared {
        self.shared
    }
}

impl Deref for Setup<'_> {
    type Target = Dispenser;
    fn deref(&self) -> &Dispenser {
        &self.dispenser
    }
}

impl DerefMut for Setup<'_> {
    fn deref_mut(&mut self) -> &mut Dispenser {
        &mut self.dispenser
    }
}

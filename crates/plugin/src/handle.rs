//! Typed handles: how a plugin reaches another plugin of the same server block without
//! importing its crate (CoreDNS's `dnsserver.GetConfig(c).Handler(name)` and an interface
//! assertion).
//!
//! The plugin that offers something publishes it in setup ([`Setup::publish_handle`], keyed by
//! its directive name); the plugin that uses it keeps the block's [`Handles`] from its own
//! setup ([`Setup::handles`]) and looks the handle up when it first needs it. Setup runs in
//! chain order, so a plugin early in the chain (autopath) finds a later one (kubernetes) only
//! after every setup of the block ran: at startup or at its first query, not during its setup.
//! The server records which directives the block has once its setups ran
//! ([`Handles::has_plugin`]), so a user can tell "no such plugin in the block" from "that plugin
//! offers no such handle", as CoreDNS's messages do.
//!
//! The interfaces plugins offer each other are defined here, in the API: [`AutoPather`]
//! (kubernetes for autopath) and [`Externaler`] (kubernetes for k8s_external).
//!
//! [`Setup::publish_handle`]: crate::Setup::publish_handle
//! [`Setup::handles`]: crate::Setup::handles

use std::any::Any;
use std::sync::{Arc, Mutex, OnceLock};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Record;

use crate::Request;

/// The handles the plugins of one server block published, shared by every plugin of the block.
#[derive(Clone, Default)]
pub struct Handles {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    published: Mutex<Vec<(String, Arc<dyn Any + Send + Sync>)>>,
    plugins: OnceLock<Vec<&'static str>>,
}

impl Handles {
    /// Publish `handle` as offered by `plugin` (a directive name). A plugin may publish several
    /// handles of different types.
    pub fn publish<T: Any + Send + Sync>(&self, plugin: &str, handle: T) {
        let mut p = match self.inner.published.lock() {
            Ok(p) => p,
            Err(e) => e.into_inner(),
        };
        p.push((plugin.to_string(), Arc::new(handle)));
    }

    /// The handle of type `T` that `plugin` published, if any (the last one, when several of
    /// the same type were).
    pub fn get<T: Any + Send + Sync + Clone>(&self, plugin: &str) -> Option<T> {
        let p = match self.inner.published.lock() {
            Ok(p) => p,
            Err(e) => e.into_inner(),
        };
        p.iter()
            .rev()
            .filter(|(name, _)| name == plugin)
            .find_map(|(_, h)| h.downcast_ref::<T>().cloned())
    }

    /// Record the directives of the block, in chain order (the server does this once the
    /// block's setups ran; later calls are ignored).
    pub fn set_plugins(&self, names: Vec<&'static str>) {
        let _ = self.inner.plugins.set(names);
    }

    /// Whether the block has a handler named `plugin`. `None` until the server recorded the
    /// block's directives (during setup).
    pub fn has_plugin(&self, plugin: &str) -> Option<bool> {
        self.inner
            .plugins
            .get()
            .map(|names| names.contains(&plugin))
    }
}

impl std::fmt::Debug for Handles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = match self.inner.published.lock() {
            Ok(p) => p.iter().map(|(n, _)| n.clone()).collect(),
            Err(_) => Vec::new(),
        };
        f.debug_struct("Handles")
            .field("published_by", &names)
            .field("plugins", &self.inner.plugins.get())
            .finish()
    }
}

/// A plugin that knows the search path of the client that sent a query (CoreDNS's
/// `autopath.AutoPather`; kubernetes offers it for clients that are pods it knows).
pub trait AutoPather: Send + Sync {
    /// The search path to try for this request's client, first domain first, each a
    /// fully-qualified name; the last element is `""`, the name as asked. `None` when this
    /// client's path is not known (autopath then passes the query on unchanged).
    fn auto_path(&self, req: &Request) -> Option<Vec<String>>;
}

/// One record a plugin hands to another to answer from (CoreDNS's `msg.Service` as kubernetes
/// gives it to k8s_external): an address or a host name, with what SRV and TXT answers need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceRecord {
    /// An IP address, or a host name (for a CNAME or an SRV target).
    pub host: String,
    /// The port, for SRV answers (0 when the record has none).
    pub port: u16,
    /// SRV priority.
    pub priority: u16,
    /// SRV weight.
    pub weight: u16,
    /// TXT text, when the record is one.
    pub text: String,
    /// Time to live in seconds.
    pub ttl: u32,
    /// The record's path in reversed-label form (`/c/local/cluster/svc/ns/name/...`): the name
    /// an SRV target is built from.
    pub key: String,
    /// How many leading labels of the name built from `key` to drop for an SRV target.
    pub target_strip: usize,
}

/// A plugin that serves services under another zone (CoreDNS's `k8s_external.Externaler`;
/// kubernetes offers it for services with external addresses).
pub trait Externaler: Send + Sync {
    /// The records for `req`'s question under `zone` (one of the asking plugin's zones, with a
    /// trailing dot), and the rcode to answer with when there are none. `headless` asks for
    /// headless services' endpoints too.
    fn external(
        &self,
        req: &Request,
        zone: &str,
        headless: bool,
    ) -> (Vec<ServiceRecord>, ResponseCode);

    /// The addresses of the DNS service itself under `zone`, for the zone's NS glue.
    fn external_address(&self, req: &Request, zone: &str, headless: bool) -> Vec<Record>;

    /// The zone's SOA serial: when the data behind it last changed (Unix seconds).
    fn external_serial(&self, zone: &str) -> u32;
}

/// Why a [`BlockHandle`] found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The block has no handler of that name (CoreDNS: `Handler(name)` is nil).
    NotInBlock,
    /// The block has the plugin, but it published no handle of that type (CoreDNS: the
    /// interface assertion fails).
    NoHandle,
}

/// A handle of type `T` that the plugin `plugin` of the block publishes, looked up once every
/// setup of the block ran: at startup ([`BlockHandle::resolve`]), or else at first use
/// ([`BlockHandle::get`]). The outcome is kept, so a query pays for no lookup.
pub struct BlockHandle<T> {
    handles: Handles,
    plugin: String,
    found: OnceLock<Option<T>>,
}

impl<T: Any + Send + Sync + Clone> BlockHandle<T> {
    /// A handle of `plugin` to be found among `handles` (a plugin keeps
    /// [`Setup::handles`](crate::Setup::handles) from its setup).
    pub fn new(handles: Handles, plugin: impl Into<String>) -> Self {
        BlockHandle {
            handles,
            plugin: plugin.into(),
            found: OnceLock::new(),
        }
    }

    /// The plugin whose handle this is.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// Look the handle up now, without keeping the outcome.
    pub fn lookup(&self) -> Result<T, Missing> {
        if let Some(h) = self.handles.get::<T>(&self.plugin) {
            return Ok(h);
        }
        match self.handles.has_plugin(&self.plugin) {
            Some(true) => Err(Missing::NoHandle),
            _ => Err(Missing::NotInBlock),
        }
    }

    /// Look the handle up and keep the outcome (call it from a startup hook); the caller
    /// decides which [`Missing`] is an error for it.
    pub fn resolve(&self) -> Result<(), Missing> {
        let found = self.lookup();
        let _ = self.found.set(found.clone().ok());
        found.map(|_| ())
    }

    /// The handle, looked up at the first call unless [`BlockHandle::resolve`] ran.
    pub fn get(&self) -> Option<&T> {
        self.found.get_or_init(|| self.lookup().ok()).as_ref()
    }
}

impl<T> std::fmt::Debug for BlockHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockHandle")
            .field("plugin", &self.plugin)
            .field("found", &self.found.get().map(Option::is_some))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct A(u32);
    #[derive(Clone, Debug, PartialEq)]
    struct B(&'static str);

    #[test]
    fn handles_are_found_by_plugin_and_type() {
        let h = Handles::default();
        let seen_by_other = h.clone();
        h.publish("kubernetes", A(1));
        h.publish("kubernetes", B("x"));
        h.publish("hosts", A(2));
        assert_eq!(seen_by_other.get::<A>("kubernetes"), Some(A(1)));
        assert_eq!(seen_by_other.get::<B>("kubernetes"), Some(B("x")));
        assert_eq!(seen_by_other.get::<A>("hosts"), Some(A(2)));
        assert_eq!(seen_by_other.get::<B>("hosts"), None);
        assert_eq!(seen_by_other.get::<A>("file"), None);
    }

    #[test]
    fn block_plugins_are_known_only_after_setup() {
        let h = Handles::default();
        assert_eq!(h.has_plugin("kubernetes"), None);
        h.set_plugins(vec!["autopath", "kubernetes"]);
        h.set_plugins(vec!["other"]);
        assert_eq!(h.has_plugin("kubernetes"), Some(true));
        assert_eq!(h.has_plugin("hosts"), Some(false));
    }

    #[test]
    fn trait_objects_are_handles() {
        struct K;
        impl AutoPather for K {
            fn auto_path(&self, _req: &Request) -> Option<Vec<String>> {
                Some(vec![String::new()])
            }
        }
        let h = Handles::default();
        h.publish::<Arc<dyn AutoPather>>("kubernetes", Arc::new(K));
        assert!(h.get::<Arc<dyn AutoPather>>("kubernetes").is_some());
        assert!(h.get::<Arc<dyn Externaler>>("kubernetes").is_none());
    }

    #[test]
    fn block_handles_tell_a_missing_plugin_from_a_missing_handle() {
        let h = Handles::default();
        let k = BlockHandle::<A>::new(h.clone(), "kubernetes");
        let f = BlockHandle::<A>::new(h.clone(), "file");
        let x = BlockHandle::<A>::new(h.clone(), "other");
        h.publish("kubernetes", A(7));
        h.set_plugins(vec!["kubernetes", "file"]);
        assert_eq!(k.resolve(), Ok(()));
        assert_eq!(k.get(), Some(&A(7)));
        assert_eq!(f.resolve(), Err(Missing::NoHandle));
        assert_eq!(x.resolve(), Err(Missing::NotInBlock));
        assert_eq!(x.get(), None);
        h.publish("other", A(1));
        assert_eq!(x.get(), None, "the outcome of resolve is kept");
    }
}

//! What a plugin may know of, and ask from, the process around its instance: the Corefile the
//! instance was loaded from, a way to reload it (`reload`), the addresses its listeners actually
//! bound (`loop` probes its own server), and the readiness of plugins (`ready`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::watch;

/// A Corefile as the loader read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorefileInput {
    /// The name tokens and errors carry (`Corefile`, the `-conf` path, `stdin`).
    pub filename: String,
    /// The text.
    pub text: Vec<u8>,
}

/// The binary's side of a reload: read the Corefile again the way the running one was read, and
/// replace the running instance with one built from a given text.
#[async_trait]
pub trait Control: Send + Sync {
    /// Read the Corefile again through the loader that found the running one. An error means
    /// it could not be read now (a reload checker skips the tick).
    fn load(&self) -> Result<CorefileInput, String>;

    /// Build an instance from `input` and swap it in; the error is the reason it was not (the
    /// old instance then keeps serving). Logs `Reloading` / `Reloading complete` /
    /// `Restart failed: ...` as CoreDNS does.
    async fn restart(&self, input: CorefileInput) -> Result<(), String>;
}

/// A plugin that can tell whether it is ready to serve (what `ready` reports).
pub trait Readiness: Send + Sync {
    /// Whether the plugin is ready.
    fn ready(&self) -> bool;
}

/// One bound listener of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    /// The host as configured ("" for all addresses).
    pub host: String,
    /// The port as configured (0 when the Corefile asked the kernel to pick).
    pub port: u16,
    /// The address actually bound.
    pub bound: SocketAddr,
}

/// The DNS listeners of an instance once they are bound. Startup hooks run before listeners
/// open (as in CoreDNS), so a plugin that needs its own address waits for it here.
#[derive(Clone)]
pub struct Listening {
    tx: Arc<watch::Sender<Option<Bound>>>,
}

type Bound = Arc<Vec<ListenAddr>>;

impl Default for Listening {
    fn default() -> Self {
        Listening {
            tx: Arc::new(watch::channel(None).0),
        }
    }
}

impl std::fmt::Debug for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listening")
            .field("bound", &*self.tx.borrow())
            .finish()
    }
}

impl Listening {
    /// Record the bound listeners (the server does this once they serve).
    pub fn set(&self, addrs: Vec<ListenAddr>) {
        self.tx.send_replace(Some(Arc::new(addrs)));
    }

    /// The bound listeners, or `None` before they are bound.
    pub fn get(&self) -> Option<Bound> {
        self.tx.borrow().clone()
    }

    /// Wait until the listeners are bound.
    pub async fn wait(&self) -> Arc<Vec<ListenAddr>> {
        let mut rx = self.tx.subscribe();
        loop {
            if let Some(v) = rx.borrow_and_update().clone() {
                return v;
            }
            if rx.changed().await.is_err() {
                return Arc::new(Vec::new());
            }
        }
    }

    /// The bound address of the listener configured as `host` and `port`.
    pub fn lookup(&self, host: &str, port: u16) -> Option<SocketAddr> {
        self.get()?
            .iter()
            .find(|l| l.host == host && l.port == port)
            .map(|l| l.bound)
    }
}

/// Plugins that report readiness, by plugin name.
#[derive(Default, Clone)]
pub struct ReadinessSet {
    inner: Arc<Mutex<Vec<Reporter>>>,
}

type Reporter = (String, Arc<dyn Readiness>);

impl std::fmt::Debug for ReadinessSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.all().iter().map(|(n, _)| n))
            .finish()
    }
}

impl ReadinessSet {
    /// Add a plugin.
    pub fn add(&self, name: &str, r: Arc<dyn Readiness>) {
        let mut v = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        v.push((name.to_string(), r));
    }

    /// Every plugin that reports readiness, in registration order.
    pub fn all(&self) -> Vec<Reporter> {
        match self.inner.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

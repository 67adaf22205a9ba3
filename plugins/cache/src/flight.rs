//! Single-flight for misses: while one request for a key is being served by the rest of the
//! chain, identical requests wait for its outcome instead of sending their own. The table is
//! bounded; past the bound, requests go their own way. A leader that is dropped before it
//! finishes releases its followers, which then ask for themselves.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use ferrodns_plugin::{PluginError, Reply};

/// Most keys in flight at once that followers can join.
pub const MAX_FLIGHTS: usize = 4096;

/// What the leader got.
pub type Outcome = Arc<Result<Reply, PluginError>>;

/// Who identifies a flight: the cache key plus the bits that change the reply to the client
/// (AD, which decides whether AD is cleared) and the name (so that a hash collision never
/// shares a reply).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlightKey {
    /// The cache key.
    pub key: u64,
    /// The client's AD bit.
    pub ad: bool,
    /// The lowercased question name in wire form.
    pub name: Box<[u8]>,
}

/// The table of flights.
#[derive(Default)]
pub struct Flights {
    map: Mutex<foldhash::HashMap<FlightKey, watch::Receiver<Option<Outcome>>>>,
}

/// The role a request takes.
pub enum Role<'a> {
    /// Serve it and publish the outcome through the guard.
    Leader(Leader<'a>),
    /// Wait for the leader.
    Follower(watch::Receiver<Option<Outcome>>),
    /// The table is full: serve it alone.
    Alone,
}

/// The leader's handle; dropping it ends the flight.
pub struct Leader<'a> {
    flights: &'a Flights,
    key: FlightKey,
    tx: watch::Sender<Option<Outcome>>,
}

impl Leader<'_> {
    /// Publish the outcome to the followers.
    pub fn publish(&self, outcome: Outcome) {
        let _ = self.tx.send(Some(outcome));
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut map = match self.flights.map.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        map.remove(&self.key);
    }
}

impl Flights {
    /// Join the flight for `key` or start one.
    pub fn join(&self, key: FlightKey) -> Role<'_> {
        let mut map = match self.map.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(rx) = map.get(&key) {
            return Role::Follower(rx.clone());
        }
        if map.len() >= MAX_FLIGHTS {
            return Role::Alone;
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.clone(), rx);
        Role::Leader(Leader {
            flights: self,
            key,
            tx,
        })
    }

    /// Keys in flight now.
    pub fn len(&self) -> usize {
        match self.map.lock() {
            Ok(g) => g.len(),
            Err(p) => p.into_inner().len(),
        }
    }
}

/// Wait for the leader's outcome; `None` when it went away without one.
pub async fn wait(mut rx: watch::Receiver<Option<Outcome>>) -> Option<Outcome> {
    loop {
        if let Some(o) = rx.borrow_and_update().clone() {
            return Some(o);
        }
        if rx.changed().await.is_err() {
            return rx.borrow().clone();
        }
    }
}

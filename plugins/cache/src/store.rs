//! A bounded map of entries in 256 shards, as CoreDNS's `pkg/cache`: each shard holds at most
//! max(capacity / 256, 4) entries and adding to a full shard evicts one entry picked at random.
//! Expired entries stay until evicted or replaced. Every stored entry holds its cost in the
//! process's memory budget (see [`crate::budget`]).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use ferrodns_plugin::budget::{self, Budget};

use crate::budget::{MAX_EVICTIONS, cost};
use crate::entry::Entry;

const SHARDS: usize = 256;

/// Keys are already FNV hashes; within a shard their low 8 bits are all the same, so they are
/// only stirred (no SipHash on the hot path).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, k: u64) {
        self.0 = k.rotate_right(8).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Map = HashMap<u64, Arc<Entry>, BuildHasherDefault<KeyHasher>>;

struct Shard {
    items: RwLock<Map>,
}

/// One of the two caches.
pub struct Store {
    shards: Box<[Shard]>,
    shard_cap: usize,
    len: AtomicUsize,
    seed: AtomicU64,
    budget: &'static Budget,
}

impl Store {
    /// A store for `capacity` entries, within the process's budget.
    pub fn new(capacity: usize) -> Self {
        Store::with_budget(capacity, budget::global())
    }

    /// A store for `capacity` entries, within `budget`.
    pub fn with_budget(capacity: usize, budget: &'static Budget) -> Self {
        let shard_cap = (capacity / SHARDS).max(4);
        let shards = (0..SHARDS)
            .map(|_| Shard {
                items: RwLock::new(Map::default()),
            })
            .collect();
        Store {
            shards,
            shard_cap,
            len: AtomicUsize::new(0),
            seed: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
            budget,
        }
    }

    fn shard(&self, key: u64) -> &Shard {
        &self.shards[(key as usize) & (SHARDS - 1)]
    }

    /// The entry under `key`.
    pub fn get(&self, key: u64) -> Option<Arc<Entry>> {
        let s = self.shard(key);
        let map = match s.items.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        map.get(&key).cloned()
    }

    /// Add or replace; true when another entry was evicted to make room.
    pub fn add(&self, key: u64, e: Arc<Entry>) -> bool {
        let s = self.shard(key);
        let mut map = match s.items.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // The entry it replaces gives its bytes back first.
        if let Some(old) = map.remove(&key) {
            self.budget.release_cache(cost(&old));
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        let mut evicted = false;
        if map.len() >= self.shard_cap {
            evicted |= self.evict_random(&mut map);
        }
        // Past the budget's cache share: evict as a full shard does, else do not store.
        let bytes = cost(&e);
        let mut tries = 0;
        while !self.budget.try_cache(bytes) {
            if tries == MAX_EVICTIONS || !self.evict_random(&mut map) {
                self.budget.count_skipped();
                return evicted;
            }
            evicted = true;
            tries += 1;
        }
        map.insert(key, e);
        self.len.fetch_add(1, Ordering::Relaxed);
        evicted
    }

    /// Every entry held, with its key: a copy of the shards' contents taken one shard at a
    /// time (for the hand-off export; it does not block the other shards meanwhile).
    pub fn snapshot(&self) -> Vec<(u64, Arc<Entry>)> {
        let mut out = Vec::with_capacity(self.len());
        for s in self.shards.iter() {
            let map = match s.items.read() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            out.extend(map.iter().map(|(k, e)| (*k, e.clone())));
        }
        out
    }

    /// Evict an entry picked at random among the first 64 of the shard; false when empty.
    fn evict_random(&self, map: &mut Map) -> bool {
        let n = map.len().min(64);
        if n == 0 {
            return false;
        }
        let pick = (self.random() % n as u64) as usize;
        let Some(victim) = map.keys().nth(pick).copied() else {
            return false;
        };
        if let Some(old) = map.remove(&victim) {
            self.budget.release_cache(cost(&old));
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        true
    }

    /// Remove the entry under `key`.
    pub fn remove(&self, key: u64) {
        let s = self.shard(key);
        let mut map = match s.items.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(old) = map.remove(&key) {
            self.budget.release_cache(cost(&old));
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries it can hold (a multiple of 256, at least 1024).
    pub fn capacity(&self) -> usize {
        self.shard_cap * SHARDS
    }

    /// A cheap pseudo-random number (splitmix64 over a shared counter).
    fn random(&self) -> u64 {
        let mut z = self
            .seed
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Drop for Store {
    /// A store that goes (its cache was reloaded away) gives its entries' bytes back.
    fn drop(&mut self) {
        let budget = self.budget;
        for s in self.shards.iter_mut() {
            let map = match s.items.get_mut() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            for e in map.values() {
                budget.release_cache(cost(e));
            }
        }
    }
}

//! # cache
//!
//! CoreDNS's `cache` plugin: replies are kept in wire format (the reply's bytes with the offsets
//! of their TTLs) in two bounded caches, success and denial, and hits are answered by patching a
//! copy: the client's ID, header bits and question name, the remaining TTL. Plain UDP hits are
//! answered from the server's synchronous fast hook without decoding anything. See README.md.

pub mod budget;
mod classify;
pub mod config;
pub mod entry;
mod fast;
mod flight;
mod handler;
pub mod handoff;
pub mod metrics;
mod setup;
pub mod store;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};

use ferrodns_plugin::Descriptor;
use ferrodns_plugin::proto::rr::Name;
use ferrodns_plugin::proto::serialize::binary::BinEncodable;

pub use config::Config;
use entry::Kind;
use metrics::{CacheMetrics, Families};
use store::Store;

/// The directive name.
pub const NAME: &str = "cache";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// A zone list as lowercased wire names.
fn wire_zones(zones: &[String]) -> Vec<Vec<u8>> {
    zones
        .iter()
        .filter_map(|z| Name::from_ascii(z).ok())
        .filter_map(|n| n.to_lowercase().to_bytes().ok())
        .collect()
}

/// One `cache` instance (one server block).
pub struct Cache {
    cfg: Config,
    zones: Vec<Vec<u8>>,
    pexcept: Vec<Vec<u8>>,
    nexcept: Vec<Vec<u8>>,
    pcache: Store,
    ncache: Store,
    families: Families,
    zones_label: String,
    servers: RwLock<Vec<(Arc<str>, Arc<CacheMetrics>)>>,
    flights: flight::Flights,
    /// Entries were handed over by a predecessor: a listener's series, when made, start with
    /// the entry counts instead of waiting for the next insert.
    handed_off: AtomicBool,
    /// This cache itself, for the background refreshes it starts.
    me: Weak<Cache>,
}

impl Cache {
    /// A cache with this configuration, counting into `families`.
    pub fn new(cfg: Config, families: Families) -> Arc<Self> {
        Arc::new_cyclic(|me| Cache {
            zones: wire_zones(&cfg.zones),
            pexcept: wire_zones(&cfg.pexcept),
            nexcept: wire_zones(&cfg.nexcept),
            pcache: Store::new(cfg.pcap),
            ncache: Store::new(cfg.ncap),
            zones_label: cfg.zones.join(","),
            families,
            cfg,
            servers: RwLock::new(Vec::new()),
            flights: flight::Flights::default(),
            handed_off: AtomicBool::new(false),
            me: me.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Entries in the success cache.
    pub fn success_len(&self) -> usize {
        self.pcache.len()
    }

    /// Entries in the denial cache.
    pub fn denial_len(&self) -> usize {
        self.ncache.len()
    }

    /// The most entries of the success and denial caches.
    pub fn capacities(&self) -> (usize, usize) {
        (self.pcache.capacity(), self.ncache.capacity())
    }

    /// Keys whose miss is being served now (single-flight table).
    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }

    /// The metrics of `server`, created on first use.
    fn metrics_for(&self, server: &Arc<str>) -> Arc<CacheMetrics> {
        {
            let list = match self.servers.read() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if let Some((_, m)) = list.iter().find(|(s, _)| s == server) {
                return m.clone();
            }
        }
        let mut list = match self.servers.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some((_, m)) = list.iter().find(|(s, _)| s == server) {
            return m.clone();
        }
        let m = Arc::new(self.families.for_server(server, &self.zones_label, ""));
        if self.handed_off.load(Ordering::Relaxed) {
            m.entries_success.set(self.pcache.len() as i64);
            m.entries_denial.set(self.ncache.len() as i64);
        }
        list.push((server.clone(), m.clone()));
        m
    }

    /// The metrics of a server label the slow path has already seen, without allocating (for
    /// the fast path; an unseen label takes the slow path once, which adds it).
    fn known_metrics(&self, server: &str) -> Option<Arc<CacheMetrics>> {
        let list = match self.servers.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        list.iter()
            .find(|(s, _)| &**s == server)
            .map(|(_, m)| m.clone())
    }

    /// CoreDNS's `getIfNotStale` without its counters: the usable entry for a question and the
    /// cache it counts as a hit of.
    fn lookup(
        &self,
        key: u64,
        qname: &[u8],
        qtype: u16,
        qclass: u16,
        now: tokio::time::Instant,
    ) -> Option<(Arc<entry::Entry>, Kind)> {
        let stale_on = !self.cfg.stale_up_to.is_zero();
        let up_to = self.cfg.stale_up_to.as_secs() as i64;
        let usable = |e: &entry::Entry| self.servable(e, now);
        if self.cfg.prefer_positive
            && stale_on
            && let Some(e) = self.pcache.get(key)
            && let Some(a) = e.answering_entry(qname, qtype, qclass)
        {
            let t = a.ttl(now);
            if t > 0 || -t < up_to {
                return Some((a, Kind::Success));
            }
        }
        if !self.ncache.is_empty()
            && let Some(e) = self.ncache.get(key)
            && e.matches(qname, qtype, qclass)
            && usable(&e)
        {
            if e.rcode == 2
                && let Some(p) = self.pcache.get(key)
                && p.matches(qname, qtype, qclass)
                && usable(&p)
            {
                return Some((p, Kind::Success));
            }
            return Some((e, Kind::Denial));
        }
        if let Some(e) = self.pcache.get(key)
            && e.matches(qname, qtype, qclass)
            && usable(&e)
        {
            return Some((e, Kind::Success));
        }
        None
    }

    /// Whether an entry may answer at `now`: fresh, or stale within the `serve_stale` window.
    fn servable(&self, e: &entry::Entry, now: tokio::time::Instant) -> bool {
        let t = e.ttl(now);
        t > 0 || (!self.cfg.stale_up_to.is_zero() && -t < self.cfg.stale_up_to.as_secs() as i64)
    }

    /// Count a lookup's outcome.
    fn count_lookup(m: &CacheMetrics, hit: Option<Kind>) {
        m.requests.inc();
        match hit {
            Some(Kind::Success) => {
                m.hits_success.inc();
            }
            Some(Kind::Denial) => {
                m.hits_denial.inc();
            }
            None => {
                m.misses.inc();
            }
        }
    }

    /// The TTL a hit is served with.
    fn hit_ttl(&self, e: &entry::Entry, ttl: i64) -> u32 {
        let stale = ttl <= 0;
        if stale && !self.cfg.stale_ttl.is_zero() {
            return self.cfg.stale_ttl.as_secs() as u32;
        }
        if self.cfg.keepttl {
            return e.orig_ttl;
        }
        ttl.max(0) as u32
    }

    /// Whether a fresh hit should start a prefetch (counting the hit for it).
    fn should_prefetch(&self, e: &entry::Entry, now: tokio::time::Instant) -> bool {
        if self.cfg.prefetch == 0 {
            return false;
        }
        e.update_freq(self.cfg.duration, now);
        let threshold = (self.cfg.percentage as f64 / 100.0 * f64::from(e.orig_ttl)).ceil() as i64;
        e.hits() >= self.cfg.prefetch && e.ttl(now) <= threshold
    }
}

//! The process's memory budget: one byte limit (or none) that bounds the cache entries and the
//! queries in flight, so that a flood of unique names cannot grow the process past its memory
//! limit (kubernetes/dns#438: an OOM-killed node-local-dns skips its teardown and leaves the
//! node's DNS black-holed).
//!
//! The limit comes from two sources and the smaller one wins: the process's `-memory` flag
//! (`auto`, the default, is [`AUTO_PERCENT`] of the cgroup memory limit, see
//! [`cgroup_limit`]) and the Corefile's `budget` directive. It is split into shares:
//!
//! - [`CACHE_PERCENT`] for cache entries, counted as each entry's wire bytes plus a fixed
//!   per-entry overhead (`cache` measures its own); an insert past the share evicts, then is
//!   skipped;
//! - [`INFLIGHT_PERCENT`] for queries in flight on the server's slow path (UDP queries not
//!   answered by the fast path, TCP queries), each counted as [`QUERY_COST`] bytes; past the
//!   share a query is answered REFUSED without running the chain (what CoreDNS's `forward` does
//!   past `max_concurrent`);
//! - the rest is headroom for the process's base: runtime, sockets, buffers, metrics.
//!
//! Without a limit nothing is refused or skipped; the counters still count, for the metrics.
//! Every operation on the query path is a few atomic operations on [`global`]: no lock.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::Metrics;

/// Share of the limit for cache entries, in percent.
pub const CACHE_PERCENT: u64 = 50;
/// Share of the limit for queries in flight, in percent.
pub const INFLIGHT_PERCENT: u64 = 25;
/// What one query in flight is counted as, in bytes: its task, its buffers and an upstream
/// exchange (`forward`). Measured at 8.7 KiB each (debug build) with 1000 queries held by a
/// silent upstream (`crates/ferrodns/tests/query_cost.rs`); counted as 16 KiB, leaving room
/// for larger replies, TCP connections and allocator slack.
pub const QUERY_COST: u64 = 16 * 1024;
/// What `-memory auto` takes of the cgroup memory limit, in percent: the cgroup also counts
/// page cache and kernel memory of the process, and the allocator returns freed memory late,
/// so the budget stays well below the limit.
pub const AUTO_PERCENT: u64 = 75;

const NONE: u64 = u64::MAX;

/// The budget's limits and counters. There is one per process, [`global`]; tests may make
/// their own.
#[derive(Debug)]
pub struct Budget {
    process: AtomicU64,
    corefile: AtomicU64,
    cache_max: AtomicU64,
    inflight_max: AtomicU64,
    limit: Gauge,
    cache_limit: Gauge,
    cache_bytes: Gauge,
    inflight_limit: Gauge,
    inflight: Gauge,
    refused: Counter,
    skipped: Counter,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new()
    }
}

/// The process's budget.
pub fn global() -> &'static Budget {
    static GLOBAL: OnceLock<Budget> = OnceLock::new();
    GLOBAL.get_or_init(Budget::new)
}

/// A query's claim on the in-flight share, given back on drop.
#[derive(Debug)]
#[must_use = "the permit is given back when dropped"]
pub struct QueryPermit<'a> {
    budget: &'a Budget,
}

impl Drop for QueryPermit<'_> {
    fn drop(&mut self) {
        self.budget.inflight.dec();
    }
}

impl Budget {
    /// A budget without a limit.
    pub fn new() -> Budget {
        Budget {
            process: AtomicU64::new(NONE),
            corefile: AtomicU64::new(NONE),
            cache_max: AtomicU64::new(NONE),
            inflight_max: AtomicU64::new(NONE),
            limit: Gauge::default(),
            cache_limit: Gauge::default(),
            cache_bytes: Gauge::default(),
            inflight_limit: Gauge::default(),
            inflight: Gauge::default(),
            refused: Counter::default(),
            skipped: Counter::default(),
        }
    }

    /// Set the process's limit (the `-memory` flag); `None` is no limit from this source.
    pub fn set_process_limit(&self, bytes: Option<u64>) {
        self.process.store(bytes.unwrap_or(NONE), Ordering::Relaxed);
        self.apply();
    }

    /// Set the Corefile's limit (the `budget` directive of the running instance); `None` is no
    /// limit from this source.
    pub fn set_corefile_limit(&self, bytes: Option<u64>) {
        self.corefile
            .store(bytes.unwrap_or(NONE), Ordering::Relaxed);
        self.apply();
    }

    fn apply(&self) {
        let limit = self
            .process
            .load(Ordering::Relaxed)
            .min(self.corefile.load(Ordering::Relaxed));
        let (cache, inflight) = if limit == NONE {
            (NONE, NONE)
        } else {
            let cache = share(limit, CACHE_PERCENT);
            let inflight = (share(limit, INFLIGHT_PERCENT) / QUERY_COST).max(1);
            (cache, inflight)
        };
        self.cache_max.store(cache, Ordering::Relaxed);
        self.inflight_max.store(inflight, Ordering::Relaxed);
        let gauge = |v: u64| if v == NONE { 0 } else { clamp(v) };
        self.limit.set(gauge(limit));
        self.cache_limit.set(gauge(cache));
        self.inflight_limit.set(gauge(inflight));
    }

    /// The limit in force: the smaller of the process's and the Corefile's.
    pub fn limit(&self) -> Option<u64> {
        let l = self
            .process
            .load(Ordering::Relaxed)
            .min(self.corefile.load(Ordering::Relaxed));
        (l != NONE).then_some(l)
    }

    /// The cache share in bytes, if there is a limit.
    pub fn cache_limit(&self) -> Option<u64> {
        let l = self.cache_max.load(Ordering::Relaxed);
        (l != NONE).then_some(l)
    }

    /// The most queries in flight, if there is a limit.
    pub fn inflight_limit(&self) -> Option<u64> {
        let l = self.inflight_max.load(Ordering::Relaxed);
        (l != NONE).then_some(l)
    }

    /// Bytes of cache entries held now.
    pub fn cache_bytes(&self) -> u64 {
        u64::try_from(self.cache_bytes.get()).unwrap_or(0)
    }

    /// Queries in flight now.
    pub fn inflight(&self) -> u64 {
        u64::try_from(self.inflight.get()).unwrap_or(0)
    }

    /// Queries refused so far for want of budget.
    pub fn refused(&self) -> u64 {
        self.refused.get()
    }

    /// Cache inserts skipped so far for want of budget.
    pub fn skipped(&self) -> u64 {
        self.skipped.get()
    }

    /// Claim `bytes` of the cache share for an entry about to be stored: false (and nothing
    /// claimed) when they do not fit. Always true without a limit.
    pub fn try_cache(&self, bytes: u64) -> bool {
        let max = self.cache_max.load(Ordering::Relaxed);
        let bytes_i = clamp(bytes);
        if max == NONE {
            self.cache_bytes.inc_by(bytes_i);
            return true;
        }
        let held = self.cache_bytes.inner();
        let mut cur = held.load(Ordering::Relaxed);
        loop {
            if u64::try_from(cur).unwrap_or(0).saturating_add(bytes) > max {
                return false;
            }
            match held.compare_exchange_weak(
                cur,
                cur.saturating_add(bytes_i),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// Give back what [`Budget::try_cache`] claimed for an entry that is no longer stored.
    pub fn release_cache(&self, bytes: u64) {
        self.cache_bytes.dec_by(clamp(bytes));
    }

    /// Count a cache insert skipped because it did not fit even after evicting.
    pub fn count_skipped(&self) {
        self.skipped.inc();
    }

    /// Claim a place for a query in flight; `None` (counted as refused) when the in-flight
    /// share is used up. Always a permit without a limit.
    pub fn try_query(&self) -> Option<QueryPermit<'_>> {
        let n = self.inflight.inc().saturating_add(1);
        if u64::try_from(n).unwrap_or(0) > self.inflight_max.load(Ordering::Relaxed) {
            self.inflight.dec();
            self.refused.inc();
            return None;
        }
        Some(QueryPermit { budget: self })
    }
}

/// The `budget` directive's limit in one configuration instance, kept in its
/// [`crate::Shared::state`]; the server makes it the Corefile's limit of [`global`] when the
/// instance starts serving (and clears it when a reload brings an instance without one). Over
/// several blocks the smallest wins.
#[derive(Debug)]
pub struct CorefileLimit(AtomicU64);

impl Default for CorefileLimit {
    fn default() -> Self {
        CorefileLimit(AtomicU64::new(NONE))
    }
}

impl CorefileLimit {
    /// Record a block's limit (the smallest one stays).
    pub fn set(&self, bytes: u64) {
        self.0.fetch_min(bytes, Ordering::Relaxed);
    }

    /// The instance's limit, if a block set one.
    pub fn get(&self) -> Option<u64> {
        let v = self.0.load(Ordering::Relaxed);
        (v != NONE).then_some(v)
    }
}

fn share(limit: u64, percent: u64) -> u64 {
    u64::try_from(u128::from(limit) * u128::from(percent) / 100).unwrap_or(u64::MAX)
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Register the budget's metric families (those of [`global`]) on the process registry:
/// `ferrodns_budget_limit_bytes`, `ferrodns_budget_cache_limit_bytes`,
/// `ferrodns_budget_cache_bytes`, `ferrodns_budget_inflight_limit`, `ferrodns_budget_inflight`,
/// `ferrodns_budget_refused_total` and `ferrodns_budget_cache_skipped_total`. Limits show 0
/// when there is none.
pub fn register_metrics(metrics: &Metrics) {
    let b = global();
    metrics.register(
        "ferrodns_budget_limit_bytes",
        "The memory budget in bytes (the smaller of -memory and the Corefile's budget; 0: none).",
        || b.limit.clone(),
    );
    metrics.register(
        "ferrodns_budget_cache_limit_bytes",
        "The budget's share for cache entries in bytes (0: no limit).",
        || b.cache_limit.clone(),
    );
    metrics.register(
        "ferrodns_budget_cache_bytes",
        "Bytes of cache entries held (wire bytes plus a fixed overhead per entry).",
        || b.cache_bytes.clone(),
    );
    metrics.register(
        "ferrodns_budget_inflight_limit",
        "The most queries in flight the budget allows (0: no limit).",
        || b.inflight_limit.clone(),
    );
    metrics.register(
        "ferrodns_budget_inflight",
        "Queries in flight on the server's slow path.",
        || b.inflight.clone(),
    );
    metrics.register(
        "ferrodns_budget_refused",
        "Queries answered REFUSED because the budget's in-flight share was used up.",
        || b.refused.clone(),
    );
    metrics.register(
        "ferrodns_budget_cache_skipped",
        "Cache inserts skipped because the budget's cache share was used up.",
        || b.skipped.clone(),
    );
}

/// A size or budget setting that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// Not a size.
    #[error(
        "invalid size {0:?}: want bytes or a number with a suffix (K, M, G, T, Ki, Mi, Gi, Ti)"
    )]
    Size(String),
}

/// A size: plain bytes, or a number with a decimal (`K`, `M`, `G`, `T`) or binary (`Ki`, `Mi`,
/// `Gi`, `Ti`) suffix, as Kubernetes writes quantities (`64Mi`, `200M`, `1Gi`). A trailing `B`
/// is allowed (`64MiB`).
pub fn parse_size(text: &str) -> Result<u64, BudgetError> {
    let bad = || BudgetError::Size(text.to_string());
    let t = text.trim();
    let t = t.strip_suffix(['B', 'b']).unwrap_or(t);
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    if num.is_empty() {
        return Err(bad());
    }
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match suffix {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// The `-memory` flag's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryFlag {
    /// `auto`: [`AUTO_PERCENT`] of the cgroup memory limit, if the process has one.
    #[default]
    Auto,
    /// `0` or `none`: no budget from the flag.
    None,
    /// A size in bytes.
    Bytes(u64),
}

impl MemoryFlag {
    /// Read the flag's text.
    pub fn parse(text: &str) -> Result<MemoryFlag, BudgetError> {
        match text.trim() {
            "auto" => Ok(MemoryFlag::Auto),
            "none" => Ok(MemoryFlag::None),
            t => match parse_size(t)? {
                0 => Ok(MemoryFlag::None),
                n => Ok(MemoryFlag::Bytes(n)),
            },
        }
    }

    /// The limit it sets, reading the cgroup for `auto`.
    pub fn resolve(self) -> Option<u64> {
        match self {
            MemoryFlag::Auto => cgroup_limit().map(|l| share(l, AUTO_PERCENT)),
            MemoryFlag::None => None,
            MemoryFlag::Bytes(n) => Some(n),
        }
    }
}

/// Values at or above this mean "no limit" (cgroup v1 writes a page-rounded `i64::MAX`, such as
/// 9223372036854771712).
const UNLIMITED: u64 = 1 << 62;

/// The memory limit of this process's cgroup: cgroup v1's `memory.limit_in_bytes` (and the
/// `hierarchical_memory_limit` of `memory.stat`, which counts the ancestors) or cgroup v2's
/// `memory.max` of its cgroup and every ancestor, the smallest that is set. The cgroup comes
/// from /proc/self/cgroup, its directory from /proc/self/mountinfo. `None` when there is none.
pub fn cgroup_limit() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    cgroup_limit_from(&cgroup, &mountinfo, &|p| std::fs::read_to_string(p).ok())
}

/// [`cgroup_limit`] over given file contents (for tests).
pub fn cgroup_limit_from(
    cgroup: &str,
    mountinfo: &str,
    read: &dyn Fn(&str) -> Option<String>,
) -> Option<u64> {
    let num = |s: &str| -> Option<u64> {
        s.trim()
            .parse::<u64>()
            .ok()
            .filter(|&v| v > 0 && v < UNLIMITED)
    };
    // cgroup v1: the line whose controllers include memory.
    let v1 = cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrls.split(',').any(|c| c == "memory").then_some(path)
    });
    if let Some(path) = v1
        && let Some(dir) = cgroup_dir(mountinfo, path, |fs, opts| {
            fs == "cgroup" && opts.split(',').any(|o| o == "memory")
        })
    {
        let own = read(&format!("{dir}/memory.limit_in_bytes")).and_then(|s| num(&s));
        let hier = read(&format!("{dir}/memory.stat")).and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("hierarchical_memory_limit "))
                .and_then(num)
        });
        return match (own, hier) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    // cgroup v2: "0::/path".
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let (mount, root) = mount_of(mountinfo, |fs, _| fs == "cgroup2")?;
    let rel = relative(path, &root)?;
    let mut best: Option<u64> = None;
    let mut rel = rel.trim_end_matches('/').to_string();
    loop {
        let dir = format!("{mount}{rel}");
        if let Some(v) = read(&format!("{dir}/memory.max")).and_then(|s| num(&s)) {
            best = Some(best.map_or(v, |b| b.min(v)));
        }
        match rel.rfind('/') {
            Some(i) if !rel.is_empty() => rel.truncate(i),
            _ => break,
        }
    }
    best
}

/// The directory of cgroup `path` under the mount that `want` picks.
fn cgroup_dir(mountinfo: &str, path: &str, want: impl Fn(&str, &str) -> bool) -> Option<String> {
    let (mount, root) = mount_of(mountinfo, want)?;
    Some(format!(
        "{mount}{}",
        relative(path, &root)?.trim_end_matches('/')
    ))
}

/// `path` relative to a mount's root (`/` keeps it whole; a container's mount of its own
/// cgroup has that cgroup as root).
fn relative(path: &str, root: &str) -> Option<String> {
    if root == "/" {
        return Some(path.to_string());
    }
    let rest = path.strip_prefix(root)?;
    (rest.is_empty() || rest.starts_with('/')).then(|| rest.to_string())
}

/// (mount point, root) of the first mount whose filesystem type and super options `want`
/// picks.
fn mount_of(mountinfo: &str, want: impl Fn(&str, &str) -> bool) -> Option<(String, String)> {
    mountinfo.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let f: Vec<&str> = pre.split(' ').collect();
        let p: Vec<&str> = post.split(' ').collect();
        let (root, mount) = (f.get(3)?, f.get(4)?);
        let (fs, opts) = (p.first()?, p.get(2).copied().unwrap_or(""));
        want(fs, opts).then(|| (mount.to_string(), root.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64Mi"), Ok(64 << 20));
        assert_eq!(parse_size("200M"), Ok(200_000_000));
        assert_eq!(parse_size("1Gi"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert!(parse_size("Mi").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("-1").is_err());
        assert_eq!(MemoryFlag::parse("auto"), Ok(MemoryFlag::Auto));
        assert_eq!(MemoryFlag::parse("0"), Ok(MemoryFlag::None));
        assert_eq!(MemoryFlag::parse("none"), Ok(MemoryFlag::None));
        assert_eq!(MemoryFlag::parse("1Ki"), Ok(MemoryFlag::Bytes(1024)));
    }

    #[test]
    fn smallest_source_wins_and_shares_follow() {
        let b = Budget::new();
        assert_eq!(b.limit(), None);
        assert!(b.try_cache(1 << 40));
        b.release_cache(1 << 40);
        b.set_process_limit(Some(64 << 20));
        b.set_corefile_limit(Some(32 << 20));
        assert_eq!(b.limit(), Some(32 << 20));
        assert_eq!(b.cache_limit(), Some(16 << 20));
        assert_eq!(b.inflight_limit(), Some((8 << 20) / QUERY_COST));
        b.set_corefile_limit(None);
        assert_eq!(b.limit(), Some(64 << 20));
        b.set_process_limit(None);
        assert_eq!(b.limit(), None);
    }

    #[test]
    fn cache_share_is_enforced() {
        let b = Budget::new();
        b.set_process_limit(Some(2000));
        assert!(b.try_cache(600));
        assert!(b.try_cache(400));
        assert!(!b.try_cache(1));
        assert_eq!(b.cache_bytes(), 1000);
        b.release_cache(400);
        assert!(b.try_cache(300));
        assert_eq!(b.cache_bytes(), 900);
    }

    #[test]
    fn queries_past_the_share_are_refused() {
        let b = Budget::new();
        b.set_process_limit(Some(QUERY_COST * 8)); // 25%: 2 queries
        let p1 = b.try_query();
        let p2 = b.try_query();
        assert!(p1.is_some() && p2.is_some());
        assert!(b.try_query().is_none());
        assert_eq!(b.refused(), 1);
        assert_eq!(b.inflight(), 2);
        drop(p1);
        assert!(b.try_query().is_some());
        assert_eq!(b.inflight(), 1);
    }

    #[test]
    fn cgroup_v1_and_v2() {
        let mi_v1 = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                     41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let cg_v1 = "4:memory:/kubepods/pod1/c1\n0::/\n";
        let files = |map: Vec<(&'static str, &'static str)>| {
            move |p: &str| {
                map.iter()
                    .find(|(k, _)| *k == p)
                    .map(|(_, v)| v.to_string())
            }
        };
        let read = files(vec![(
            "/sys/fs/cgroup/memory/kubepods/pod1/c1/memory.limit_in_bytes",
            "67108864\n",
        )]);
        assert_eq!(cgroup_limit_from(cg_v1, mi_v1, &read), Some(64 << 20));
        let read = files(vec![(
            "/sys/fs/cgroup/memory/kubepods/pod1/c1/memory.limit_in_bytes",
            "9223372036854771712\n",
        )]);
        assert_eq!(cgroup_limit_from(cg_v1, mi_v1, &read), None);
        // A container's view: the mount's root is its own cgroup.
        let mi_ct =
            "35 31 0:32 /kubepods/pod1/c1 /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n";
        let read = files(vec![(
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "1000000\n",
        )]);
        assert_eq!(cgroup_limit_from(cg_v1, mi_ct, &read), Some(1_000_000));

        let mi_v2 = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let cg_v2 = "0::/kubepods/pod1\n";
        let read = files(vec![
            ("/sys/fs/cgroup/kubepods/pod1/memory.max", "max\n"),
            ("/sys/fs/cgroup/kubepods/memory.max", "134217728\n"),
        ]);
        assert_eq!(cgroup_limit_from(cg_v2, mi_v2, &read), Some(128 << 20));
        let read = files(vec![("/sys/fs/cgroup/kubepods/pod1/memory.max", "max\n")]);
        assert_eq!(cgroup_limit_from(cg_v2, mi_v2, &read), None);
    }
}

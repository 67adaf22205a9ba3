//! The store within the process's memory budget: entries claim their cost, give it back when
//! evicted, replaced, removed or dropped, and an insert past the cache share evicts, then is
//! skipped.

use std::sync::Arc;

use ferrodns_plugin::budget::Budget;
use ferrodns_plugin_cache::budget::{ENTRY_OVERHEAD, cost};
use ferrodns_plugin_cache::entry::{Entry, Freq, PackedWire};
use ferrodns_plugin_cache::store::Store;
use tokio::time::Instant;

fn entry(wire: usize) -> Arc<Entry> {
    let now = Instant::now();
    Arc::new(Entry {
        wire: PackedWire::new(&vec![0u8; wire], &[0]),
        qname_len: 0,
        qtype: 1,
        qclass: 1,
        rcode: 0,
        ad: false,
        ra: false,
        orig_ttl: 30,
        stored: now,
        answering: true,
        last_known_good: None,
        wildcard: None,
        freq: Freq::new(now, now, 0),
        refreshing: Default::default(),
        retry_after_ms: Default::default(),
    })
}

fn leaked(limit: Option<u64>) -> &'static Budget {
    let b: &'static Budget = Box::leak(Box::new(Budget::new()));
    b.set_process_limit(limit);
    b
}

#[test]
fn cost_is_wire_bytes_plus_overhead() {
    assert_eq!(cost(&entry(100)), 100 + 2 + ENTRY_OVERHEAD);
}

#[test]
fn without_a_limit_only_the_capacity_bounds() {
    let b = leaked(None);
    let s = Store::with_budget(1024, b);
    for k in 0..5000u64 {
        s.add(k, entry(100));
    }
    assert_eq!(s.len(), 1024);
    assert_eq!(b.cache_bytes(), 1024 * cost(&entry(100)));
    assert_eq!(b.skipped(), 0);
    drop(s);
    assert_eq!(b.cache_bytes(), 0);
}

#[test]
fn the_cache_share_bounds_the_bytes() {
    let one = cost(&entry(100));
    // Cache share (50%) of 100 entries' worth.
    let b = leaked(Some(200 * one));
    let s = Store::with_budget(100_000, b);
    for k in 0..10_000u64 {
        s.add(k, entry(100));
        assert!(b.cache_bytes() <= 100 * one);
    }
    assert!(s.len() <= 100 && s.len() > 50, "{}", s.len());
    assert_eq!(b.cache_bytes(), s.len() as u64 * one);
    // Replacing gives the old entry's bytes back.
    let k = (0..10_000u64).rev().find(|&k| s.get(k).is_some()).unwrap();
    let before = b.cache_bytes();
    s.add(k, entry(100));
    assert_eq!(b.cache_bytes(), before);
    s.remove(k);
    assert_eq!(b.cache_bytes(), before - one);
    // An entry larger than the whole share is never stored.
    let skipped = b.skipped();
    s.add(1 << 40, entry((200 * one) as usize));
    assert!(s.get(1 << 40).is_none());
    assert_eq!(b.skipped(), skipped + 1);
    drop(s);
    assert_eq!(b.cache_bytes(), 0);
}

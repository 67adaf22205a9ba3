//! The cache's claim on the process's memory budget ([`ferrodns_plugin::budget`]): what one
//! stored entry counts for. The store claims an entry's cost when it stores it and gives it back
//! when the entry is evicted, replaced or removed, or the store goes (a reload); an entry that
//! does not fit the budget's cache share evicts random entries of its shard, as a full shard
//! does, and is not stored if it still does not fit.

use crate::entry::Entry;

/// Bytes one entry costs beyond its wire bytes, TTL offsets and wildcard name: the `Entry`
/// struct in its `Arc` (about 190 bytes), its slot in the shard's map, and the allocator's
/// rounding of the three allocations. Measured at 198 bytes with jemalloc over 200,000 entries
/// (`cargo test -p ferrodns-plugin-cache --release --test entry_cost -- --nocapture`);
/// counted as 256.
pub const ENTRY_OVERHEAD: u64 = 256;

/// What `e` counts for in the budget. An entry kept as another's last known good answer
/// (`serve_stale_policy prefer_positive`) is counted with the entry that holds it.
pub fn cost(e: &Entry) -> u64 {
    let own = |e: &Entry| {
        (e.wire.held() + e.wildcard.as_ref().map_or(0, |w| w.len())) as u64 + ENTRY_OVERHEAD
    };
    own(e) + e.last_known_good.as_deref().map_or(0, own)
}

/// Most entries an insert evicts to fit the budget before it gives up.
pub const MAX_EVICTIONS: usize = 4;

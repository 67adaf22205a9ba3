//! Measures what one cache entry costs in memory beyond its wire bytes (the figure behind
//! `ENTRY_OVERHEAD`): 200,000 distinct names into a cache large enough to keep them all, the
//! resident set read before and after. Run it in release for the binaries' figure:
//! `cargo test -p ferrodns-plugin-cache --release --test entry_cost -- --nocapture`.

mod common;

use common::{Backend, Rig};
use ferrodns_plugin::budget;
use ferrodns_plugin::proto::rr::RecordType;
use ferrodns_plugin_cache::budget::ENTRY_OVERHEAD;
use ferrodns_plugin_test as testkit;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Resident set size in bytes, from /proc/self/statm.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "current_thread")]
async fn entry_overhead_covers_the_measured_cost() {
    const N: u64 = 200_000;
    let rig = Rig::new("cache {\n success 262144\n}", Backend::echo());
    let ask = |i: u64| {
        let req = testkit::request(&format!("host-{i}.example.org."), RecordType::A);
        rig.ask_reply(req)
    };
    // Warm up (the first entries grow the maps and the runtime), then measure a fill.
    for i in 0..1000 {
        ask(i).await;
    }
    let (rss0, bytes0, len0) = (
        rss(),
        budget::global().cache_bytes(),
        rig.cache.success_len() as u64,
    );
    for i in 1000..1000 + N {
        ask(i).await;
    }
    let (rss1, bytes1, len1) = (
        rss(),
        budget::global().cache_bytes(),
        rig.cache.success_len() as u64,
    );
    let stored = len1 - len0;
    assert_eq!(stored, N, "the cache keeps them all");
    let wire = (bytes1 - bytes0) / stored - ENTRY_OVERHEAD;
    let per_entry = (rss1 - rss0) / stored;
    let overhead = per_entry.saturating_sub(wire);
    eprintln!(
        "{stored} entries: RSS +{} KiB, {per_entry} B per entry, of which {wire} B wire and TTL \
         offsets, {overhead} B overhead (counted: {ENTRY_OVERHEAD})",
        (rss1 - rss0) / 1024
    );
    assert!(
        overhead <= ENTRY_OVERHEAD,
        "measured overhead {overhead} B above ENTRY_OVERHEAD {ENTRY_OVERHEAD}"
    );
}

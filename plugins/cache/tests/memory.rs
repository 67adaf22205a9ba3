//! One million distinct names through a cache of capacity 10000: the entry count stays at the
//! cap and the resident set stays flat once the cache is full.

mod common;

use common::{Backend, Rig};
use ferrodns_plugin::proto::rr::RecordType;
use ferrodns_plugin_test as testkit;

/// Resident set size in bytes, from /proc/self/statm.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "current_thread")]
async fn a_million_names_keep_memory_flat() {
    let rig = Rig::new("cache {\n success 10000\n}", Backend::echo());
    let cap = rig.cache.capacities().0;
    assert_eq!(cap, 9984);
    let ask = |i: u32| {
        let req = testkit::request(&format!("host-{i}.example.org."), RecordType::A);
        rig.ask_reply(req)
    };
    // Fill well past the cap, then measure.
    for i in 0..100_000u32 {
        ask(i).await;
    }
    assert!(rig.cache.success_len() <= cap);
    let after_fill = rss();
    let mut peak = after_fill;
    for i in 100_000..1_000_000u32 {
        ask(i).await;
        if i % 50_000 == 0 {
            peak = peak.max(rss());
            assert!(rig.cache.success_len() <= cap);
        }
    }
    let end = rss();
    peak = peak.max(end);
    let len = rig.cache.success_len();
    eprintln!(
        "entries {len} (cap {cap}); rss after 100k names {} KiB, peak {} KiB, after 1M {} KiB",
        after_fill / 1024,
        peak / 1024,
        end / 1024
    );
    assert!(len <= cap && len > cap * 9 / 10, "{len}");
    assert_eq!(rig.backend.calls(), 1_000_000);
    // Flat: less than 4 MiB of growth over the last 900k names.
    assert!(
        peak < after_fill + 4 * 1024 * 1024,
        "RSS grew from {after_fill} to {peak}"
    );
}

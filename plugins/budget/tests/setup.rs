//! `budget SIZE`: the smallest limit of the instance's blocks is recorded for the server.

use ferrodns_plugin::Shared;
use ferrodns_plugin::budget::CorefileLimit;
use ferrodns_plugin_test as testkit;

fn limit(directives: &[&str]) -> Result<Option<u64>, String> {
    let shared = Shared::default();
    for d in directives {
        testkit::setup_with(&ferrodns_plugin_budget::DESCRIPTOR, d, &shared)
            .map_err(|e| e.to_string())?;
    }
    Ok(shared.state::<CorefileLimit>().get())
}

#[test]
fn sizes_and_the_smallest_block() {
    assert_eq!(limit(&["budget 64Mi"]), Ok(Some(64 << 20)));
    assert_eq!(limit(&["budget 200M"]), Ok(Some(200_000_000)));
    assert_eq!(limit(&["budget 1Gi", "budget 48Mi"]), Ok(Some(48 << 20)));
    assert_eq!(limit(&[]), Ok(None));
}

#[test]
fn bad_arguments() {
    for bad in [
        "budget",
        "budget 1Mi 2Mi",
        "budget lots",
        "budget 0",
        "budget 1Mi\nbudget 2Mi",
    ] {
        let e = limit(&[bad]).unwrap_err();
        assert!(e.starts_with("plugin/budget: "), "{bad}: {e}");
    }
}

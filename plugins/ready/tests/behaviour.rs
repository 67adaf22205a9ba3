//! What `/ready` answers as plugins become ready (or not), in both monitor modes, and once the
//! instance stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ferrodns_plugin::{HttpHandler, Readiness, Shared};
use ferrodns_plugin_ready::{DESCRIPTOR, PATH};
use ferrodns_plugin_test::{self as testkit, capture};

/// A plugin whose readiness the test sets, counting how often it was asked.
#[derive(Default)]
struct Switch {
    ready: AtomicBool,
    asked: AtomicUsize,
}

impl Switch {
    fn set(&self, on: bool) {
        self.ready.store(on, Ordering::SeqCst);
    }
    fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }
}

impl Readiness for Switch {
    fn ready(&self) -> bool {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.ready.load(Ordering::SeqCst)
    }
}

fn page(shared: &Shared, addr: &str) -> Arc<dyn HttpHandler> {
    shared
        .http
        .routes()
        .get(addr)
        .and_then(|p| p.get(PATH))
        .cloned()
        .expect("/ready routed")
}

fn answer(p: &Arc<dyn HttpHandler>) -> (u16, String) {
    let r = p.handle();
    (r.status, String::from_utf8(r.body).unwrap())
}

const ADDR: &str = "127.0.0.1:18181";

#[test]
fn not_ready_plugins_are_named_sorted_until_each_is_ready() {
    let shared = Shared::default();
    testkit::setup_with(&DESCRIPTOR, &format!("ready {ADDR}"), &shared).unwrap();
    let (zeta, alpha) = (Arc::new(Switch::default()), Arc::new(Switch::default()));
    shared.readiness.add("zeta", zeta.clone());
    shared.readiness.add("alpha", alpha.clone());
    let p = page(&shared, ADDR);
    let (captured, _g) = capture::capture();
    assert_eq!(answer(&p), (503, "alpha,zeta".to_string()));
    alpha.set(true);
    assert_eq!(answer(&p), (503, "zeta".to_string()));
    zeta.set(true);
    assert_eq!(answer(&p), (200, "OK".to_string()));
    assert_eq!(
        captured.lines(),
        vec![
            "[INFO] plugin/ready: Plugins not ready: \"alpha,zeta\"".to_string(),
            "[INFO] plugin/ready: Plugins not ready: \"zeta\"".to_string(),
        ]
    );
}

#[test]
fn until_ready_stops_asking_a_plugin_once_it_was_ready() {
    let shared = Shared::default();
    testkit::setup_with(&DESCRIPTOR, &format!("ready {ADDR}"), &shared).unwrap();
    let s = Arc::new(Switch::default());
    shared.readiness.add("erratic", s.clone());
    let p = page(&shared, ADDR);
    s.set(true);
    assert_eq!(answer(&p).0, 200);
    let asked = s.asked();
    s.set(false);
    assert_eq!(answer(&p).0, 200, "a plugin once ready is not asked again");
    assert_eq!(s.asked(), asked);
}

#[test]
fn continuously_asks_every_time() {
    let shared = Shared::default();
    testkit::setup_with(
        &DESCRIPTOR,
        &format!("ready {ADDR} {{\n monitor continuously\n}}"),
        &shared,
    )
    .unwrap();
    let s = Arc::new(Switch::default());
    shared.readiness.add("erratic", s.clone());
    let p = page(&shared, ADDR);
    s.set(true);
    assert_eq!(answer(&p).0, 200);
    s.set(false);
    assert_eq!(answer(&p), (503, "erratic".to_string()));
}

#[test]
fn the_last_reporter_of_a_name_counts() {
    let shared = Shared::default();
    testkit::setup_with(&DESCRIPTOR, &format!("ready {ADDR}"), &shared).unwrap();
    let (first, last) = (Arc::new(Switch::default()), Arc::new(Switch::default()));
    shared.readiness.add("erratic", first.clone());
    shared.readiness.add("erratic", last.clone());
    last.set(true);
    assert_eq!(answer(&page(&shared, ADDR)).0, 200);
    assert_eq!(first.asked(), 0);
}

#[test]
fn blocks_on_one_address_share_the_page() {
    let shared = Shared::default();
    testkit::setup_with(&DESCRIPTOR, &format!("ready {ADDR}"), &shared).unwrap();
    testkit::setup_with(&DESCRIPTOR, &format!("ready {ADDR}"), &shared).unwrap();
    testkit::setup_with(&DESCRIPTOR, "ready 127.0.0.1:18182", &shared).unwrap();
    let routes = shared.http.routes();
    assert_eq!(routes.len(), 2);
    assert!(routes.values().all(|paths| paths.len() == 1));
}

#[tokio::test]
async fn stopping_turns_the_page_to_shutting_down() {
    let shared = Shared::default();
    testkit::setup_with(&DESCRIPTOR, &format!("ready {ADDR}"), &shared).unwrap();
    let p = page(&shared, ADDR);
    assert_eq!(answer(&p).0, 200);
    for h in shared.lifecycles() {
        h.on_shutdown().await;
    }
    assert_eq!(answer(&p), (503, "Shutting down".to_string()));
}

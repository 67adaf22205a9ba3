//! A `gate` plugin shared by the tests that hold queries in the chain: a query for a name under
//! `gate.` waits until the test lets it through; any other name is answered at once. NXDOMAIN
//! both. The counter and the gate are statics, so each test binary holds one test that uses it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferrodns_plugin::proto::op::ResponseCode;
use ferrodns_plugin::{
    Descriptor, Next, Plugin, PluginError, Reply, Request, Setup, SetupError, async_trait,
};
use tokio::sync::Semaphore;

/// Queries under `gate.` that reached the chain.
static GATED: AtomicUsize = AtomicUsize::new(0);
/// One permit lets one `gate.` query through.
static GATE: Semaphore = Semaphore::const_new(0);

/// Let `n` held queries through.
pub fn open(n: usize) {
    GATE.add_permits(n);
}

/// How many `gate.` queries reached the chain so far.
pub fn gated() -> usize {
    GATED.load(Ordering::SeqCst)
}

struct Gate;

#[async_trait]
impl Plugin for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }
    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        if req.name_lower().ends_with("gate.") {
            GATED.fetch_add(1, Ordering::SeqCst);
            if let Ok(p) = GATE.acquire().await {
                p.forget();
            }
        }
        Ok(Reply::message(ferrodns_plugin::wire::rcode_reply(
            req.message(),
            ResponseCode::NXDomain,
        )))
    }
}

fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {}
    c.add_plugin(Arc::new(Gate));
    Ok(())
}

/// The `gate` directive, for a test's registry.
pub fn descriptor() -> Descriptor {
    Descriptor::new("gate", setup)
}

/// Poll `done` until it holds; fail with `what` after 10 s.
pub fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

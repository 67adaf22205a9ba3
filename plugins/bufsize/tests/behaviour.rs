//! What bufsize does to requests: caps a larger advertised UDP size, leaves the rest alone.

use std::sync::Arc;

use ferrodns_plugin::proto::op::ResponseCode;
use ferrodns_plugin::proto::rr::RecordType;
use ferrodns_plugin::{Next, Plugin, PluginError, Reply, Request, async_trait};
use ferrodns_plugin_bufsize::Bufsize;
use ferrodns_plugin_test as testkit;

/// Records the size and wire bytes the rest of the chain sees.
struct Seen(std::sync::Mutex<Option<(Option<u16>, Vec<u8>)>>);

#[async_trait]
impl Plugin for Seen {
    fn name(&self) -> &'static str {
        "seen"
    }
    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        let size = req.message().edns.as_ref().map(|e| e.max_payload());
        *self.0.lock().unwrap() = Some((size, req.wire().into_owned()));
        Ok(Reply::Rcode(ResponseCode::ServFail))
    }
}

async fn through(b: Bufsize, mut req: Request) -> (Option<u16>, Vec<u8>, bool) {
    let seen = Arc::new(Seen(std::sync::Mutex::new(None)));
    let chain: Vec<Arc<dyn Plugin>> = vec![Arc::new(b), seen.clone()];
    let _ = testkit::run(&chain, &mut req).await;
    let (size, wire) = seen.0.lock().unwrap().take().expect("the next plugin ran");
    (size, wire, req.is_modified())
}

#[tokio::test]
async fn larger_sizes_are_capped() {
    let b = Bufsize { size: 1232 };
    let (size, wire, modified) = through(
        b,
        testkit::request_edns("example.org.", RecordType::A, 4096, true),
    )
    .await;
    assert_eq!(size, Some(1232));
    assert!(modified);
    // What a forwarder sends upstream advertises the capped size, DO kept.
    let m = ferrodns_plugin::proto::op::Message::from_vec(&wire).unwrap();
    let e = m.edns.expect("OPT kept");
    assert_eq!(e.max_payload(), 1232);
    assert!(e.flags().dnssec_ok);
}

#[tokio::test]
async fn smaller_or_equal_sizes_and_no_opt_are_untouched() {
    let b = Bufsize { size: 1232 };
    for adv in [512u16, 1000, 1232] {
        let req = testkit::request_edns("example.org.", RecordType::A, adv, false);
        let raw = req.raw.to_vec();
        let (size, wire, modified) = through(b, req).await;
        assert_eq!(size, Some(adv));
        assert!(!modified, "{adv}");
        assert_eq!(wire, raw, "the client's bytes pass through");
    }
    let (size, _, modified) = through(b, testkit::request("example.org.", RecordType::A)).await;
    assert_eq!(size, None, "no OPT is added");
    assert!(!modified);
}

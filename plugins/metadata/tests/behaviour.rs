//! The metadata handler: metadata on for the block's requests, providers asked for names in
//! its zones only.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferrodns_plugin::proto::op::ResponseCode;
use ferrodns_plugin::proto::rr::RecordType;
use ferrodns_plugin::{Next, Plugin, PluginError, Reply, Request, async_trait};
use ferrodns_plugin_metadata::Metadata;
use ferrodns_plugin_test::{self as testkit, Fixed};

/// A provider that adds `test/provided` (lazily, counting evaluations) and, when serving,
/// records what it sees and sets `test/served`.
#[derive(Default)]
struct Provider {
    evaluated: Arc<AtomicUsize>,
}

#[async_trait]
impl Plugin for Provider {
    fn name(&self) -> &'static str {
        "provider"
    }
    fn provide_metadata(&self, req: &mut Request) {
        let n = self.evaluated.clone();
        req.set_metadata_fn("test/provided", move || {
            n.fetch_add(1, Ordering::SeqCst);
            "yes".to_string()
        });
    }
    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        req.set_metadata("test/served", "served");
        next.serve(req).await
    }
}

fn chain(zones: &[&str], provider: Arc<Provider>) -> Vec<Arc<dyn Plugin>> {
    vec![
        Arc::new(Metadata::new(zones.iter().map(|z| z.to_string()).collect())),
        provider,
        Fixed::rcode(ResponseCode::NoError),
    ]
}

#[tokio::test]
async fn providers_are_asked_for_names_in_the_zones() {
    let p = Arc::new(Provider::default());
    let mut req = testkit::request("WWW.Example.org.", RecordType::A);
    testkit::run(&chain(&["example.org."], p.clone()), &mut req)
        .await
        .expect("served");
    assert!(req.metadata_enabled());
    // Lazily evaluated: nothing ran until the label is read.
    assert_eq!(p.evaluated.load(Ordering::SeqCst), 0);
    assert_eq!(req.metadata("test/provided").as_deref(), Some("yes"));
    assert_eq!(p.evaluated.load(Ordering::SeqCst), 1);
    assert_eq!(req.metadata("test/served").as_deref(), Some("served"));
    let mut labels: Vec<&str> = req.metadata_labels().collect();
    labels.sort_unstable();
    assert_eq!(labels, vec!["test/provided", "test/served"]);
}

#[tokio::test]
async fn outside_the_zones_metadata_is_on_but_nothing_is_provided() {
    let p = Arc::new(Provider::default());
    let mut req = testkit::request("example.net.", RecordType::A);
    testkit::run(&chain(&["example.org."], p.clone()), &mut req)
        .await
        .expect("served");
    assert!(req.metadata_enabled());
    assert_eq!(req.metadata("test/provided"), None);
    // Labels set while serving are still recorded, as CoreDNS's context has its map.
    assert_eq!(req.metadata("test/served").as_deref(), Some("served"));
}

#[tokio::test]
async fn without_the_plugin_labels_are_not_recorded() {
    let p = Arc::new(Provider::default());
    let plugins: Vec<Arc<dyn Plugin>> = vec![p, Fixed::rcode(ResponseCode::NoError)];
    let mut req = testkit::request("example.org.", RecordType::A);
    testkit::run(&plugins, &mut req).await.expect("served");
    assert!(!req.metadata_enabled());
    assert_eq!(req.metadata("test/served"), None);
    assert!(!req.set_metadata("test/x", "y"));
    assert_eq!(req.metadata_labels().count(), 0);
}

#[tokio::test]
async fn alone_in_the_chain_it_fails_as_upstream() {
    let plugins: Vec<Arc<dyn Plugin>> = vec![Arc::new(Metadata::new(vec![".".into()]))];
    let mut req = testkit::request("example.org.", RecordType::A);
    let err = testkit::run(&plugins, &mut req).await.expect_err("no next");
    assert_eq!(err.to_string(), "plugin/metadata: no next plugin found");
    assert_eq!(err.rcode, ResponseCode::ServFail);
}

#[test]
fn labels_need_a_slash_inside() {
    use ferrodns_plugin::is_metadata_label;
    assert!(is_metadata_label("forward/upstream"));
    assert!(is_metadata_label("a/b/c"));
    for bad in ["", "/", "plain", "/x", "x/"] {
        assert!(!is_metadata_label(bad), "{bad}");
    }
}

#[test]
fn the_fast_path_may_pass_it() {
    assert!(Metadata::new(vec![".".into()]).fast_transparent());
}

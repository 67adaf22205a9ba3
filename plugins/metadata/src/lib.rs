//! # metadata
//!
//! CoreDNS's *metadata* plugin: it turns metadata on for every request of its server block (so
//! that labels other plugins set, such as `forward/upstream` or `log/type`, are recorded and
//! can be read by `log`'s `{/label}`, `rewrite`'s `edns0` variables and `template`'s `.Meta`),
//! and, for requests whose name is in its zones, asks every plugin after it in the chain for
//! the labels it provides ([`ferrodns_plugin::Plugin::provide_metadata`]).
//!
//! Without this plugin in a block, [`Request::set_metadata`] does nothing for that block's
//! requests, as CoreDNS's `metadata.SetValueFunc` does without a metadata context.

mod setup;

use ferrodns_pkg::names::zone_match;
use ferrodns_plugin::{Descriptor, Next, Plugin, PluginError, Reply, Request, async_trait};

/// The directive name.
pub const NAME: &str = "metadata";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// The request handler.
#[derive(Debug, Clone)]
pub struct Metadata {
    zones: Vec<String>,
}

impl Metadata {
    /// A handler collecting labels for names in `zones` (normalised, `example.org.`).
    pub fn new(zones: Vec<String>) -> Self {
        Metadata { zones }
    }

    /// The zones labels are collected for.
    pub fn zones(&self) -> &[String] {
        &self.zones
    }

    /// Turn metadata on for `req` and, when its name is in the zones, gather the labels of the
    /// handlers in `rest` (CoreDNS's `Collect`).
    pub fn collect(&self, req: &mut Request, rest: &Next) {
        req.enable_metadata();
        if zone_match(&self.zones, &req.name_lower()).is_some() {
            for p in rest.remaining() {
                p.provide_metadata(req);
            }
        }
    }
}

#[async_trait]
impl Plugin for Metadata {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        self.collect(req, &next);
        next.serve(req).await
    }

    /// Metadata matters only to plugins that read labels (`log`, `rewrite`, `template`), and
    /// none of those answers on the fast path or lets it pass; no shipped plugin provides
    /// labels up front. So a fast answer (a cache hit) is the same with or without this
    /// plugin, and the fast path may pass it.
    fn fast_transparent(&self) -> bool {
        true
    }
}

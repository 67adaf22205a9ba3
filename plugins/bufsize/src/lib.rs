//! # bufsize
//!
//! Caps the EDNS0 UDP payload size a request advertises, as CoreDNS's *bufsize* plugin does: a
//! request whose OPT record asks for more than the configured size is changed to ask for that
//! size, before the rest of the chain sees it. A forwarder then advertises the capped size
//! upstream, and the server cuts the reply to it and echoes it in the reply's OPT record.
//! Requests without an OPT record, or asking for less, are left alone.
//!
//! On the server's synchronous UDP path the handler is skipped; its setup records the cap in
//! the block's settings and the server patches the query's OPT size the same way before a fast
//! hook (a cache hit) answers it.

mod setup;

use ferrodns_plugin::{Descriptor, Next, Plugin, PluginError, Reply, Request, async_trait};

/// The directive name.
pub const NAME: &str = "bufsize";

/// The size used when the directive has no argument (the DNS flag day 2020 value).
pub const DEFAULT_SIZE: u16 = 1232;

/// The smallest size accepted (RFC 6891).
pub const MIN_SIZE: u16 = 512;

/// The largest size accepted.
pub const MAX_SIZE: u16 = 4096;

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// The request handler: caps the request's advertised UDP size at `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bufsize {
    /// The largest UDP payload size a request may advertise past this plugin.
    pub size: u16,
}

impl Bufsize {
    /// Cap `req`'s advertised size; returns whether it was changed.
    pub fn clamp(&self, req: &mut Request) -> bool {
        let over = req
            .message()
            .edns
            .as_ref()
            .is_some_and(|e| e.max_payload() > self.size);
        if over && let Some(e) = req.message_mut().edns.as_mut() {
            e.set_max_payload(self.size);
        }
        over
    }
}

#[async_trait]
impl Plugin for Bufsize {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        self.clamp(req);
        next.serve(req).await
    }

    /// The UDP fast path may skip the handler: setup gives the block the same cap
    /// ([`ferrodns_plugin::BlockSettings::udp_size_cap`]), which the server applies to a
    /// query before a fast hook further down the chain sees it.
    fn fast_transparent(&self) -> bool {
        true
    }
}

//! # ferrodns plugin API
//!
//! Everything a ferrodns plugin needs, and nothing of the server's internals. A plugin is a crate
//! that depends on this one and exports a [`Descriptor`]: its directive name and a setup function.
//! The binary lists the descriptors in `plugin.cfg` order (the chain order, as in CoreDNS); at
//! startup and at every reload, for each directive in that order and each server block that names
//! it, the setup function is called once with every token of that directive in the block.
//!
//! A setup function reads its arguments through the [`Dispenser`] (Caddy-style: `next`,
//! `next_arg`, `remaining_args`, `next_block`, argument errors carrying `file:line`), then may:
//! - add a request handler ([`Plugin`]) to the block's chain with [`Setup::add_plugin`];
//! - change the block's listener settings (`bind` does this) with [`Setup::set_listen_hosts`];
//! - register lifecycle hooks ([`Lifecycle`]): startup, shutdown, restart;
//! - register metric families on the shared [`Metrics`] registry (families that must show at 0
//!   from process start are registered by the descriptor's `metrics` hook);
//! - report readiness to `ready` ([`Readiness`]); reach the process ([`Control`], [`Listening`]);
//! - serve an HTTP path on a shared listener through [`HttpRegistry`] (health and prometheus on one
//!   address share one listener);
//! - publish a typed handle for other plugins of its block ([`Handles`]: kubernetes offers
//!   [`AutoPather`] to autopath and [`Externaler`] to k8s_external).
//!
//! The process's memory budget ([`budget`]) bounds cache entries and queries in flight; a plugin
//! that keeps data per name (as `cache` does) claims its bytes there.
//!
//! A handler gets the decoded [`Request`] and a [`Next`] for the rest of the chain, and returns a
//! [`Reply`]: a message to send, an rcode for the server to answer with, or nothing.
//!
//! Handlers share per-request labels the way CoreDNS's metadata does: [`Request::set_metadata`]
//! (or the lazily evaluated [`Request::set_metadata_fn`]) records a `plugin/name` label and
//! [`Request::metadata`] reads it, but only for requests of blocks with the `metadata` plugin
//! (elsewhere setting is a no-op). That plugin also asks every handler after it for labels up
//! front ([`Plugin::provide_metadata`]).
//!
//! This crate is only the API. The DNS helpers plugins share (zones and `fallthrough`, miekg/dns
//! texts, reply classification, the DNS metric families) are in `ferrodns-pkg`; the Go
//! behaviour plugins reproduce (durations, `%q`, regular expressions, templates) in
//! `ferrodns-go`; the test kit in `ferrodns-plugin-test`.
//!
//! ```no_run
//! use ferrodns_plugin::{async_trait, Descriptor, Next, Plugin, PluginError, Reply, Request, Setup, SetupError};
//! use std::sync::Arc;
//!
//! struct Hello;
//!
//! #[async_trait]
//! impl Plugin for Hello {
//!     fn name(&self) -> &'static str { "hello" }
//!     async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
//!         // Look at the request, answer or pass it on.
//!         next.serve(req).await
//!     }
//! }
//!
//! fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
//!     while c.next() {
//!         if c.next_arg() { return Err(c.arg_err()); }
//!     }
//!     c.add_plugin(Arc::new(Hello));
//!     Ok(())
//! }
//!
//! pub const DESCRIPTOR: Descriptor = Descriptor::new("hello", setup);
//! ```

#![deny(missing_docs)]

pub mod budget;
mod chain;
mod dispenser;
pub mod edns;
mod expo;
mod fast;
pub mod fit;
mod handle;
mod http;
mod lifecycle;
mod lookup;
mod metrics;
mod process;
mod procfs;
mod reply;
mod request;
mod setup;
pub mod wire;

pub use async_trait::async_trait;
pub use chain::{Chain, Next, Plugin, PluginError};
pub use dispenser::Dispenser;
pub use fast::{FastAnswer, FastHook, FastObserver, FastSeen, WireQuery};
pub use handle::{AutoPather, BlockHandle, Externaler, Handles, Missing, ServiceRecord};
pub use http::{HttpHandler, HttpRegistry, HttpResponse, address_arg};
pub use lifecycle::{Lifecycle, every, on_startup};
pub use lookup::Lookup;
pub use metrics::Metrics;
pub use process::{Control, CorefileInput, ListenAddr, Listening, Readiness, ReadinessSet};
pub use reply::Reply;
pub use request::{
    MAX_LOOKUP_DEPTH, Protocol, Request, TraceSpan, is_metadata_label, presentation,
};
pub use setup::{
    BlockSettings, ConnTimeouts, Descriptor, MetricsFn, Registry, Setup, SetupError, SetupFn,
    Shared,
};

/// The byte buffers of [`Reply::Wire`] and of the request as received, re-exported so that a
/// plugin's version always matches the server's.
pub use bytes;
/// The Corefile token and key types setup functions see.
pub use ferrodns_corefile as corefile;
/// The DNS wire types (hickory-proto) the API speaks in, re-exported so that a plugin's version
/// always matches the server's.
pub use hickory_proto as proto;
/// The metric types (prometheus-client) that [`Metrics`] registers, re-exported so that a
/// plugin's counters and gauges are the registry's own version.
pub use prometheus_client;
/// The runtime the server and every plugin run on (its `watch` receivers reach plugins through
/// [`every`]), re-exported so that a plugin's version always matches the server's.
pub use tokio;

//! # ferrodns server
//!
//! Turns a Corefile and a plugin [`Registry`](ferrodns_plugin::Registry) into running
//! listeners:
//!
//! - [`config`]: parse, run every plugin's setup in `plugin.cfg` order, validate zones and
//!   addresses, group zones into listeners ([`config::load`]);
//! - [`dispatch`]: CoreDNS's per-request rules (zone selection, class, EDNS version, panics);
//! - [`wire`]: what is dropped or rejected before dispatch, OPT echo, truncation;
//! - [`udp`] and [`tcp`]: the fronts; [`http`]: shared HTTP listeners;
//! - [`run`]: start and stop an instance; [`handoff`]: pass the sockets to a successor process;
//!   [`logging`]: CoreDNS-shaped log lines.

pub mod config;
pub mod dispatch;
pub mod handoff;
pub mod http;
pub mod logging;
pub mod run;
/// The batched socket syscalls, from the one module with `unsafe` code.
pub use ferrodns_pkg::sys;
pub mod tcp;
pub mod udp;
pub mod wire;

pub use config::{ConfigError, Instance, Source, load};
pub use run::Server;

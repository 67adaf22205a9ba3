//! # DNS helpers plugins share
//!
//! What CoreDNS keeps in `plugin/pkg` (and takes from miekg/dns), for ferrodns plugins and the
//! server: the parts that are about DNS but not part of the plugin API itself.
//!
//! - [`names`] — subdomains, zone matching, `fallthrough` zones, the zones of a plugin line,
//!   reverse names;
//! - [`text`] — type, class and rcode mnemonics both ways, names in presentation format,
//!   addresses, as miekg/dns and Go print them;
//! - [`response`] — the type and class of a reply (`Typify`, `Classify`);
//! - [`vars`] — the server-wide DNS metric families (`coredns_dns_*`), on the API's
//!   [`ferrodns_plugin::Metrics`] registry.
//! - [`udp`] — a UDP socket the runtime watches for read events only, so that sending does
//!   not wake the worker (the server's front and `forward`'s upstream sockets);
//! - [`sys`] — the batched `recvmmsg`/`sendmmsg` calls and the reactor registration under it:
//!   the one module of ferrodns with `unsafe` code.

#![warn(missing_docs)]

pub mod names;
pub mod response;
pub mod sys;
pub mod text;
pub mod udp;
pub mod vars;

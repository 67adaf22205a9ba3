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

#![warn(missing_docs)]

pub mod names;
pub mod response;
pub mod sys;
pub mod text;
pub mod udp;
pub mod vars;

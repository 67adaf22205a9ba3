//! # timeouts
//!
//! CoreDNS's *timeouts* directive: the read, write and idle timeouts of a block's
//! connection-oriented listeners (TCP now; TLS and HTTPS read the same settings), and how many
//! queries one connection may carry (`maxtcpqueries`).
//!
//! The directive adds no handler. It records the values in the block's settings
//! ([`ferrodns_plugin::ConnTimeouts`]); the server applies them to every listener the block
//! serves on, the last block (in file order) that sets a value winning when several blocks share
//! a listener.

mod setup;

use std::time::Duration;

use ferrodns_plugin::Descriptor;

/// The directive name.
pub const NAME: &str = "timeouts";

/// The shortest timeout accepted.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest timeout accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

pub use setup::parse;

//! The `health` plugin (being written).

use ferrodns_plugin::{Descriptor, Setup, SetupError};

/// The directive name.
pub const NAME: &str = "health";

fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    Err(SetupError::plugin(NAME, c.err("not implemented yet")))
}

/// The plugin's descriptor, listed in `plugin.cfg`.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup);

//! Reading the `metadata` directive from the Corefile.

use std::sync::Arc;

use ferrodns_pkg::names;
use ferrodns_plugin::{Setup, SetupError};

use crate::{Metadata, NAME};

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]): `metadata
/// [ZONES...]`, no block, once per server block.
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    c.next();
    let args = c.remaining_args();
    let zones = names::origins(&args, &c.zone_names());
    // A block with content, or a second `metadata` line, is an argument error (an empty
    // `{}` is accepted), as upstream reports it.
    if c.next_block() || c.next() {
        return Err(SetupError::plugin(NAME, c.arg_err()));
    }
    c.add_plugin(Arc::new(Metadata::new(zones)));
    Ok(())
}

//! Reading the `any` directive from the Corefile.

use std::sync::Arc;

use ferrodns_plugin::{Setup, SetupError};

use crate::{Any, NAME};

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    // As upstream, only the first `any` line of the block is read.
    c.next();
    if c.next_arg() {
        return Err(SetupError::plugin(NAME, c.arg_err()));
    }
    if c.next_block() {
        let msg = format!("unknown property '{}'", c.val());
        return Err(SetupError::plugin(NAME, c.err(msg)));
    }
    c.add_plugin(Arc::new(Any));
    Ok(())
}

//! Reading the `whoami` directive from the Corefile.

use std::sync::Arc;

use ferrodns_plugin::{Setup, SetupError};

use crate::{NAME, Whoami};

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    // Only the first occurrence in the block is looked at, as upstream does: a later `whoami`
    // line is accepted whatever it holds.
    c.next();
    if c.next_arg() {
        return Err(SetupError::plugin(NAME, c.arg_err()));
    }
    c.add_plugin(Arc::new(Whoami));
    Ok(())
}

//! Reading the `debug` directive from the Corefile.

use ferrodns_plugin::{Setup, SetupError};

use crate::NAME;

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]). Every `debug`
/// line of the block is read; none may have an argument or a block.
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {
        if c.next_arg() {
            return Err(SetupError::plugin(NAME, c.arg_err()));
        }
        c.set_debug(true);
    }
    Ok(())
}

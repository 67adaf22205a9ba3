//! Reading the `bufsize` directive from the Corefile.

use std::sync::Arc;

use ferrodns_plugin::{Setup, SetupError};

use crate::{Bufsize, DEFAULT_SIZE, MAX_SIZE, MIN_SIZE, NAME};

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let size = parse(c)?;
    c.set_udp_size_cap(size);
    c.add_plugin(Arc::new(Bufsize { size }));
    Ok(())
}

/// The size of the first `bufsize` line of the block (later lines are not read, as upstream).
fn parse(c: &mut Setup<'_>) -> Result<u16, SetupError> {
    // Upstream wraps its argument errors twice in `plugin/bufsize: `.
    let arg_err = |c: &Setup<'_>| SetupError::plugin(NAME, SetupError::plugin(NAME, c.arg_err()));
    if c.next() {
        let args = c.remaining_args();
        return match args.as_slice() {
            [] => Ok(DEFAULT_SIZE),
            [one] => ferrodns_go::strconv::atoi(one)
                .ok()
                .filter(|n| (i64::from(MIN_SIZE)..=i64::from(MAX_SIZE)).contains(n))
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| arg_err(c)),
            _ => Err(arg_err(c)),
        };
    }
    Err(arg_err(c))
}

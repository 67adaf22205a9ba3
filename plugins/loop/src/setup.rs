//! Reading the `loop` directive from the Corefile.

use std::sync::{Arc, Mutex};

use ferrodns_plugin::{Setup, SetupError};

use crate::{Loop, NAME, Prober};

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let l = Arc::new(parse(c)?);
    let host = c.listen_hosts().first().cloned().unwrap_or_default();
    let port = c
        .zones()
        .first()
        .map(|z| z.port.clone())
        .unwrap_or_default();
    c.add_plugin(l.clone());
    c.add_lifecycle(Arc::new(Prober {
        l,
        listening: c.shared().listening.clone(),
        host,
        port,
        task: Mutex::new(None),
    }));
    Ok(())
}

/// Read the directive: no arguments, once per block. The zone is the block's first key.
pub fn parse(c: &mut Setup<'_>) -> Result<Loop, SetupError> {
    while c.next_once(NAME)? {
        if c.next_arg() {
            return Err(SetupError::plugin(NAME, c.arg_err()));
        }
    }
    let zone = c
        .zones()
        .first()
        .map(|z| z.zone.clone())
        .filter(|z| !z.is_empty())
        .unwrap_or_else(|| ".".to_string());
    Ok(Loop::new(&zone))
}

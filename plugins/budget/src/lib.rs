//! # budget
//!
//! The Corefile's side of the process's memory budget ([`ferrodns_plugin::budget`]):
//! `budget SIZE` bounds the bytes of cache entries and the queries in flight of the whole
//! process. The process's `-memory` flag is the other source; the smaller limit wins. The
//! directive adds no handler (so it never takes a query off the fast path); it records its
//! limit in the instance, and the server applies it when the instance starts serving. See
//! README.md.

use ferrodns_plugin::budget::{CorefileLimit, parse_size, register_metrics};
use ferrodns_plugin::{Descriptor, Setup, SetupError};

/// The directive name.
pub const NAME: &str = "budget";

/// The plugin's descriptor for the registry; it registers the `ferrodns_budget_*` families at
/// process start, whether or not a block uses the directive.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup).with_metrics(register_metrics);

fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let mut seen = false;
    while c.next() {
        if seen {
            return Err(SetupError::once(NAME));
        }
        seen = true;
        let args = c.remaining_args();
        let [size] = args.as_slice() else {
            return Err(SetupError::plugin(NAME, c.arg_err()));
        };
        let bytes = parse_size(size).map_err(|e| SetupError::plugin(NAME, c.err(e)))?;
        if bytes == 0 {
            return Err(SetupError::plugin(
                NAME,
                c.err(format_args!("budget must be above 0, got {size:?}")),
            ));
        }
        c.shared().state::<CorefileLimit>().set(bytes);
    }
    Ok(())
}

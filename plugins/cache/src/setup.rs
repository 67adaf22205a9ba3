//! The `cache` directive's setup: its block read into a [`Config`](crate::Config), the metric
//! families registered, and one [`Cache`] added to the server block's chain.

use ferrodns_plugin::{Setup, SetupError};

use crate::metrics::Families;
use crate::{Cache, NAME, config};

/// Set up the `cache` directive of one server block.
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let zones = c.zone_names();
    let cfg = config::parse(c, &zones).map_err(|e| SetupError::plugin(NAME, e))?;
    let families = Families::register(c.metrics());
    let cache = Cache::new(cfg, families);
    c.add_plugin(cache);
    Ok(())
}

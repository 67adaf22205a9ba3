//! The `forward` directive's setup: each stanza read into a [`Config`](crate::Config) and
//! turned into a [`Forward`] with its lifecycle hooks (connection cleanup, shutdown), the
//! metric families registered once for all of them.

use std::sync::{Arc, Mutex};

use ferrodns_plugin::{Setup, SetupError};

use crate::config::{self, MAX_UPSTREAMS};
use crate::metrics::ForwardMetrics;
use crate::{Forward, Hooks, NAME};

/// Set up the `forward` directives of one server block.
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let configs = config::parse_all(c).map_err(|e| SetupError::plugin(NAME, e))?;
    let metrics = ForwardMetrics::register(c.metrics());
    for cfg in configs {
        if cfg.to_entries > MAX_UPSTREAMS {
            return Err(SetupError::plugin(
                NAME,
                format!(
                    "more than {} TOs configured: {}",
                    MAX_UPSTREAMS, cfg.to_entries
                ),
            ));
        }
        let mut f = Forward::new(cfg, metrics.clone()).map_err(|e| SetupError::plugin(NAME, e))?;
        if let Some(taps) = c.block_state::<ferrodns_plugin_dnstap::BlockTaps>() {
            f.set_taps(taps.0.clone());
        }
        let f = Arc::new(f);
        c.add_lifecycle(Arc::new(Hooks {
            forward: f.clone(),
            cleanup: Mutex::new(None),
        }));
        c.add_plugin(f);
    }
    Ok(())
}

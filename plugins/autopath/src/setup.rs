//! Reading the `autopath` directive: `autopath [ZONE...] RESOLV-CONF`.

use std::sync::Arc;

use ferrodns_pkg::names::origins;
use ferrodns_plugin::{Setup, SetupError, on_startup};

use crate::{AutoPath, NAME, Source, resolve, search_from_file};

/// What the directive's lines say.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The zones (the block's when the line names none).
    pub zones: Vec<String>,
    /// The search path of the last resolv.conf named, lowercased and fully qualified, with the
    /// final `""`; empty when no line named a file.
    pub search: Vec<String>,
    /// The plugin of the last `@PLUGIN` line (empty when none).
    pub plugin: String,
}

/// Parse every `autopath` line of the block; as in CoreDNS, each line replaces the zones, a
/// file line the search path and an `@` line the plugin.
pub fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    let block_zones = c.zone_names();
    let mut config = Config::default();
    while c.next() {
        let mut args = c.remaining_args();
        let Some(resolv) = args.pop() else {
            return Err(SetupError::plugin(NAME, "no resolv-conf specified"));
        };
        if let Some(plugin) = resolv.strip_prefix('@') {
            config.plugin = plugin.to_string();
        } else {
            let search = search_from_file(&resolv).map_err(|e| {
                let msg = format!(
                    "failed to parse {}: {e}",
                    ferrodns_go::strconv::quote(&resolv)
                );
                SetupError::plugin(NAME, msg)
            })?;
            config.search = search
                .iter()
                .map(|s| ferrodns_pkg::names::fqdn(s).to_lowercase())
                .collect();
            config.search.push(String::new());
        }
        config.zones = origins(&args, &block_zones);
    }
    Ok(config)
}

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let config = parse(c)?;
    let source = Arc::new(Source::new(c.handles(), config.plugin));
    let check = source.clone();
    c.add_lifecycle(on_startup(move || {
        resolve(&check).map_err(|e| SetupError::plugin(NAME, e))
    }));
    let handler = AutoPath::new(config.zones, config.search, source, c.metrics());
    c.add_plugin(Arc::new(handler));
    Ok(())
}

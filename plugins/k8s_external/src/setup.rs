//! Reading the `k8s_external` directive: `k8s_external [ZONE...] { apex APEX; ttl TTL;
//! headless; fallthrough [ZONE...] }`.

use std::sync::Arc;

use ferrodns_pkg::names::{Fall, origins};
use ferrodns_plugin::{Setup, SetupError, on_startup};

use crate::{External, NAME, Source, resolve};

/// What the directive's lines say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The zones (the block's when the last line names none).
    pub zones: Vec<String>,
    /// `fallthrough [ZONE...]`.
    pub fall: Fall,
    /// The label under which the zone's name servers live (`dns`).
    pub apex: String,
    /// The TTL of the synthesised records (5).
    pub ttl: u32,
    /// Whether headless services' endpoints are served too.
    pub headless: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            zones: Vec::new(),
            fall: Fall::default(),
            apex: "dns".to_string(),
            ttl: 5,
            headless: false,
        }
    }
}

/// Parse every `k8s_external` line of the block: each line replaces the zones, options
/// accumulate.
pub fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    let block_zones = c.zone_names();
    let mut config = Config::default();
    while c.next() {
        config.zones = origins(&c.remaining_args(), &block_zones);
        while c.next_block() {
            match c.val() {
                "ttl" => {
                    let args = c.remaining_args();
                    let Some(arg) = args.first() else {
                        return Err(SetupError::plugin(NAME, c.arg_err()));
                    };
                    let t =
                        ferrodns_go::strconv::atoi(arg).map_err(|e| SetupError::plugin(NAME, e))?;
                    if !(0..=3600).contains(&t) {
                        let msg = format!("ttl must be in range [0, 3600]: {t}");
                        return Err(SetupError::plugin(NAME, c.err(msg)));
                    }
                    config.ttl = u32::try_from(t).unwrap_or(5);
                }
                "apex" => {
                    let args = c.remaining_args();
                    let Some(arg) = args.first() else {
                        return Err(SetupError::plugin(NAME, c.arg_err()));
                    };
                    config.apex = arg.clone();
                }
                "headless" => config.headless = true,
                "fallthrough" => {
                    let zones = c.remaining_args();
                    config.fall.set_from_args(&zones);
                }
                other => {
                    let msg = format!("unknown property '{other}'");
                    return Err(SetupError::plugin(NAME, c.err(msg)));
                }
            }
        }
    }
    Ok(config)
}

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let config = parse(c)?;
    let source = Arc::new(Source::new(c.handles(), "kubernetes"));
    let check = source.clone();
    c.add_lifecycle(on_startup(move || {
        resolve(&check).map_err(|e| SetupError::plugin(NAME, e))
    }));
    c.add_plugin(Arc::new(External::new(config, source)));
    Ok(())
}

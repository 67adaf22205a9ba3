//! Reading the `file` directive from the Corefile (and loading its zone files).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ferrodns_go::os::io_error as go_io_error;
use ferrodns_pkg::names;
use ferrodns_plugin::proto::rr::Name;
use ferrodns_plugin::{Setup, SetupError};
use tokio::sync::watch;

use crate::{
    Config, DEFAULT_RELOAD, Fall, File, NAME, ReloadLifecycle, TARGET, Zone, ZoneData, zone,
};

/// Read the block's `file` lines and load the zone files. Errors are returned without the
/// `plugin/file: ` prefix.
pub fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    let block_zones = c.zone_names();
    let mut zones: Vec<Arc<Zone>> = Vec::new();
    let mut fall = Fall::default();
    let mut open_err: Option<String> = None;
    let mut reload = DEFAULT_RELOAD;
    let mut by_mtime = false;
    while c.next() {
        if !c.next_arg() {
            return Err(c.arg_err());
        }
        let file = c.val().to_string();
        let args = c.remaining_args();
        let origins = names::origins(&args, &block_zones);
        let text = match std::fs::read(&file) {
            Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            Err(e) => {
                open_err = Some(go_io_error("open", &file, &e));
                None
            }
        };
        let mut loaded: Vec<(String, ZoneData)> = Vec::new();
        for o in &origins {
            let name = Name::from_ascii(o).map_err(|e| SetupError::new(e.to_string()))?;
            let data = match (&text, &open_err) {
                (Some(t), None) => zone::parse(t, &name, &file, Some(0))
                    .map_err(|e| SetupError::new(e.to_string()))?,
                _ => ZoneData::empty(name.to_lowercase()),
            };
            loaded.push((o.clone(), data));
        }
        while c.next_block() {
            match c.val() {
                "fallthrough" => {
                    let a = c.remaining_args();
                    fall.set_from_args(&a);
                }
                "reload" => {
                    let t = c.remaining_args();
                    let Some(first) = t.first() else {
                        return Err(SetupError::new("reload duration value is expected"));
                    };
                    use ferrodns_go::time::{DurationError, parse_duration};
                    reload = match parse_duration(first) {
                        Ok(d) => d,
                        // Go accepts a negative period here (and its ticker then panics at
                        // startup); taking it as "no reload" is the closest safe behaviour.
                        Err(DurationError::Negative(_)) => Duration::ZERO,
                        Err(e) => return Err(SetupError::plugin(NAME, e)),
                    };
                }
                "reload_by_mtime" => by_mtime = true,
                "upstream" => {
                    c.remaining_args();
                }
                other => {
                    let msg = format!("unknown property '{other}'");
                    return Err(c.err(msg));
                }
            }
        }
        for (origin, data) in loaded {
            let z = Arc::new(Zone {
                origin: origin.clone(),
                file: file.clone(),
                reload,
                by_mtime,
                data: RwLock::new(Arc::new(data)),
            });
            match zones.iter_mut().find(|x| x.origin == origin) {
                Some(slot) => *slot = z,
                None => zones.push(z),
            }
        }
    }
    if let Some(e) = open_err {
        if reload.is_zero() {
            return Err(SetupError::plugin(NAME, e));
        }
        tracing::warn!(
            target: TARGET,
            "Failed to open {}: trying again in {}",
            ferrodns_go::strconv::quote(&e),
            ferrodns_go::time::format_duration(reload)
        );
    }
    Ok(Config { zones, fall })
}

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg = parse(c).map_err(|e| SetupError::plugin(NAME, e))?;
    let (stop, _) = watch::channel(false);
    c.add_lifecycle(Arc::new(ReloadLifecycle {
        zones: cfg.zones.clone(),
        stop,
    }));
    c.add_plugin(Arc::new(File::new(cfg)));
    Ok(())
}

//! Reading the `hosts` directive from the Corefile.

use std::sync::Arc;

use ferrodns_pkg::names;
use ferrodns_plugin::{Setup, SetupError};
use tokio::sync::watch;

use crate::{
    Config, DEFAULT_PATH, DEFAULT_RELOAD, DEFAULT_TTL, Fall, Hosts, HostsLifecycle, HostsMetrics,
    NAME, TARGET,
};

/// Read the block's `hosts` directive. Errors are returned without the `plugin/hosts: ` prefix
/// (except the once-per-block error, which carries it).
pub fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    let mut cfg = Config {
        path: DEFAULT_PATH.to_string(),
        origins: Vec::new(),
        inline: Vec::new(),
        fall: Fall::default(),
        fall_unsupported: false,
        reverse: true,
        ttl: DEFAULT_TTL,
        reload: DEFAULT_RELOAD,
    };
    let block_zones = c.zone_names();
    while c.next_once(NAME)? {
        let mut args = c.remaining_args();
        if !args.is_empty() {
            cfg.path = args.remove(0);
            match std::fs::metadata(&cfg.path) {
                Ok(m) if m.is_dir() => {
                    tracing::warn!(target: TARGET, "Hosts file {} is a directory", ferrodns_go::strconv::quote(&cfg.path));
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(target: TARGET, "File does not exist: {}", cfg.path);
                }
                Err(e) => {
                    let msg = format!(
                        "unable to access hosts file '{}': {}",
                        cfg.path,
                        ferrodns_go::os::io_error("stat", &cfg.path, &e)
                    );
                    return Err(c.err(msg));
                }
            }
        }
        cfg.origins = names::origins(&args, &block_zones);
        while c.next_block() {
            match c.val() {
                "fallthrough" => {
                    let a = c.remaining_args();
                    cfg.fall.set_from_args(&a);
                }
                "fallthrough_unsupported" => {
                    if !c.remaining_args().is_empty() {
                        return Err(c.arg_err());
                    }
                    cfg.fall_unsupported = true;
                }
                "no_reverse" => cfg.reverse = false,
                "ttl" => {
                    let rest = c.remaining_args();
                    let Some(first) = rest.first() else {
                        return Err(c.err("ttl needs a time in second"));
                    };
                    let Ok(ttl) = ferrodns_go::strconv::atoi(first) else {
                        return Err(c.err("ttl needs a number of second"));
                    };
                    if ttl <= 0 || ttl > 65535 {
                        return Err(c.err("ttl provided is invalid"));
                    }
                    cfg.ttl = ttl as u32;
                }
                "reload" => {
                    let rest = c.remaining_args();
                    if rest.len() != 1 {
                        return Err(c.err("reload needs a duration (zero seconds to disable)"));
                    }
                    use ferrodns_go::time::{DurationError, parse_duration};
                    match parse_duration(&rest[0]) {
                        Ok(d) => cfg.reload = d,
                        Err(DurationError::Negative(_)) => {
                            let msg = format!("invalid negative duration for reload '{}'", rest[0]);
                            return Err(c.err(msg));
                        }
                        Err(_) => {
                            let msg = format!("invalid duration for reload '{}'", rest[0]);
                            return Err(c.err(msg));
                        }
                    }
                }
                other => {
                    if cfg.fall.zones.is_empty() {
                        let mut line = vec![other.to_string()];
                        line.extend(c.remaining_args());
                        cfg.inline.push(line.join(" "));
                        continue;
                    }
                    let msg = format!("unknown property '{other}'");
                    return Err(c.err(msg));
                }
            }
        }
    }
    if cfg.fall_unsupported && cfg.fall.zones.is_empty() {
        return Err(c.err("fallthrough_unsupported requires fallthrough"));
    }
    Ok(cfg)
}

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg = parse(c).map_err(|e| {
        if e.0.starts_with("plugin/") {
            e
        } else {
            SetupError::plugin(NAME, e)
        }
    })?;
    let metrics = HostsMetrics::register(c.metrics());
    let hosts = Hosts::new(cfg, metrics.clone());
    let (stop, _) = watch::channel(false);
    c.add_lifecycle(Arc::new(HostsLifecycle {
        data: hosts.data.clone(),
        metrics,
        reload: hosts.reload,
        stop,
    }));
    c.add_plugin(Arc::new(hosts));
    Ok(())
}

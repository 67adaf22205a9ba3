//! Reading the `health` directive from the Corefile.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrodns_go::time;
use ferrodns_plugin::{Setup, SetupError};

use crate::{Config, DEFAULT_ADDR, Health, HealthMetrics, NAME, PATH, Page, Probe};

/// Read the directive: `health [ADDRESS] { lameduck DURATION }`. Not limited to one per block:
/// as in CoreDNS, a later line's address and lameduck replace an earlier one's.
pub fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    let mut cfg = Config {
        addr: DEFAULT_ADDR.to_string(),
        lameduck: Duration::ZERO,
    };
    while c.next() {
        if let Some(addr) = ferrodns_plugin::address_arg(c, NAME)? {
            cfg.addr = addr;
        }
        while c.next_block() {
            match c.val() {
                "lameduck" => {
                    let args = c.remaining_args();
                    let [value] = args.as_slice() else {
                        return Err(SetupError::plugin(NAME, c.arg_err()));
                    };
                    cfg.lameduck = lameduck(value).map_err(|e| {
                        SetupError::plugin(
                            NAME,
                            format_args!(
                                "unable to parse lameduck duration value: '{value}' : {e}"
                            ),
                        )
                    })?;
                }
                other => {
                    return Err(SetupError::plugin(
                        NAME,
                        c.err(format_args!("unknown property '{other}'")),
                    ));
                }
            }
        }
    }
    Ok(cfg)
}

/// A Go duration; a negative one parses (as in Go) and means no lameduck.
fn lameduck(value: &str) -> Result<Duration, time::DurationError> {
    match time::parse_duration(value) {
        Err(time::DurationError::Negative(_)) => Ok(Duration::ZERO),
        other => other,
    }
}

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg = parse(c)?;
    c.http().route(&cfg.addr, PATH, Arc::new(Page));
    let health = Arc::new(Health {
        probe: Probe::new(&cfg.addr),
        lameduck: cfg.lameduck,
        metrics: HealthMetrics::new(c.metrics()),
        checker: Mutex::new(None),
    });
    c.add_lifecycle(health);
    Ok(())
}

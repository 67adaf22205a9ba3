//! Reading the `pprof` directive from the Corefile.

use std::sync::{Arc, Mutex};

use ferrodns_go::net::split_host_port;
use ferrodns_go::strconv::atoi;
use ferrodns_plugin::{Setup, SetupError};

use crate::{Config, DEFAULT_ADDR, NAME, Pprof};

/// Read the directive: `pprof [ADDRESS] { block [RATE] }`, once per server block. A bad
/// address is Go's `net.SplitHostPort` error at the directive's line; `block` alone means a
/// rate of 1, and any integer Go's `strconv.Atoi` reads is taken (zero or less turns block
/// profiling off, as `runtime.SetBlockProfileRate` does).
pub fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    let mut cfg = Config {
        addr: DEFAULT_ADDR.to_string(),
        block_rate: 0,
    };
    let mut seen = false;
    while c.next() {
        if seen {
            return Err(SetupError::once(NAME));
        }
        seen = true;
        let args = c.remaining_args();
        if let [addr] = args.as_slice() {
            split_host_port(addr).map_err(|e| SetupError::plugin(NAME, c.err(e)))?;
            cfg.addr = addr.clone();
        }
        if args.len() > 1 {
            return Err(SetupError::plugin(NAME, c.arg_err()));
        }
        while c.next_block() {
            match c.val() {
                "block" => {
                    let args = c.remaining_args();
                    if args.len() > 1 {
                        return Err(SetupError::plugin(NAME, c.arg_err()));
                    }
                    cfg.block_rate = 1;
                    if let Some(v) = args.first() {
                        cfg.block_rate = atoi(v).map_err(|_| {
                            SetupError::plugin(
                                NAME,
                                c.err(format_args!("property 'block' invalid integer value '{v}'")),
                            )
                        })?;
                    }
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

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]): the block's
/// own listener opens at startup and closes when the instance stops (or is replaced).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg = parse(c)?;
    c.add_lifecycle(Arc::new(Pprof {
        cfg,
        running: Mutex::new(None),
    }));
    Ok(())
}

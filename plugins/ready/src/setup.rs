//! Reading the `ready` directive from the Corefile.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ferrodns_plugin::{Setup, SetupError};

use crate::{Config, DEFAULT_ADDR, Monitor, NAME, PATH, Page, State, Stopping};

/// Read the directive (once per block): `ready [ADDRESS] { monitor until-ready|continuously }`.
pub fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    let mut cfg = Config {
        addr: DEFAULT_ADDR.to_string(),
        monitor: Monitor::UntilReady,
    };
    while c.next_once(NAME)? {
        if let Some(addr) = ferrodns_plugin::address_arg(c, NAME)? {
            cfg.addr = addr;
        }
        while c.next_block() {
            match c.val() {
                "monitor" => {
                    let args = c.remaining_args();
                    let [kind] = args.as_slice() else {
                        return Err(SetupError::plugin(NAME, c.arg_err()));
                    };
                    cfg.monitor = match kind.as_str() {
                        "until-ready" => Monitor::UntilReady,
                        "continuously" => Monitor::Continuously,
                        other => {
                            return Err(SetupError::plugin(
                                NAME,
                                c.err(format_args!("monitor type '{other}' not supported")),
                            ));
                        }
                    };
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

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg = parse(c)?;
    let state = c.shared().state::<State>();
    state
        .continuously
        .store(cfg.monitor == Monitor::Continuously, Ordering::SeqCst);
    let page = Page {
        plugins: c.shared().readiness.clone(),
        state: state.clone(),
    };
    if c.http().route(&cfg.addr, PATH, Arc::new(page)) {
        c.add_lifecycle(Arc::new(Stopping(state)));
    }
    Ok(())
}

//! Reading the `loadbalance` directive from the Corefile.

use std::sync::Arc;

use ferrodns_go::time::SignedDuration;
use ferrodns_plugin::{Setup, SetupError};

use crate::{
    Config, DEFAULT_RELOAD, LoadBalance, NAME, Policy, Subnet, Weighted, WeightedLifecycle,
};

/// Read the block's `loadbalance` lines. Errors are returned without the `plugin/loadbalance: `
/// prefix.
pub fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    let mut cfg = Config {
        policy: Policy::RoundRobin,
        prefer: Vec::new(),
    };
    while c.next() {
        let args = c.remaining_args();
        match args.first().map(String::as_str) {
            None => cfg.policy = Policy::RoundRobin,
            Some("round_robin") => {
                if args.len() > 1 {
                    return Err(c.err("unknown property for round_robin"));
                }
                cfg.policy = Policy::RoundRobin;
            }
            Some("weighted") => {
                if args.len() < 2 {
                    return Err(c.err("missing weight file argument"));
                }
                if args.len() > 2 {
                    return Err(c.err("unexpected argument(s)"));
                }
                let mut reload = DEFAULT_RELOAD;
                while c.next_block() {
                    match c.val() {
                        "reload" => {
                            let t = c.remaining_args();
                            if t.is_empty() {
                                return Err(c.err("reload duration value is missing"));
                            }
                            if t.len() > 1 {
                                return Err(c.err("unexpected argument"));
                            }
                            reload = SignedDuration::parse(&t[0])
                                .ok()
                                .map(SignedDuration::or_zero)
                                .ok_or_else(|| {
                                    c.err(format_args!("invalid reload duration '{}'", t[0]))
                                })?;
                        }
                        other => {
                            let msg = format!("unknown property '{other}'");
                            return Err(c.err(msg));
                        }
                    }
                }
                // As upstream, choosing `weighted` starts the configuration over (earlier
                // `prefer` subnets are forgotten).
                cfg = Config {
                    policy: Policy::Weighted(Arc::new(Weighted::new(args[1].clone(), reload))),
                    prefer: Vec::new(),
                };
            }
            Some(other) => {
                return Err(SetupError::new(format!("unknown policy: {other}")));
            }
        }
        while c.next_block() {
            match c.val() {
                "prefer" => {
                    for cidr in c.remaining_args() {
                        match Subnet::parse(&cidr) {
                            Ok(s) => cfg.prefer.push(s),
                            Err(e) => {
                                let msg = format!("invalid CIDR \"{cidr}\": {e}");
                                return Err(c.err(msg));
                            }
                        }
                    }
                }
                other => {
                    let msg = format!("unknown property '{other}'");
                    return Err(c.err(msg));
                }
            }
        }
    }
    Ok(cfg)
}

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg = parse(c).map_err(|e| SetupError::plugin(NAME, e))?;
    if let Policy::Weighted(w) = &cfg.policy {
        c.add_lifecycle(Arc::new(WeightedLifecycle::new(w.clone())));
    }
    c.add_plugin(Arc::new(LoadBalance { cfg }));
    Ok(())
}

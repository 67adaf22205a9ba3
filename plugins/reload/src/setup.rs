//! Reading the `reload` directive from the Corefile.

use std::time::Duration;

use ferrodns_go::time::SignedDuration;
use ferrodns_plugin::{Setup, SetupError};

use crate::{Checker, Config, DEFAULT_INTERVAL, DEFAULT_JITTER, NAME, ReloadMetrics};

const MIN_INTERVAL: Duration = Duration::from_secs(2);
const MIN_JITTER: Duration = Duration::from_secs(1);

/// Read the first `reload` line of the block (CoreDNS reads only that one).
pub fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    c.next();
    let args = c.remaining_args();
    if args.len() > 2 {
        return Err(SetupError::plugin(NAME, c.arg_err()));
    }
    let mut interval = DEFAULT_INTERVAL;
    if let Some(a) = args.first() {
        let SignedDuration { abs: d, negative } =
            SignedDuration::parse(a).map_err(|e| SetupError::plugin(NAME, e))?;
        if negative || d < MIN_INTERVAL {
            return Err(SetupError::plugin(
                NAME,
                "interval value must be greater or equal to 2s",
            ));
        }
        interval = d;
    }
    let mut jitter = DEFAULT_JITTER;
    if let Some(a) = args.get(1) {
        let SignedDuration { abs: d, negative } =
            SignedDuration::parse(a).map_err(|e| SetupError::plugin(NAME, e))?;
        if negative || (!d.is_zero() && d < MIN_JITTER) {
            return Err(SetupError::plugin(
                NAME,
                "jitter value must be 0 or greater or equal to 1s",
            ));
        }
        jitter = d;
    }
    jitter = jitter.min(interval / 2);
    Ok(Config { interval, jitter })
}

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg = parse(c)?;
    let checker = c.shared().state::<Checker>();
    // The setting is per process in CoreDNS: the last block's line wins.
    checker.configure(
        cfg.period(),
        c.shared().corefile.clone(),
        c.shared().control.clone(),
        ReloadMetrics::register(c.metrics()),
    );
    if checker.claim() {
        c.add_lifecycle(checker);
    }
    Ok(())
}

//! Reading the `errors` directive from the Corefile.

use std::sync::Arc;

use ferrodns_go::time::SignedDuration;
use ferrodns_plugin::{Setup, SetupError};

use crate::{Config, Consolidate, Errors, Level, MAX_REGEXP_LEN, NAME};

/// Read the block's `errors` directive. Errors are returned without the `plugin/errors: `
/// prefix. `stacktrace` is applied to the block at once.
pub fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    let mut config = Config::default();
    let mut seen = false;
    while c.next() {
        if seen {
            return Err(SetupError::new(
                "this plugin can only be used once per Server Block",
            ));
        }
        seen = true;
        let args = c.remaining_args();
        match args.len() {
            0 => {}
            1 => {
                if args[0] != "stdout" {
                    let msg = format!("invalid log file: {}", args[0]);
                    return Err(c.err(msg));
                }
            }
            _ => return Err(c.arg_err()),
        }
        while c.next_block() {
            match c.val() {
                "stacktrace" => c.set_stacktrace(true),
                "consolidate" => {
                    let p = parse_consolidate(c)?;
                    config.patterns.push(p);
                }
                other => {
                    let expected = format!("Unknown field {other}");
                    return Err(c.syntax_err(&expected));
                }
            }
        }
    }
    Ok(config)
}

fn parse_consolidate(c: &mut Setup<'_>) -> Result<Consolidate, SetupError> {
    let args = c.remaining_args();
    if args.len() < 2 || args.len() > 4 {
        return Err(c.arg_err());
    }
    let period = SignedDuration::parse(&args[0]).map_err(|e| c.err(e.to_string()))?;
    let pattern = args[1].clone();
    if pattern.len() > MAX_REGEXP_LEN {
        let msg = format!(
            "regex pattern too long: {} > {}",
            pattern.len(),
            MAX_REGEXP_LEN
        );
        return Err(c.err(msg));
    }
    let regex = ferrodns_go::regexp::compile(&pattern).map_err(|e| c.err(e))?;
    let mut level = None;
    let mut show_first = false;
    for arg in &args[2..] {
        if let Some(l) = Level::parse(arg) {
            if level.is_some() {
                return Err(c.err("multiple log levels specified in consolidate"));
            }
            if show_first {
                return Err(c.err("log level must come before show_first in consolidate"));
            }
            level = Some(l);
        } else if arg == "show_first" {
            show_first = true;
        } else {
            let msg = format!("unknown option in consolidate: {arg}");
            return Err(c.err(msg));
        }
    }
    Ok(Consolidate {
        period,
        pattern,
        regex,
        level: level.unwrap_or(Level::Error),
        show_first,
    })
}

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let config = parse(c).map_err(|e| SetupError::plugin(NAME, e))?;
    let handler = Errors::new(config);
    c.add_lifecycle(handler.shutdown_hook());
    c.add_plugin(Arc::new(handler));
    Ok(())
}

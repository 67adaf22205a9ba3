//! Reading the `greet` directive from the Corefile.
//!
//! The server calls [`setup`] once per server block that uses `greet`, with every token of the
//! directive in that block. Errors name the Corefile and line of the token they are about,
//! through the dispenser's `err` and `arg_err`, and carry CoreDNS's `plugin/greet: ` prefix.

use std::sync::Arc;

use ferrodns_pkg::names;
use ferrodns_plugin::{Setup, SetupError};

use crate::{Config, Greet, MAX_TEXT_LEN, MAX_TTL, NAME};

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]): read the
/// configuration, then add one handler to the block's chain.
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let config = parse(c)?;
    let greet = Greet::new(config, c.metrics());
    c.add_plugin(Arc::new(greet));
    Ok(())
}

/// Read the block's `greet` line: `greet [ZONES...] { text TEXT; ttl SECONDS; fallthrough
/// [ZONES...] }`.
fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    let block_zones = c.zone_names();
    let mut config = Config::new(Vec::new());
    // `next_once` loads the directive's name, and fails on a second `greet` line in the block.
    while c.next_once(NAME)? {
        // Zones given on the line are normalised (lower case, fully qualified, a CIDR turned
        // into its reverse zones); without any, the block's own zones are the plugin's.
        let args = c.remaining_args();
        config.zones = names::origins(&args, &block_zones);
        while c.next_block() {
            match c.val() {
                "text" => {
                    let text = one_arg(c)?;
                    if text.len() > MAX_TEXT_LEN {
                        let msg = format!(
                            "text is {} bytes long, at most {MAX_TEXT_LEN} fit in the answer",
                            text.len()
                        );
                        return Err(error(c, msg));
                    }
                    config.text = text;
                }
                "ttl" => {
                    let value = one_arg(c)?;
                    match value.parse::<u32>() {
                        Ok(ttl) if ttl <= MAX_TTL => config.ttl = ttl,
                        _ => {
                            let msg = format!(
                                "ttl needs a whole number of seconds from 0 to {MAX_TTL}, got '{value}'"
                            );
                            return Err(error(c, msg));
                        }
                    }
                }
                "fallthrough" => {
                    // No zones means every name (the root zone).
                    let zones = c.remaining_args();
                    config.fall.set_from_args(&zones);
                }
                other => {
                    let msg = format!("unknown property '{other}'");
                    return Err(error(c, msg));
                }
            }
        }
    }
    Ok(config)
}

/// The single argument of a block property, or the argument-count error CoreDNS gives for a
/// property with none or several.
fn one_arg(c: &mut Setup<'_>) -> Result<String, SetupError> {
    if !c.next_arg() {
        return Err(SetupError::plugin(NAME, c.arg_err()));
    }
    let value = c.val().to_string();
    if c.next_arg() {
        return Err(SetupError::plugin(NAME, c.arg_err()));
    }
    Ok(value)
}

/// `plugin/greet: <file>:<line> - Error during parsing: <msg>` for the current token.
fn error(c: &Setup<'_>, msg: String) -> SetupError {
    SetupError::plugin(NAME, c.err(msg))
}

//! Reading the `dns64` directive from the Corefile ([`parse`] is public for tests).

use std::sync::Arc;

use ferrodns_plugin::{Setup, SetupError};

use crate::{Config, Dns64, NAME, prefix};

/// Read the block's `dns64` lines: `dns64 [PREFIX]` or `dns64 { prefix PREFIX; translate_all;
/// allow_ipv4 }`; every line is read, a later prefix replaces an earlier one. Errors are
/// returned without the `plugin/dns64: ` prefix.
pub fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    let mut cfg = Config::default();
    while c.next() {
        let args = c.remaining_args();
        if let [one] = args.as_slice() {
            cfg.prefix = parse_prefix(c, one)?;
            // As upstream, a block after a prefix argument is not read.
            continue;
        }
        if !args.is_empty() {
            return Err(c.arg_err());
        }
        while c.next_block() {
            match c.val() {
                "prefix" => {
                    if !c.next_arg() {
                        return Err(c.arg_err());
                    }
                    let text = c.val().to_string();
                    cfg.prefix = parse_prefix(c, &text)?;
                }
                "translate_all" => cfg.translate_all = true,
                "allow_ipv4" => cfg.allow_ipv4 = true,
                other => {
                    let msg = format!("unknown property '{other}'");
                    return Err(c.err(msg));
                }
            }
        }
    }
    Ok(cfg)
}

/// A prefix, with the Corefile position for CoreDNS's own checks.
fn parse_prefix(c: &Setup<'_>, text: &str) -> Result<prefix::Prefix, SetupError> {
    prefix::parse(text).map_err(|e| {
        if e.has_position() {
            c.err(e)
        } else {
            SetupError::new(e.to_string())
        }
    })
}

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg = parse(c).map_err(|e| SetupError::plugin(NAME, e))?;
    let handler = Dns64::new(cfg, c.metrics());
    c.add_plugin(Arc::new(handler));
    Ok(())
}

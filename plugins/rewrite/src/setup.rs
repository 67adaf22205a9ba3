//! Reading the `rewrite` lines of a server block into rules, and adding the handler.

use std::sync::Arc;

use ferrodns_plugin::{Setup, SetupError};

use crate::{NAME, Rewrite, Rule, new_rule};

/// Read the rules of every `rewrite` line (CoreDNS's `rewriteParse`).
pub fn parse(c: &mut Setup<'_>) -> Result<Vec<Rule>, SetupError> {
    let mut out = Vec::new();
    while c.next() {
        let mut args = c.remaining_args();
        if args.len() < 2 {
            // A block: its tokens, every line, make one rule.
            while c.next_block() {
                args.push(c.val().to_string());
            }
        }
        out.push(new_rule(&args).map_err(|e| SetupError::plugin(NAME, e))?);
    }
    Ok(out)
}

/// Read the block's `rewrite` lines and add the handler to the chain.
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let rules = parse(c)?;
    c.add_plugin(Arc::new(Rewrite::new(rules)));
    Ok(())
}

//! Reading the `log` directive from the Corefile.

use std::collections::BTreeSet;
use std::sync::Arc;

use ferrodns_plugin::{Dispenser, Setup, SetupError};

use crate::{
    COMBINED_LOG_FORMAT, COMMON_LOG_FORMAT, Class, DEFAULT_LOG_FORMAT, Logger, NAME, Rule,
};

/// Read every `log` line of a block into rules, in order. Errors are returned without the
/// `plugin/log: ` prefix.
pub fn parse(c: &mut Dispenser) -> Result<Vec<Rule>, SetupError> {
    let mut rules: Vec<Rule> = Vec::new();
    while c.next() {
        let mut args = c.remaining_args();
        let first_of_line = rules.len();
        match args.len() {
            0 => rules.push(Rule::new(".".to_string(), DEFAULT_LOG_FORMAT)),
            // A single argument is always a name, even when it holds a brace.
            1 => rules.push(Rule::new(
                ferrodns_plugin::corefile::fqdn(&args[0]),
                DEFAULT_LOG_FORMAT,
            )),
            _ => {
                let mut format = DEFAULT_LOG_FORMAT.to_string();
                if args.last().is_some_and(|a| a.contains('{'))
                    && let Some(last) = args.pop()
                {
                    format = last
                        .replace("{common}", COMMON_LOG_FORMAT)
                        .replace("{combined}", COMBINED_LOG_FORMAT);
                }
                for name in &args {
                    rules.push(Rule::new(ferrodns_plugin::corefile::fqdn(name), &format));
                }
            }
        }

        let mut classes = BTreeSet::new();
        while c.next_block() {
            match c.val() {
                "class" => {
                    let names = c.remaining_args();
                    if names.is_empty() {
                        return Err(c.arg_err());
                    }
                    for name in names {
                        classes.insert(Class::parse(&name).map_err(SetupError::new)?);
                    }
                }
                other => {
                    let msg = format!("unknown property '{other}'");
                    return Err(c.err(msg));
                }
            }
        }
        if classes.is_empty() {
            classes.insert(Class::All);
        }
        for rule in &mut rules[first_of_line..] {
            rule.classes = classes.clone();
        }
    }
    Ok(rules)
}

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let rules = parse(c).map_err(|e| SetupError::plugin(NAME, e))?;
    c.add_plugin(Arc::new(Logger::new(rules)));
    Ok(())
}

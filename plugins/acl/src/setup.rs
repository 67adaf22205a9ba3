//! Reading the `acl` directives of a server block.

use std::collections::BTreeSet;
use std::sync::Arc;

use ferrodns_go::strconv::quote;
use ferrodns_pkg::{names, text};
use ferrodns_plugin::{Setup, SetupError};

use crate::source::{Network, with_length};
use crate::{ANY_TYPE, Acl, Action, Families, NAME, Policy, Rule};

/// Whether a token opens a section of a policy line (`type` or `net`, any case).
fn is_section(token: &str) -> bool {
    let t = token.to_lowercase();
    t == "type" || t == "net"
}

/// The action a policy line starts with, any case.
fn action(token: &str) -> Option<Action> {
    match token.to_lowercase().as_str() {
        "allow" => Some(Action::Allow),
        "block" => Some(Action::Block),
        "filter" => Some(Action::Filter),
        "drop" => Some(Action::Drop),
        _ => None,
    }
}

/// Read one policy line; the cursor is on its action.
fn policy(c: &mut Setup<'_>) -> Result<Policy, SetupError> {
    let Some(action) = action(c.val()) else {
        let msg = format!(
            "unexpected token {}; expect 'allow', 'block', 'filter' or 'drop'",
            quote(c.val())
        );
        return Err(c.err(msg));
    };
    let mut qtypes = BTreeSet::new();
    let mut sources: Vec<Network> = Vec::new();
    let (mut has_type, mut has_net) = (false, false);
    let rest = c.remaining_args();
    let mut i = 0;
    while i < rest.len() {
        if !is_section(&rest[i]) {
            let msg = format!("unexpected token {}; expect 'type | net'", quote(&rest[i]));
            return Err(c.err(msg));
        }
        let section = rest[i].to_lowercase();
        let start = i + 1;
        i = start;
        while i < rest.len() && !is_section(&rest[i]) {
            i += 1;
        }
        let tokens = &rest[start..i];
        if tokens.is_empty() {
            let msg = format!("no token specified in {} section", quote(&section));
            return Err(c.err(msg));
        }
        if section == "type" {
            has_type = true;
            for t in tokens {
                // As in CoreDNS, `*` ends the list: what follows it is not looked at.
                if t == "*" {
                    qtypes.insert(ANY_TYPE);
                    break;
                }
                let Some(qtype) = text::type_from_str(t) else {
                    let msg = format!("unexpected token {}; expect legal QTYPE", quote(t));
                    return Err(c.err(msg));
                };
                qtypes.insert(qtype);
            }
        } else {
            has_net = true;
            for t in tokens {
                if t == "*" {
                    sources = Policy::every_source();
                    break;
                }
                let cidr = with_length(t);
                let Some(n) = Network::parse(&cidr) else {
                    let msg = format!("illegal CIDR notation {}", quote(&cidr));
                    return Err(c.err(msg));
                };
                sources.push(n);
            }
        }
    }
    if !has_type {
        qtypes.insert(ANY_TYPE);
    }
    if !has_net {
        sources = Policy::every_source();
    }
    Ok(Policy {
        action,
        qtypes,
        sources,
    })
}

/// Read every `acl` line of the block, one rule each, in order. Errors come without the
/// `plugin/acl: ` prefix that [`setup`] adds.
pub fn parse(c: &mut Setup<'_>) -> Result<Vec<Rule>, SetupError> {
    let block_zones = c.zone_names();
    let mut rules = Vec::new();
    while c.next() {
        let args = c.remaining_args();
        let zones = names::origins(&args, &block_zones);
        let mut policies = Vec::new();
        while c.next_block() {
            policies.push(policy(c)?);
        }
        rules.push(Rule { zones, policies });
    }
    Ok(rules)
}

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let rules = parse(c).map_err(|e| SetupError::plugin(NAME, e))?;
    let metrics = Families::register(c.metrics());
    c.add_plugin(Arc::new(Acl::new(rules, metrics)));
    Ok(())
}

//! `type` rules: the question type replaced by another.

use ferrodns_plugin::Request;

use super::{Kind, Outcome};
use crate::names::type_from_str;

/// Parse a `type FROM TO` rule's arguments (after the field name).
pub(super) fn new_type_rule(args: &[String]) -> Result<Kind, String> {
    if args.len() != 2 {
        return Err("type rules must have exactly two arguments".into());
    }
    let from = args[0].to_uppercase();
    let to = args[1].to_uppercase();
    let f = type_from_str(&from).ok_or_else(|| format!("invalid type {from:?}"))?;
    let t = type_from_str(&to).ok_or_else(|| format!("invalid type {to:?}"))?;
    Ok(Kind::Type(f, t))
}

/// Set the question type to `to` when it is `from`.
pub(super) fn apply(from: u16, to: u16, req: &mut Request) -> Outcome {
    if from > 0 && to > 0 && u16::from(req.qtype()) == from {
        if let Some(q) = req.message_mut().queries.first_mut() {
            q.set_query_type(to.into());
        }
        return Outcome::Done(Vec::new());
    }
    Outcome::Ignored
}

//! `class` rules: the question class replaced by another.

use ferrodns_plugin::Request;

use super::{Kind, Outcome};
use crate::names::class_from_str;

/// Parse a `class FROM TO` rule's arguments (after the field name).
pub(super) fn new_class_rule(args: &[String]) -> Result<Kind, String> {
    if args.len() != 2 {
        return Err("class rules must have exactly two arguments".into());
    }
    let from = args[0].to_uppercase();
    let to = args[1].to_uppercase();
    let f = class_from_str(&from).ok_or_else(|| format!("invalid class {from:?}"))?;
    let t = class_from_str(&to).ok_or_else(|| format!("invalid class {to:?}"))?;
    Ok(Kind::Class(f, t))
}

/// Set the question class to `to` when it is `from`.
pub(super) fn apply(from: u16, to: u16, req: &mut Request) -> Outcome {
    if from > 0 && to > 0 && u16::from(req.qclass()) == from {
        if let Some(q) = req.message_mut().queries.first_mut() {
            q.set_query_class(to.into());
        }
        return Outcome::Done(Vec::new());
    }
    Outcome::Ignored
}

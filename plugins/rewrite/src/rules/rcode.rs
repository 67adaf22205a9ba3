//! `rcode` rules: the reply's response code, for matching question names, replaced by another.

use super::{Kind, Matcher, Outcome, ResponseRule, matcher_for};
use crate::names::{normalize, rcode_from_str};

fn valid_rcode(v: &str) -> Option<u16> {
    if let Ok(i) = ferrodns_go::strconv::parse_uint(v, 10, 32)
        && i <= 23
    {
        return Some(i as u16);
    }
    rcode_from_str(&v.to_uppercase())
}

/// Parse an `rcode` rule's arguments (after the field name; CoreDNS's `newRCodeRule`).
pub(super) fn new_rcode_rule(args: &[String]) -> Result<Kind, String> {
    if args.len() < 3 {
        return Err(format!(
            "too few ({}) arguments for a rcode rule",
            args.len()
        ));
    }
    let (old_s, new_s) = match args.len() {
        3 => (args[1].as_str(), args[2].as_str()),
        4 => (args[2].as_str(), args[3].as_str()),
        _ => ("", ""),
    };
    let old = valid_rcode(old_s)
        .ok_or_else(|| format!("invalid matching RCODE '{old_s}' for a rcode rule"))?;
    let new = valid_rcode(new_s)
        .ok_or_else(|| format!("invalid replacement RCODE '{new_s}' for a rcode rule"))?;
    if args.len() == 4 {
        return Ok(Kind::Rcode(
            matcher_for(&args[0], &args[1], "rcode")?,
            old,
            new,
        ));
    }
    if args.len() > 4 {
        return Err("many few arguments for a rcode rule".into());
    }
    Ok(Kind::Rcode(Matcher::Exact(normalize(&args[0])), old, new))
}

/// Replace the reply's rcode `old` with `new` when the question name matches.
pub(super) fn apply(m: &Matcher, old: u16, new: u16, name: &str) -> Outcome {
    if m.matches(name) {
        Outcome::Done(vec![ResponseRule::Rcode(old, new)])
    } else {
        Outcome::Ignored
    }
}

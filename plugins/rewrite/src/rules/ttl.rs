//! `ttl` rules: the TTLs of the reply's records, for matching question names, clamped into a
//! range.

use super::{Kind, Matcher, Outcome, ResponseRule, matcher_for};
use crate::names::normalize;

/// Go's `strings.Split(v, "-")` based TTL range check.
fn valid_ttl(v: &str) -> Option<(u32, u32)> {
    let parts: Vec<&str> = v.split('-').collect();
    let p = |s: &str| {
        ferrodns_go::strconv::parse_uint(s, 10, 32)
            .ok()
            .map(|x| x as u32)
    };
    match parts.as_slice() {
        [one] => p(one).map(|x| (x, x)),
        [a, b] => {
            let min = if a.is_empty() { 0 } else { p(a)? };
            let max = if b.is_empty() {
                if a.is_empty() {
                    return None;
                }
                2_147_483_647
            } else {
                p(b)?
            };
            (min <= max).then_some((min, max))
        }
        _ => None,
    }
}

/// Parse a `ttl` rule's arguments (after the field name; CoreDNS's `newTTLRule`).
pub(super) fn new_ttl_rule(args: &[String]) -> Result<Kind, String> {
    if args.len() < 2 {
        return Err(format!("too few ({}) arguments for a ttl rule", args.len()));
    }
    let s = match args.len() {
        2 => args[1].as_str(),
        3 => args[2].as_str(),
        _ => "",
    };
    let (min, max) = valid_ttl(s).ok_or_else(|| format!("invalid TTL '{s}' for a ttl rule"))?;
    if args.len() == 3 {
        return Ok(Kind::Ttl(matcher_for(&args[0], &args[1], "ttl")?, min, max));
    }
    if args.len() > 3 {
        return Err("many few arguments for a ttl rule".into());
    }
    Ok(Kind::Ttl(Matcher::Exact(normalize(&args[0])), min, max))
}

/// Clamp the reply's TTLs into `min..=max` when the question name matches.
pub(super) fn apply(m: &Matcher, min: u32, max: u32, name: &str) -> Outcome {
    if m.matches(name) {
        Outcome::Done(vec![ResponseRule::Ttl(min, max)])
    } else {
        Outcome::Ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_ranges() {
        assert_eq!(valid_ttl("10"), Some((10, 10)));
        assert_eq!(valid_ttl("10-20"), Some((10, 20)));
        assert_eq!(valid_ttl("-20"), Some((0, 20)));
        assert_eq!(valid_ttl("10-"), Some((10, 2_147_483_647)));
        assert_eq!(valid_ttl("-"), None);
        assert_eq!(valid_ttl("20-10"), None);
        assert_eq!(valid_ttl("1-2-3"), None);
        assert_eq!(valid_ttl("x"), None);
    }
}

//! `cname` rules: CNAME targets in the reply rewritten (exactly, by prefix, suffix, substring or
//! regular expression) and the new target resolved.

use ferrodns_go::regexp::Regex;
use ferrodns_plugin::Request;

use super::{MAX_REGEXP_LEN, Outcome, ResponseRule, compile_captures, expand_groups};
use crate::names::normalize;

/// A CNAME target rule.
#[derive(Debug, Clone)]
pub struct CnameRule {
    kind: CnameKind,
    from: String,
    to: String,
}

#[derive(Debug, Clone)]
enum CnameKind {
    Exact,
    Prefix,
    Suffix,
    Substring,
    Regex(Regex),
}

impl CnameRule {
    /// Try the rule on the request: the reply rule, with the question's type for the lookup of
    /// the new target.
    pub(super) fn apply(&self, req: &Request) -> Outcome {
        if self.from.is_empty() || self.to.is_empty() {
            return Outcome::Ignored;
        }
        Outcome::Done(vec![ResponseRule::Cname(
            self.clone(),
            u16::from(req.qtype()),
        )])
    }

    /// The target to look for and its replacement, for a CNAME target `target`.
    pub fn targets(&self, target: &str) -> Option<(String, String)> {
        match &self.kind {
            CnameKind::Exact => Some((self.from.clone(), self.to.clone())),
            CnameKind::Prefix => target
                .strip_prefix(self.from.as_str())
                .map(|after| (target.to_string(), format!("{}{after}", self.to))),
            CnameKind::Suffix => target
                .strip_suffix(self.from.as_str())
                .map(|before| (target.to_string(), format!("{before}{}", self.to))),
            CnameKind::Substring => target
                .contains(self.from.as_str())
                .then(|| (target.to_string(), target.replace(&self.from, &self.to))),
            CnameKind::Regex(re) => {
                expand_groups(re, target, &self.to).map(|s| (target.to_string(), s))
            }
        }
    }
}

/// Parse a `cname` rule's arguments (after the field name; CoreDNS's `newCNAMERule`).
pub(super) fn new_cname_rule(args: &[String]) -> Result<CnameRule, String> {
    let (kind_s, mut from, mut to) = match args.len() {
        3 => {
            let k = args[0].to_lowercase();
            if !matches!(
                k.as_str(),
                "exact" | "prefix" | "suffix" | "substring" | "regex"
            ) {
                return Err(format!("unknown cname rewrite type: {k}"));
            }
            (k, args[1].to_lowercase(), args[2].to_lowercase())
        }
        2 => (
            "exact".to_string(),
            args[0].to_lowercase(),
            args[1].to_lowercase(),
        ),
        n => return Err(format!("too few ({n}) arguments for a cname rule")),
    };
    if kind_s == "exact" {
        from = normalize(&from);
        to = normalize(&to);
    }
    let kind = match kind_s.as_str() {
        "exact" => CnameKind::Exact,
        "prefix" => CnameKind::Prefix,
        "suffix" => CnameKind::Suffix,
        "substring" => CnameKind::Substring,
        _ => {
            if from.len() > MAX_REGEXP_LEN {
                return Err(format!(
                    "regex pattern too long in a cname rule: {} > {MAX_REGEXP_LEN}",
                    from.len()
                ));
            }
            let re = compile_captures(&from)
                .map_err(|e| format!("invalid cname rewrite regex pattern: {e}"))?;
            CnameKind::Regex(re)
        }
    };
    Ok(CnameRule { kind, from, to })
}

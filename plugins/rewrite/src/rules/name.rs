//! `name` rules: the question name matched exactly, by prefix, suffix, substring or regular
//! expression and replaced, with the `answer auto|name|value` rules for the reply.

use ferrodns_go::regexp::Regex;

use super::{
    MAX_REGEXP_LEN, Matcher, ResponseRule, StringRewriter, compile_captures, expand_groups,
};
use crate::names::normalize;

/// A name rule.
#[derive(Debug, Clone)]
pub struct NameRule {
    matcher: Matcher,
    replacement: String,
    auto: bool,
    fixed: Vec<ResponseRule>,
}

fn sub_expr_usage(s: &str) -> usize {
    (0..=100)
        .filter(|i| s.contains(&format!("{{{i}}}")))
        .count()
}

fn valid_regex(from: &str, to: &str) -> Result<Regex, String> {
    if from.len() > MAX_REGEXP_LEN {
        return Err(format!(
            "regex pattern too long: {} > {MAX_REGEXP_LEN}",
            from.len()
        ));
    }
    let re =
        compile_captures(from).map_err(|_| format!("invalid regex matching pattern: {from}"))?;
    if sub_expr_usage(to) > re.captures_len() - 1 {
        return Err(format!(
            "the rewrite regex pattern ({to}) uses more subexpressions than its corresponding matching regex pattern ({from})"
        ));
    }
    Ok(re)
}

/// Parse a `name` rule's arguments (after the field name; CoreDNS's `newNameRule`).
pub(super) fn new_name_rule(args: &[String]) -> Result<NameRule, String> {
    if args.len() < 2 {
        return Err("too few arguments for a name rule".into());
    }
    let (match_type, mut from, mut to) = if args.len() == 2 {
        (
            "exact".to_string(),
            normalize(&args[0]),
            normalize(&args[1]),
        )
    } else {
        let mt = args[0].to_lowercase();
        if mt == "regex" {
            (mt, args[1].clone(), args[2].clone())
        } else {
            let (f, t) = (normalize(&args[1]), normalize(&args[2]));
            (mt, f, t)
        }
    };
    if match_type == "exact" || match_type == "suffix" {
        if !from.ends_with('.') {
            from.push('.');
        }
        if !to.ends_with('.') {
            to.push('.');
        }
    }
    let mut auto = false;
    let mut answers = Vec::new();
    if args.len() > 3 {
        let (a, r) = parse_answer_rules(&match_type, &args[3..])?;
        auto = a;
        answers = r;
    }
    match match_type.as_str() {
        "exact" => {
            // CoreDNS checks the replacement as a pattern here (its arguments are swapped).
            valid_regex(&to, &from)?;
            Ok(NameRule {
                matcher: Matcher::Exact(from),
                replacement: to,
                auto: true,
                fixed: answers,
            })
        }
        "prefix" => Ok(NameRule {
            matcher: Matcher::Prefix(from),
            replacement: to,
            auto,
            fixed: answers,
        }),
        "suffix" => {
            let mut fixed = Vec::new();
            if auto {
                let rw = StringRewriter::Suffix(to.clone(), from.clone());
                fixed.push(ResponseRule::Name(rw.clone()));
                fixed.push(ResponseRule::Value(rw));
            }
            fixed.extend(answers);
            Ok(NameRule {
                matcher: Matcher::Suffix(from),
                replacement: to,
                auto: false,
                fixed,
            })
        }
        "substring" => Ok(NameRule {
            matcher: Matcher::Substring(from),
            replacement: to,
            auto,
            fixed: answers,
        }),
        "regex" => {
            let re = valid_regex(&from, &to)?;
            Ok(NameRule {
                matcher: Matcher::Regex(re),
                replacement: normalize(&args[2]),
                auto,
                fixed: answers,
            })
        }
        other => Err(format!(
            "name rule supports only exact, prefix, suffix, substring, and regex name matching, received: {other}"
        )),
    }
}

fn parse_answer_rules(name: &str, args: &[String]) -> Result<(bool, Vec<ResponseRule>), String> {
    let mut auto = false;
    let mut rules = Vec::new();
    let mut arg = 0;
    let mut name_rules = 0;
    let mut last = String::new();
    if args.len() < 2 {
        return Err(format!("invalid arguments for {name} rule"));
    }
    while arg < args.len() {
        if last.is_empty() && args[arg] != "answer" {
            return Err(format!(
                "exceeded the number of arguments for a non-answer rule argument for {name} rule"
            ));
        }
        if args[arg] == "answer" {
            arg += 1;
        }
        if args.len() == arg {
            return Err(format!("type missing for answer rule for {name} rule"));
        }
        last = args[arg].clone();
        arg += 1;
        match last.as_str() {
            "auto" => auto = true,
            "name" | "value" => {
                if args.len() - arg < 2 {
                    return Err(format!(
                        "{last} answer rule for {name} rule: 2 arguments required"
                    ));
                }
                let from = &args[arg];
                let to = &args[arg + 1];
                let re = valid_regex(from, to)
                    .map_err(|e| format!("{last} answer rule for {name} rule: {e}"))?;
                let rw = StringRewriter::Regex(re, normalize(to));
                if last == "name" {
                    rules.push(ResponseRule::Name(rw));
                    name_rules += 1;
                } else {
                    rules.push(ResponseRule::Value(rw));
                }
                arg += 2;
            }
            _ => {
                return Err(format!(
                    "invalid type {} for answer rule for {name} rule",
                    ferrodns_go::strconv::quote(&last)
                ));
            }
        }
    }
    if auto && name_rules > 0 {
        return Err(
            "auto name answer rule cannot be combined with explicit name anwer rules".into(),
        );
    }
    Ok((auto, rules))
}

impl NameRule {
    /// The new question name and the reply rules, when the rule matches `name`.
    pub(super) fn apply(&self, name: &str) -> Option<(String, Vec<ResponseRule>)> {
        let new = match &self.matcher {
            Matcher::Exact(from) => (name == from).then(|| self.replacement.clone())?,
            Matcher::Prefix(p) => format!("{}{}", self.replacement, name.strip_prefix(p.as_str())?),
            Matcher::Suffix(s) => format!("{}{}", name.strip_suffix(s.as_str())?, self.replacement),
            Matcher::Substring(s) => {
                if !name.contains(s.as_str()) {
                    return None;
                }
                name.replace(s.as_str(), &self.replacement)
            }
            Matcher::Regex(re) => expand_groups(re, name, &self.replacement)?,
        };
        let mut resp = Vec::new();
        if self.auto {
            let rw = StringRewriter::Remap(new.clone(), name.to_string());
            resp.push(ResponseRule::Name(rw.clone()));
            resp.push(ResponseRule::Value(rw));
        }
        resp.extend(self.fixed.iter().cloned());
        Some((new, resp))
    }
}

//! The rewrite rules: how each is read from its arguments and what it does to a request.

use std::net::IpAddr;

use ferrodns_go::regexp::{self, Regex};
use ferrodns_plugin::proto::op::Edns;
use ferrodns_plugin::proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use ferrodns_plugin::{Request, edns};

use crate::names::{class_from_str, normalize, rcode_from_str, type_from_str};

/// The longest regular expression CoreDNS compiles.
const MAX_REGEXP_LEN: usize = 10000;

/// What happens after a rule matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// End rule processing (the default).
    Stop,
    /// Try the next rules too.
    Continue,
}

/// How a string is mapped (question names, record names and values).
#[derive(Debug, Clone)]
pub enum StringRewriter {
    /// A regular expression with `{n}` group references in the replacement.
    Regex(Regex, String),
    /// A name and its subdomains mapped to another name.
    Remap(String, String),
    /// A suffix replaced by another.
    Suffix(String, String),
}

/// Compile a Go regular expression keeping its capture groups: Go decides whether it is valid
/// (and the error text); the `regex` crate reading the pattern as written provides the groups.
/// `ferrodns_go::regexp` drops capture groups in its translation, so it is the fallback
/// only for patterns the `regex` crate reads differently.
pub fn compile_captures(pattern: &str) -> Result<Regex, String> {
    let checked = regexp::compile(pattern)?;
    Ok(Regex::new(pattern).unwrap_or(checked))
}

/// Replace `{n}` in `template` with the groups of the first match of `re` in `src`; `None` when
/// there is no match.
fn expand_groups(re: &Regex, src: &str, template: &str) -> Option<String> {
    let caps = re.captures(src)?;
    let mut s = template.to_string();
    for i in 0..caps.len() {
        let v = caps.get(i).map(|m| m.as_str()).unwrap_or("");
        s = s.replace(&format!("{{{i}}}"), v);
    }
    Some(s)
}

impl StringRewriter {
    /// The mapped string (the input when nothing applies).
    pub fn rewrite(&self, src: &str) -> String {
        match self {
            StringRewriter::Regex(re, repl) => {
                expand_groups(re, src, repl).unwrap_or_else(|| src.to_string())
            }
            StringRewriter::Remap(orig, repl) => {
                if src == orig {
                    repl.clone()
                } else if src.ends_with(&format!(".{orig}")) {
                    format!("{}{}", &src[..src.len() - orig.len()], repl)
                } else {
                    src.to_string()
                }
            }
            StringRewriter::Suffix(suffix, repl) => match src.strip_suffix(suffix.as_str()) {
                Some(before) => format!("{before}{repl}"),
                None => src.to_string(),
            },
        }
    }
}

/// A rule applied to the reply (in reverse order of the request rules that produced it).
#[derive(Debug, Clone)]
pub enum ResponseRule {
    /// Rewrite record owner names.
    Name(StringRewriter),
    /// Rewrite the name in the record data (SRV, MX, CNAME, NS, DNAME, NAPTR, SOA, PTR).
    Value(StringRewriter),
    /// Clamp TTLs into a range.
    Ttl(u32, u32),
    /// Replace one rcode with another.
    Rcode(u16, u16),
    /// Remove the option with this code that the request rule added.
    EdnsSet(u16),
    /// Put back the option the request rule replaced.
    EdnsReplace(u16, EdnsCode, EdnsOption),
    /// Rewrite a CNAME target and resolve the new target.
    Cname(CnameRule, u16),
}

/// How a name is matched.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// The whole name.
    Exact(String),
    /// The start of the name.
    Prefix(String),
    /// The end of the name.
    Suffix(String),
    /// Anywhere in the name.
    Substring(String),
    /// A regular expression.
    Regex(Regex),
}

impl Matcher {
    fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Exact(s) => name == s,
            Matcher::Prefix(s) => name.starts_with(s.as_str()),
            Matcher::Suffix(s) => name.ends_with(s.as_str()),
            Matcher::Substring(s) => name.contains(s.as_str()),
            Matcher::Regex(re) => re.is_match(name),
        }
    }
}

/// A name rule.
#[derive(Debug, Clone)]
pub struct NameRule {
    matcher: Matcher,
    replacement: String,
    auto: bool,
    fixed: Vec<ResponseRule>,
}

/// The EDNS0 action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Replace or add.
    Set,
    /// Add when missing.
    Append,
    /// Replace when present.
    Replace,
    /// Remove.
    Unset,
}

/// What an EDNS0 local option carries.
#[derive(Debug, Clone)]
pub enum LocalData {
    /// Fixed bytes.
    Bytes(Vec<u8>),
    /// A `{variable}` filled from the request.
    Variable(String),
}

/// An EDNS0 rule.
#[derive(Debug, Clone)]
pub enum Edns0Rule {
    /// `local CODE DATA`.
    Local {
        /// Action.
        action: Action,
        /// Option code.
        code: u16,
        /// Payload.
        data: LocalData,
        /// Undo in the reply.
        revert: bool,
    },
    /// `nsid`.
    Nsid {
        /// Action.
        action: Action,
        /// Undo in the reply.
        revert: bool,
    },
    /// `subnet V4LEN V6LEN`.
    Subnet {
        /// Action.
        action: Action,
        /// IPv4 source prefix length.
        v4: u8,
        /// IPv6 source prefix length.
        v6: u8,
        /// Undo in the reply.
        revert: bool,
    },
}

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

/// One rule of the plugin.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Question name.
    Name(NameRule),
    /// Question class.
    Class(u16, u16),
    /// Question type.
    Type(u16, u16),
    /// EDNS0 options.
    Edns0(Edns0Rule),
    /// Reply TTLs for matching names.
    Ttl(Matcher, u32, u32),
    /// Reply rcode for matching names.
    Rcode(Matcher, u16, u16),
    /// CNAME targets in the reply.
    Cname(CnameRule),
}

/// A rule with its mode.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stop or continue after a match.
    pub mode: Mode,
    /// The rule.
    pub kind: Kind,
}

/// The outcome of trying a rule on a request.
pub enum Outcome {
    /// The rule did not apply.
    Ignored,
    /// The rule applied; these rules go to the reply.
    Done(Vec<ResponseRule>),
    /// The rule set this question name (checked and set by the caller).
    Renamed(String, Vec<ResponseRule>),
}

/// Parse one rule from its arguments (CoreDNS's `newRule`). Errors are CoreDNS's texts.
pub fn new_rule(args: &[String]) -> Result<Rule, String> {
    if args.is_empty() {
        return Err("no rule type specified for rewrite".into());
    }
    let arg0 = args[0].to_lowercase();
    let (mode, rule_type, expect, start) = match arg0.as_str() {
        "continue" | "stop" => {
            if args.len() < 2 {
                return Err(format!("{arg0} rule must begin with a rule type"));
            }
            let mode = if arg0 == "continue" {
                Mode::Continue
            } else {
                Mode::Stop
            };
            (mode, args[1].to_lowercase(), args.len() - 1, 2)
        }
        _ => (Mode::Stop, arg0.clone(), args.len(), 1),
    };
    let rest = &args[start..];
    let kind = match rule_type.as_str() {
        "answer" => return Err("response rewrites must begin with a name rule".into()),
        "name" => Kind::Name(new_name_rule(rest)?),
        "class" => {
            if expect != 3 {
                return Err(format!("{rule_type} rules must have exactly two arguments"));
            }
            let from = rest[0].to_uppercase();
            let to = rest[1].to_uppercase();
            let f = class_from_str(&from).ok_or_else(|| format!("invalid class {from:?}"))?;
            let t = class_from_str(&to).ok_or_else(|| format!("invalid class {to:?}"))?;
            Kind::Class(f, t)
        }
        "type" => {
            if expect != 3 {
                return Err(format!("{rule_type} rules must have exactly two arguments"));
            }
            let from = rest[0].to_uppercase();
            let to = rest[1].to_uppercase();
            let f = type_from_str(&from).ok_or_else(|| format!("invalid type {from:?}"))?;
            let t = type_from_str(&to).ok_or_else(|| format!("invalid type {to:?}"))?;
            Kind::Type(f, t)
        }
        "edns0" => Kind::Edns0(new_edns0_rule(rest)?),
        "ttl" => new_ttl_rule(rest)?,
        "cname" => Kind::Cname(new_cname_rule(rest)?),
        "rcode" => new_rcode_rule(rest)?,
        _ => {
            return Err(format!(
                "invalid rule type {}",
                ferrodns_go::strconv::quote(&args[0])
            ));
        }
    };
    Ok(Rule { mode, kind })
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

fn new_name_rule(args: &[String]) -> Result<NameRule, String> {
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

fn matcher_for(kind: &str, arg: &str, what: &str) -> Result<Matcher, String> {
    Ok(match kind.to_lowercase().as_str() {
        "exact" => Matcher::Exact(normalize(arg)),
        "prefix" => Matcher::Prefix(normalize(arg)),
        "suffix" => Matcher::Suffix(normalize(arg)),
        "substring" => Matcher::Substring(normalize(arg)),
        "regex" => {
            if arg.len() > MAX_REGEXP_LEN {
                return Err(format!(
                    "regex pattern too long in a {what} rule: {} > {MAX_REGEXP_LEN}",
                    arg.len()
                ));
            }
            let re = compile_captures(arg)
                .map_err(|_| format!("invalid regex pattern in a {what} rule: {arg}"))?;
            Matcher::Regex(re)
        }
        _ => {
            return Err(format!(
                "{what} rule supports only exact, prefix, suffix, substring, and regex name matching"
            ));
        }
    })
}

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

fn new_ttl_rule(args: &[String]) -> Result<Kind, String> {
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

fn valid_rcode(v: &str) -> Option<u16> {
    if let Ok(i) = ferrodns_go::strconv::parse_uint(v, 10, 32)
        && i <= 23
    {
        return Some(i as u16);
    }
    rcode_from_str(&v.to_uppercase())
}

fn new_rcode_rule(args: &[String]) -> Result<Kind, String> {
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

fn new_cname_rule(args: &[String]) -> Result<CnameRule, String> {
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

fn parse_action(s: &str) -> Option<Action> {
    Some(match s {
        "set" => Action::Set,
        "append" => Action::Append,
        "replace" => Action::Replace,
        "unset" => Action::Unset,
        _ => return None,
    })
}

const VARIABLES: [&str; 7] = [
    "{qname}",
    "{qtype}",
    "{client_ip}",
    "{client_port}",
    "{protocol}",
    "{server_ip}",
    "{server_port}",
];

/// CoreDNS's `metadata.IsLabel`: `plugin/name` with non-empty parts.
fn is_metadata_label(label: &str) -> bool {
    match label.split_once('/') {
        Some((p, n)) => !p.is_empty() && !n.is_empty(),
        None => false,
    }
}

fn new_edns0_rule(args: &[String]) -> Result<Edns0Rule, String> {
    if args.len() < 2 {
        return Err("too few arguments for an EDNS0 rule".into());
    }
    let rule_type = args[0].to_lowercase();
    let action_s = args[1].to_lowercase();
    let action = parse_action(&action_s)
        .ok_or_else(|| format!("invalid action: {}", ferrodns_go::strconv::quote(&action_s)))?;
    if action == Action::Unset {
        return match rule_type.as_str() {
            "local" => {
                if args.len() != 3 {
                    return Err("local unset action requires exactly two arguments".into());
                }
                let code = ferrodns_go::strconv::parse_uint(&args[2], 0, 16)? as u16;
                edns::support_option(code);
                Ok(Edns0Rule::Local {
                    action,
                    code,
                    data: LocalData::Bytes(Vec::new()),
                    revert: false,
                })
            }
            "nsid" => {
                if args.len() != 2 {
                    return Err("nsid unset action requires exactly one argument".into());
                }
                Ok(Edns0Rule::Nsid {
                    action,
                    revert: false,
                })
            }
            "subnet" => {
                if args.len() != 2 {
                    return Err("subnet unset action requires exactly one argument".into());
                }
                Ok(Edns0Rule::Subnet {
                    action,
                    v4: 0,
                    v6: 0,
                    revert: false,
                })
            }
            _ => Err(format!(
                "invalid rule type {}",
                ferrodns_go::strconv::quote(&rule_type)
            )),
        };
    }
    let mut args = args.to_vec();
    let mut revert = false;
    if args.last().map(String::as_str) == Some("revert") {
        revert = true;
        args.pop();
    }
    match rule_type.as_str() {
        "local" => {
            if args.len() != 4 {
                return Err("EDNS0 local rules require three or four args".into());
            }
            let code = ferrodns_go::strconv::parse_uint(&args[2], 0, 16)? as u16;
            let v = &args[3];
            let data = if v.starts_with('{') && v.ends_with('}') {
                let ok = VARIABLES.contains(&v.as_str())
                    || (v.len() >= 2 && is_metadata_label(&v[1..v.len() - 1]));
                if !ok {
                    return Err(format!(
                        "unsupported variable name {}",
                        ferrodns_go::strconv::quote(v)
                    ));
                }
                LocalData::Variable(v.clone())
            } else if let Some(hex) = v.strip_prefix("0x") {
                LocalData::Bytes(decode_hex(hex)?)
            } else {
                LocalData::Bytes(v.as_bytes().to_vec())
            };
            edns::support_option(code);
            Ok(Edns0Rule::Local {
                action,
                code,
                data,
                revert,
            })
        }
        "nsid" => {
            if args.len() != 2 {
                return Err("EDNS0 NSID rules can accept no more than one arg".into());
            }
            Ok(Edns0Rule::Nsid { action, revert })
        }
        "subnet" => {
            if args.len() != 4 {
                return Err("EDNS0 subnet rules require three or four args".into());
            }
            let v4 = ferrodns_go::strconv::parse_uint(&args[2], 0, 16)?;
            if v4 > 32 {
                return Err(format!("invalid IPv4 bit mask length {v4}"));
            }
            let v6 = ferrodns_go::strconv::parse_uint(&args[3], 0, 16)?;
            if v6 > 128 {
                return Err(format!("invalid IPv6 bit mask length {v6}"));
            }
            Ok(Edns0Rule::Subnet {
                action,
                v4: v4 as u8,
                v6: v6 as u8,
                revert,
            })
        }
        _ => Err(format!(
            "invalid rule type {}",
            ferrodns_go::strconv::quote(&rule_type)
        )),
    }
}

/// Go's `hex.DecodeString` with its error texts.
fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let val = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len() / 2);
    let mut i = 0;
    while i + 1 < b.len() {
        let hi = val(b[i]).ok_or_else(|| {
            format!(
                "encoding/hex: invalid byte: U+{:04X} {}",
                b[i],
                go_char(b[i])
            )
        })?;
        let lo = val(b[i + 1]).ok_or_else(|| {
            format!(
                "encoding/hex: invalid byte: U+{:04X} {}",
                b[i + 1],
                go_char(b[i + 1])
            )
        })?;
        out.push(hi << 4 | lo);
        i += 2;
    }
    if b.len() % 2 == 1 {
        if let Some(&c) = b.last()
            && val(c).is_none()
        {
            return Err(format!(
                "encoding/hex: invalid byte: U+{c:04X} {}",
                go_char(c)
            ));
        }
        return Err("encoding/hex: odd length hex string".into());
    }
    Ok(out)
}

fn go_char(c: u8) -> String {
    format!("'{}'", c as char)
}

/// miekg/dns decodes these option codes into their own types; every other code is a "local"
/// option that a `local` rule may replace.
fn is_miekg_local(code: u16) -> bool {
    !matches!(code, 1..=12 | 15 | 18 | 19)
}

fn opt_mut(req: &mut Request) -> &mut Edns {
    let msg = req.message_mut();
    if msg.edns.is_none() {
        let mut e = Edns::new();
        e.set_max_payload(4096);
        e.set_dnssec_ok(false);
        msg.edns = Some(e);
    }
    // Just set above when missing.
    msg.edns.get_or_insert_with(Edns::new)
}

fn option(code: u16, data: Vec<u8>) -> (EdnsCode, EdnsOption) {
    (EdnsCode::from(code), EdnsOption::Unknown(code, data))
}

fn local_data(req: &Request, var: &str) -> Option<Vec<u8>> {
    let ip = req.src.ip();
    let family_ip = |ip: IpAddr| -> Vec<u8> {
        match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.octets().to_vec(),
                None => v6.octets().to_vec(),
            },
        }
    };
    match var {
        "{qname}" => {
            let mut n = ferrodns_pkg::text::presentation(&req.qname());
            if req.question().is_none() {
                n = ".".into();
            }
            Some(n.into_bytes())
        }
        "{qtype}" => Some(u16::from(req.qtype()).to_be_bytes().to_vec()),
        "{client_ip}" => Some(family_ip(ip)),
        "{server_ip}" => {
            // CoreDNS writes the server's address in the client's family: nothing when the
            // server address has no form in that family (a wildcard `::` for an IPv4 client).
            let client_v4 = match ip {
                IpAddr::V4(_) => true,
                IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
            };
            let local = req.local.ip();
            let local_v4 = match local {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(v6) => v6.to_ipv4_mapped(),
            };
            if client_v4 {
                Some(local_v4?.octets().to_vec())
            } else {
                Some(match local {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped().octets().to_vec(),
                    IpAddr::V6(v6) => v6.octets().to_vec(),
                })
            }
        }
        "{client_port}" => Some(req.src.port().to_be_bytes().to_vec()),
        "{server_port}" => Some(req.local.port().to_be_bytes().to_vec()),
        "{protocol}" => Some(req.protocol.as_str().as_bytes().to_vec()),
        other => {
            let label = &other[1..other.len() - 1];
            req.metadata(label)
                .filter(|v| !v.is_empty())
                .map(|v| v.as_bytes().to_vec())
        }
    }
}

/// The ECS option payload for the client's address (as miekg/dns packs it).
fn ecs_payload(req: &Request, v4: u8, v6: u8) -> Vec<u8> {
    let (family, bits, addr): (u16, u8, Vec<u8>) = match req.src.ip() {
        IpAddr::V4(a) => (1, v4, a.octets().to_vec()),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(m) => (1, v4, m.octets().to_vec()),
            None => (2, v6, a.octets().to_vec()),
        },
    };
    let mut out = family.to_be_bytes().to_vec();
    out.push(bits);
    out.push(0);
    let need = usize::from(bits).div_ceil(8);
    for (i, b) in addr.iter().take(need).enumerate() {
        let keep = (usize::from(bits).saturating_sub(i * 8)).min(8);
        let mask: u8 = if keep == 8 { 0xff } else { !(0xffu8 >> keep) };
        out.push(b & mask);
    }
    out
}

impl Edns0Rule {
    fn apply(&self, req: &mut Request) -> Outcome {
        match self {
            Edns0Rule::Local {
                action,
                code,
                data,
                revert,
            } => {
                let bytes = match data {
                    LocalData::Bytes(b) => b.clone(),
                    LocalData::Variable(v) => match local_data(req, v) {
                        Some(b) => b,
                        None => return Outcome::Ignored,
                    },
                };
                let variable = matches!(data, LocalData::Variable(_));
                let opt = opt_mut(req);
                if *action == Action::Unset {
                    opt.options_mut().remove(EdnsCode::from(*code));
                    return Outcome::Done(Vec::new());
                }
                let opts = &mut opt.options_mut().options;
                if let Some(slot) = opts
                    .iter_mut()
                    .find(|(c, _)| u16::from(*c) == *code && is_miekg_local(*code))
                {
                    if matches!(action, Action::Replace | Action::Set) {
                        let mut resp = Vec::new();
                        if *revert {
                            resp.push(ResponseRule::EdnsReplace(*code, slot.0, slot.1.clone()));
                        }
                        *slot = option(*code, bytes);
                        return Outcome::Done(resp);
                    }
                    if variable {
                        return Outcome::Ignored;
                    }
                }
                if matches!(action, Action::Append | Action::Set) {
                    opts.push(option(*code, bytes));
                    let resp = if *revert {
                        vec![ResponseRule::EdnsSet(*code)]
                    } else {
                        Vec::new()
                    };
                    return Outcome::Done(resp);
                }
                Outcome::Ignored
            }
            Edns0Rule::Nsid { action, revert } => {
                let opt = opt_mut(req);
                if *action == Action::Unset {
                    opt.options_mut().remove(EdnsCode::from(3));
                    return Outcome::Done(Vec::new());
                }
                let opts = &mut opt.options_mut().options;
                if let Some(slot) = opts.iter_mut().find(|(c, _)| u16::from(*c) == 3)
                    && matches!(action, Action::Replace | Action::Set)
                {
                    let mut resp = Vec::new();
                    if *revert {
                        resp.push(ResponseRule::EdnsReplace(3, slot.0, slot.1.clone()));
                    }
                    *slot = option(3, Vec::new());
                    return Outcome::Done(resp);
                }
                if matches!(action, Action::Append | Action::Set) {
                    opts.push(option(3, Vec::new()));
                    let resp = if *revert {
                        vec![ResponseRule::EdnsSet(3)]
                    } else {
                        Vec::new()
                    };
                    return Outcome::Done(resp);
                }
                Outcome::Ignored
            }
            Edns0Rule::Subnet {
                action,
                v4,
                v6,
                revert,
            } => {
                let payload = ecs_payload(req, *v4, *v6);
                let opt = opt_mut(req);
                if *action == Action::Unset {
                    opt.options_mut().remove(EdnsCode::from(8));
                    return Outcome::Done(Vec::new());
                }
                let opts = &mut opt.options_mut().options;
                if let Some(slot) = opts.iter_mut().find(|(c, _)| u16::from(*c) == 8) {
                    if matches!(action, Action::Replace | Action::Set) {
                        let mut resp = Vec::new();
                        if *revert {
                            resp.push(ResponseRule::EdnsReplace(8, slot.0, slot.1.clone()));
                        }
                        *slot = option(8, payload);
                        return Outcome::Done(resp);
                    }
                    return Outcome::Ignored;
                }
                if matches!(action, Action::Append | Action::Set) {
                    opts.push(option(8, payload));
                    let resp = if *revert {
                        vec![ResponseRule::EdnsSet(8)]
                    } else {
                        Vec::new()
                    };
                    return Outcome::Done(resp);
                }
                Outcome::Ignored
            }
        }
    }
}

impl NameRule {
    fn apply(&self, name: &str) -> Option<(String, Vec<ResponseRule>)> {
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

impl Rule {
    /// Try the rule on the request (CoreDNS's `Rule.Rewrite`).
    pub fn apply(&self, req: &mut Request) -> Outcome {
        let name = req.name_lower();
        match &self.kind {
            Kind::Name(n) => match n.apply(&name) {
                Some((new, resp)) => Outcome::Renamed(new, resp),
                None => Outcome::Ignored,
            },
            Kind::Class(from, to) => {
                if *from > 0 && *to > 0 && u16::from(req.qclass()) == *from {
                    if let Some(q) = req.message_mut().queries.first_mut() {
                        q.set_query_class((*to).into());
                    }
                    return Outcome::Done(Vec::new());
                }
                Outcome::Ignored
            }
            Kind::Type(from, to) => {
                if *from > 0 && *to > 0 && u16::from(req.qtype()) == *from {
                    if let Some(q) = req.message_mut().queries.first_mut() {
                        q.set_query_type((*to).into());
                    }
                    return Outcome::Done(Vec::new());
                }
                Outcome::Ignored
            }
            Kind::Edns0(e) => e.apply(req),
            Kind::Ttl(m, min, max) => {
                if m.matches(&name) {
                    Outcome::Done(vec![ResponseRule::Ttl(*min, *max)])
                } else {
                    Outcome::Ignored
                }
            }
            Kind::Rcode(m, old, new) => {
                if m.matches(&name) {
                    Outcome::Done(vec![ResponseRule::Rcode(*old, *new)])
                } else {
                    Outcome::Ignored
                }
            }
            Kind::Cname(c) => {
                if c.from.is_empty() || c.to.is_empty() {
                    return Outcome::Ignored;
                }
                Outcome::Done(vec![ResponseRule::Cname(c.clone(), u16::from(req.qtype()))])
            }
        }
    }

    /// Whether this rule changes the request's OPT record.
    pub fn is_edns0(&self) -> bool {
        matches!(self.kind, Kind::Edns0(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

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

    #[test]
    fn ecs_masks() {
        let req = ferrodns_plugin_test::request("a.", ferrodns_plugin::proto::rr::RecordType::A);
        assert_eq!(ecs_payload(&req, 24, 56), vec![0, 1, 24, 0, 127, 0, 0]);
        assert_eq!(ecs_payload(&req, 0, 56), vec![0, 1, 0, 0]);
        assert_eq!(ecs_payload(&req, 12, 56), vec![0, 1, 12, 0, 127, 0]);
    }

    #[test]
    fn hex() {
        assert_eq!(decode_hex("abcd"), Ok(vec![0xab, 0xcd]));
        assert_eq!(
            decode_hex("abc"),
            Err("encoding/hex: odd length hex string".into())
        );
        assert_eq!(
            decode_hex("zz"),
            Err("encoding/hex: invalid byte: U+007A 'z'".into())
        );
    }

    #[test]
    fn rule_errors() {
        let cases = [
            ("", "no rule type specified for rewrite"),
            ("stop", "stop rule must begin with a rule type"),
            ("continue", "continue rule must begin with a rule type"),
            (
                "answer name a b",
                "response rewrites must begin with a name rule",
            ),
            ("foo a b", "invalid rule type \"foo\""),
            ("class IN", "class rules must have exactly two arguments"),
            ("class IN XX", "invalid class \"XX\""),
            ("type A XX", "invalid type \"XX\""),
            ("type A", "type rules must have exactly two arguments"),
            ("name a", "too few arguments for a name rule"),
            (
                "name wrong a b",
                "name rule supports only exact, prefix, suffix, substring, and regex name matching, received: wrong",
            ),
            ("name regex ( b", "invalid regex matching pattern: ("),
            (
                "name regex (a) {1}{2}",
                "the rewrite regex pattern ({1}{2}) uses more subexpressions than its corresponding matching regex pattern ((a))",
            ),
            ("name regex a b answer", "invalid arguments for regex rule"),
            (
                "name regex a b c d",
                "exceeded the number of arguments for a non-answer rule argument for regex rule",
            ),
            (
                "name regex a b answer foo x",
                "invalid type \"foo\" for answer rule for regex rule",
            ),
            (
                "name regex a b answer name x",
                "name answer rule for regex rule: 2 arguments required",
            ),
            (
                "name regex a b answer auto answer name a b",
                "auto name answer rule cannot be combined with explicit name anwer rules",
            ),
            ("edns0 local", "too few arguments for an EDNS0 rule"),
            ("edns0 local foo 1 2", "invalid action: \"foo\""),
            (
                "edns0 local set 0xffee",
                "EDNS0 local rules require three or four args",
            ),
            (
                "edns0 nsid set x",
                "EDNS0 NSID rules can accept no more than one arg",
            ),
            ("edns0 subnet set 33 56", "invalid IPv4 bit mask length 33"),
            (
                "edns0 subnet set 24 129",
                "invalid IPv6 bit mask length 129",
            ),
            ("edns0 foo set", "invalid rule type \"foo\""),
            (
                "edns0 local unset",
                "local unset action requires exactly two arguments",
            ),
            (
                "edns0 nsid unset x",
                "nsid unset action requires exactly one argument",
            ),
            (
                "edns0 subnet unset x",
                "subnet unset action requires exactly one argument",
            ),
            (
                "edns0 local set 0xffee {foo}",
                "unsupported variable name \"{foo}\"",
            ),
            ("ttl a", "too few (1) arguments for a ttl rule"),
            ("ttl a b", "invalid TTL 'b' for a ttl rule"),
            (
                "ttl wrong a 10",
                "ttl rule supports only exact, prefix, suffix, substring, and regex name matching",
            ),
            ("ttl regex ( 10", "invalid regex pattern in a ttl rule: ("),
            ("rcode a b", "too few (2) arguments for a rcode rule"),
            (
                "rcode a X NOERROR",
                "invalid matching RCODE 'X' for a rcode rule",
            ),
            (
                "rcode a NOERROR 99",
                "invalid replacement RCODE '99' for a rcode rule",
            ),
            ("cname a", "too few (1) arguments for a cname rule"),
            ("cname foo a b", "unknown cname rewrite type: foo"),
        ];
        for (input, want) in cases {
            let got = new_rule(&args(input)).map(|_| ()).unwrap_err();
            assert_eq!(got, want, "input {input:?}");
        }
    }

    #[test]
    fn rules_that_parse() {
        for input in [
            "name a.com b.com",
            "stop name regex foo bar answer name bar foo",
            "continue name suffix .a. .b. answer auto",
            "name exact a b answer value x y",
            "edns0 local set 0xffee 0xabcd revert",
            "edns0 local append 65001 {client_ip}",
            "edns0 local set 65002 {some/label}",
            "edns0 nsid set",
            "edns0 subnet set 24 56 revert",
            "ttl regex (.*)\\.a\\. 10-20",
            "rcode exact a. SERVFAIL 0",
            "cname suffix a. b.",
            "type A AAAA",
            "class ch in",
        ] {
            assert!(new_rule(&args(input)).is_ok(), "{input}");
        }
    }

    #[test]
    fn string_rewriters() {
        let remap = StringRewriter::Remap("b.org.".into(), "a.org.".into());
        assert_eq!(remap.rewrite("b.org."), "a.org.");
        assert_eq!(remap.rewrite("x.b.org."), "x.a.org.");
        assert_eq!(remap.rewrite("xb.org."), "xb.org.");
        let re = compile_captures("(.*)\\.b\\.").unwrap();
        let rx = StringRewriter::Regex(re, "{1}.a.".into());
        assert_eq!(rx.rewrite("www.b."), "www.a.");
        assert_eq!(rx.rewrite("nothing"), "nothing");
    }
}

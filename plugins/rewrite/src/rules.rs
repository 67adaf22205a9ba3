//! The rewrite rules: what they share (modes, matchers, string rewriters, the reply rules they
//! produce) and the dispatch by kind; each kind, how it is read from its arguments and what it
//! does to a request, lives in a file of its own.

use ferrodns_go::regexp::Regex;
use ferrodns_plugin::Request;
use ferrodns_plugin::proto::rr::rdata::opt::{EdnsCode, EdnsOption};

use crate::names::normalize;

mod class;
mod cname;
mod edns0;
mod name;
mod rcode;
mod ttl;
mod r#type;

pub use cname::CnameRule;
pub use edns0::Edns0Rule;
pub use name::NameRule;

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

/// Compile a Go regular expression keeping its capture groups, as Go reads and matches it
/// (`\d \w \s` are ASCII only), with Go's error text.
pub use ferrodns_go::regexp::compile_captures;

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
    let (mode, rule_type, start) = match arg0.as_str() {
        "continue" | "stop" => {
            if args.len() < 2 {
                return Err(format!("{arg0} rule must begin with a rule type"));
            }
            let mode = if arg0 == "continue" {
                Mode::Continue
            } else {
                Mode::Stop
            };
            (mode, args[1].to_lowercase(), 2)
        }
        _ => (Mode::Stop, arg0.clone(), 1),
    };
    let rest = &args[start..];
    let kind = match rule_type.as_str() {
        "answer" => return Err("response rewrites must begin with a name rule".into()),
        "name" => Kind::Name(name::new_name_rule(rest)?),
        "class" => class::new_class_rule(rest)?,
        "type" => r#type::new_type_rule(rest)?,
        "edns0" => Kind::Edns0(edns0::new_edns0_rule(rest)?),
        "ttl" => ttl::new_ttl_rule(rest)?,
        "cname" => Kind::Cname(cname::new_cname_rule(rest)?),
        "rcode" => rcode::new_rcode_rule(rest)?,
        _ => {
            return Err(format!(
                "invalid rule type {}",
                ferrodns_go::strconv::quote(&args[0])
            ));
        }
    };
    Ok(Rule { mode, kind })
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
            Kind::Class(from, to) => class::apply(*from, *to, req),
            Kind::Type(from, to) => r#type::apply(*from, *to, req),
            Kind::Edns0(e) => e.apply(req),
            Kind::Ttl(m, min, max) => ttl::apply(m, *min, *max, &name),
            Kind::Rcode(m, old, new) => rcode::apply(m, *old, *new, &name),
            Kind::Cname(c) => c.apply(req),
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

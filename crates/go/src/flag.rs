//! Go's `flag`: command lines parsed the way Go's `flag` package parses them, since both
//! binaries stand in for Go programs whose users pass Go-style arguments: `-name value`,
//! `-name=value`, `--name`, booleans without a value (`-quiet`, `-quiet=false`), parsing stops
//! at the first non-flag argument or `--`; errors and the usage text read as Go prints them.

use std::collections::BTreeMap;

/// Why the command line was refused (printed with the usage text, exit status 2), or a request
/// for help (exit status 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    /// `-h` or `-help`.
    Help,
    /// The message Go prints.
    Bad(String),
}

/// What a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A boolean: `-name` alone means true.
    Bool,
    /// A value of the named Go type (`string`, `duration`), given as text.
    Value(&'static str),
}

/// One flag's definition.
#[derive(Debug, Clone)]
pub struct Flag {
    /// The name without the dash.
    pub name: &'static str,
    /// What it takes.
    pub kind: Kind,
    /// The default, as text (`"true"`/`"false"` for booleans).
    pub default: &'static str,
    /// The help line.
    pub usage: &'static str,
}

/// A set of flags.
#[derive(Debug, Clone, Default)]
pub struct FlagSet {
    flags: Vec<Flag>,
}

/// The parsed values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    given: BTreeMap<String, String>,
    defaults: BTreeMap<String, String>,
    /// The arguments after the flags.
    pub rest: Vec<String>,
}

impl Values {
    /// The value of a flag: as given, else its default ("" for an unknown name).
    pub fn get(&self, name: &str) -> &str {
        self.given
            .get(name)
            .or_else(|| self.defaults.get(name))
            .map(String::as_str)
            .unwrap_or("")
    }

    /// Whether the flag was given on the command line.
    pub fn is_set(&self, name: &str) -> bool {
        self.given.contains_key(name)
    }

    /// The value of a boolean flag.
    pub fn on(&self, name: &str) -> bool {
        parse_bool(self.get(name)).unwrap_or(false)
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

impl FlagSet {
    /// An empty set.
    pub fn new() -> Self {
        FlagSet::default()
    }

    /// Add a string-like flag (`type_name` is what the usage shows: `string`, `duration`).
    pub fn value(
        &mut self,
        name: &'static str,
        type_name: &'static str,
        default: &'static str,
        usage: &'static str,
    ) -> &mut Self {
        self.flags.push(Flag {
            name,
            kind: Kind::Value(type_name),
            default,
            usage,
        });
        self
    }

    /// Add a boolean flag.
    pub fn bool(&mut self, name: &'static str, default: bool, usage: &'static str) -> &mut Self {
        self.flags.push(Flag {
            name,
            kind: Kind::Bool,
            default: if default { "true" } else { "false" },
            usage,
        });
        self
    }

    fn find(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().find(|f| f.name == name)
    }

    /// Parse the arguments after the program name.
    pub fn parse(&self, args: &[String]) -> Result<Values, FlagError> {
        let mut v = Values {
            defaults: self
                .flags
                .iter()
                .map(|f| (f.name.to_string(), f.default.to_string()))
                .collect(),
            ..Values::default()
        };
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            if a == "--" {
                i += 1;
                break;
            }
            if !a.starts_with('-') || a == "-" {
                break;
            }
            let body = a.strip_prefix("--").unwrap_or(&a[1..]);
            if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
                return Err(FlagError::Bad(format!("bad flag syntax: {a}")));
            }
            let (name, inline) = match body.split_once('=') {
                Some((n, val)) => (n, Some(val.to_string())),
                None => (body, None),
            };
            i += 1;
            let Some(flag) = self.find(name) else {
                if name == "h" || name == "help" {
                    return Err(FlagError::Help);
                }
                return Err(FlagError::Bad(format!(
                    "flag provided but not defined: -{name}"
                )));
            };
            let value = match (flag.kind, inline) {
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Bool, Some(text)) => match parse_bool(&text) {
                    Some(b) => b.to_string(),
                    None => {
                        return Err(FlagError::Bad(format!(
                            "invalid boolean value {text:?} for -{name}: parse error"
                        )));
                    }
                },
                (Kind::Value(_), Some(text)) => text,
                (Kind::Value(_), None) => match args.get(i) {
                    Some(text) => {
                        i += 1;
                        text.clone()
                    }
                    None => {
                        return Err(FlagError::Bad(format!("flag needs an argument: -{name}")));
                    }
                },
            };
            v.given.insert(name.to_string(), value);
        }
        v.rest = args[i..].to_vec();
        Ok(v)
    }

    /// The flag list as Go's `PrintDefaults` writes it: sorted by name, the type after the name,
    /// the help on the next line, non-zero defaults in parentheses.
    pub fn defaults(&self) -> String {
        let mut flags: Vec<&Flag> = self.flags.iter().collect();
        flags.sort_by_key(|f| f.name);
        let mut out = String::new();
        for f in flags {
            let mut line = format!("  -{}", f.name);
            if let Kind::Value(t) = f.kind {
                line.push(' ');
                line.push_str(t);
            }
            // Go keeps a short flag's help on its line.
            if line.len() <= 4 {
                line.push('\t');
            } else {
                line.push_str("\n    \t");
            }
            line.push_str(f.usage);
            let shown = match f.kind {
                Kind::Bool => f.default == "true",
                Kind::Value("string") => !f.default.is_empty(),
                Kind::Value(_) => !f.default.is_empty() && f.default != "0s",
            };
            if shown {
                match f.kind {
                    Kind::Value("string") => line.push_str(&format!(" (default {:?})", f.default)),
                    _ => line.push_str(&format!(" (default {})", f.default)),
                }
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> FlagSet {
        let mut s = FlagSet::new();
        s.value("conf", "string", "", "Corefile to load")
            .value("p", "string", "53", "Default port")
            .bool("quiet", false, "Quiet mode")
            .bool("setupinterface", true, "Set the interface up")
            .value("syncinterval", "duration", "60ns", "Check period");
        s
    }

    fn p(args: &[&str]) -> Result<Values, FlagError> {
        set().parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn forms_and_errors() {
        let v = p(&["-conf", "x", "--p=1053", "-quiet", "-setupinterface=false"]).unwrap();
        assert_eq!(v.get("conf"), "x");
        assert_eq!(v.get("p"), "1053");
        assert!(v.on("quiet") && !v.on("setupinterface"));
        assert!(v.is_set("conf") && !v.is_set("syncinterval"));
        assert_eq!(v.get("syncinterval"), "60ns");
        assert_eq!(
            p(&["-conf"]),
            Err(FlagError::Bad("flag needs an argument: -conf".into()))
        );
        assert_eq!(
            p(&["-nope"]),
            Err(FlagError::Bad(
                "flag provided but not defined: -nope".into()
            ))
        );
        assert_eq!(p(&["-help"]), Err(FlagError::Help));
        assert_eq!(
            p(&["---x"]),
            Err(FlagError::Bad("bad flag syntax: ---x".into()))
        );
        assert_eq!(p(&["-quiet", "a", "-p"]).unwrap().rest, vec!["a", "-p"]);
        assert_eq!(
            p(&["-quiet=maybe"]),
            Err(FlagError::Bad(
                "invalid boolean value \"maybe\" for -quiet: parse error".into()
            ))
        );
    }

    #[test]
    fn usage_like_go() {
        assert_eq!(
            set().defaults(),
            "  -conf string\n    \tCorefile to load\n  -p string\n    \tDefault port (default \"53\")\n  \
             -quiet\n    \tQuiet mode\n  -setupinterface\n    \tSet the interface up (default true)\n  \
             -syncinterval duration\n    \tCheck period (default 60ns)\n"
        );
    }
}

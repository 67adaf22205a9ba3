//! CoreDNS's command line, parsed the way Go's `flag` package does: `-name value`,
//! `-name=value`, `--name`, booleans without a value, parsing stops at the first non-flag
//! argument or `--`.

/// The flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flags {
    /// `-conf`: the Corefile (`stdin` reads standard input); `None` = `Corefile` in the
    /// working directory if it exists, else the built-in default.
    pub conf: Option<String>,
    /// `-dns.port` / `-p`.
    pub port: String,
    /// `-pidfile`.
    pub pidfile: Option<String>,
    /// `-quiet`.
    pub quiet: bool,
    /// `-version`.
    pub version: bool,
    /// `-plugins`.
    pub plugins: bool,
    /// `-validate` (ferrodns only): check the Corefile and every plugin's setup, bind nothing.
    pub validate: bool,
    /// Arguments after the flags.
    pub rest: Vec<String>,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            conf: None,
            port: "53".to_string(),
            pidfile: None,
            quiet: false,
            version: false,
            plugins: false,
            validate: false,
            rest: Vec::new(),
        }
    }
}

/// Why the command line was refused (printed with the usage text, exit status 2), or a request
/// for help (exit status 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    /// `-h` or `-help`.
    Help,
    /// The message Go prints.
    Bad(String),
}

/// The usage text, as Go's flag package prints it.
pub fn usage(program: &str) -> String {
    format!(
        "Usage of {program}:\n  \
-conf string\n    \tCorefile to load (default \"Corefile\")\n  \
-dns.port string\n    \tDefault port (default \"53\")\n  \
-p string\n    \tDefault port (default \"53\")\n  \
-pidfile string\n    \tPath to write pid file\n  \
-plugins\n    \tList installed plugins\n  \
-quiet\n    \tQuiet mode (no initialization output)\n  \
-validate\n    \tCheck the Corefile and every plugin's setup, bind nothing, then exit\n  \
-version\n    \tShow version\n"
    )
}

fn parse_bool(name: &str, v: &str) -> Result<bool, FlagError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(FlagError::Bad(format!(
            "invalid boolean value {v:?} for -{name}: parse error"
        ))),
    }
}

/// Parse the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Flags, FlagError> {
    let mut f = Flags::default();
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
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        i += 1;
        let mut value = |name: &str| -> Result<String, FlagError> {
            if let Some(v) = &inline {
                return Ok(v.clone());
            }
            match args.get(i) {
                Some(v) => {
                    i += 1;
                    Ok(v.clone())
                }
                None => Err(FlagError::Bad(format!("flag needs an argument: -{name}"))),
            }
        };
        match name {
            "conf" => f.conf = Some(value(name)?),
            "dns.port" | "p" => f.port = value(name)?,
            "pidfile" => f.pidfile = Some(value(name)?),
            "quiet" | "version" | "plugins" | "validate" => {
                let on = match &inline {
                    Some(v) => parse_bool(name, v)?,
                    None => true,
                };
                match name {
                    "quiet" => f.quiet = on,
                    "version" => f.version = on,
                    "plugins" => f.plugins = on,
                    _ => f.validate = on,
                }
            }
            "h" | "help" => return Err(FlagError::Help),
            other => {
                return Err(FlagError::Bad(format!(
                    "flag provided but not defined: -{other}"
                )));
            }
        }
    }
    f.rest = args[i..].to_vec();
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Flags, FlagError> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn go_flag_forms() {
        let f = p(&["-conf", "x", "--dns.port=1053", "-quiet"]).unwrap();
        assert_eq!(f.conf.as_deref(), Some("x"));
        assert_eq!(f.port, "1053");
        assert!(f.quiet);
        assert_eq!(p(&["-p", "5353"]).unwrap().port, "5353");
        assert!(!p(&["-quiet=false"]).unwrap().quiet);
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
        assert_eq!(p(&["-h"]), Err(FlagError::Help));
        assert_eq!(
            p(&["---x"]),
            Err(FlagError::Bad("bad flag syntax: ---x".into()))
        );
        assert_eq!(
            p(&["-quiet", "extra", "-version"]).unwrap().rest,
            vec!["extra", "-version"]
        );
        assert!(p(&["-quiet=maybe"]).is_err());
    }
}

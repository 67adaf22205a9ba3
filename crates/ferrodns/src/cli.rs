//! CoreDNS's command line (parsed as Go's `flag` package does, see [`ferrodns_go::flag`]).

/// The flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flags {
    /// `-conf`: the Corefile (`stdin` reads standard input); `None` = `Corefile` in the
    /// working directory if it exists, else the built-in default.
    pub conf: Option<String>,
    /// `-dns.port` / `-p`.
    pub port: String,
    /// `-pidfile` (an empty value is no pidfile).
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

pub use ferrodns_go::flag::FlagError;
use ferrodns_go::flag::{FlagSet, Values};

/// Add CoreDNS's own flags (`-conf`, `-dns.port`/`-p`, `-pidfile`, `-quiet`, `-version`,
/// `-plugins`) to a set: the `ferrodns` binary's and `node-cache`'s, which inherits them.
pub fn define_coredns(set: &mut FlagSet) {
    set.value(
        "conf",
        "string",
        "",
        "Corefile to load (default \"Corefile\")",
    )
    .value("dns.port", "string", "53", "Default port")
    .value("p", "string", "53", "Default port")
    .value("pidfile", "string", "", "Path to write pid file")
    .bool("plugins", false, "List installed plugins")
    .bool("quiet", false, "Quiet mode (no initialization output)")
    .bool("version", false, "Show version");
}

fn flag_set() -> FlagSet {
    let mut set = FlagSet::new();
    define_coredns(&mut set);
    set.bool(
        "validate",
        false,
        "Check the Corefile and every plugin's setup, bind nothing, then exit",
    );
    set
}

/// The usage text, as Go's flag package prints it.
pub fn usage(program: &str) -> String {
    format!("Usage of {program}:\n{}", flag_set().defaults())
}

impl Flags {
    /// CoreDNS's flags out of parsed values (`-dns.port` and `-p` are one setting: the one
    /// given last wins, as they share a variable in CoreDNS).
    pub fn from_values(v: &Values, order: &[String]) -> Flags {
        let port = order
            .iter()
            .rev()
            .find_map(|a| {
                let body = a.trim_start_matches('-');
                let name = body.split('=').next().unwrap_or(body);
                matches!(name, "dns.port" | "p").then(|| v.get(name).to_string())
            })
            .unwrap_or_else(|| "53".to_string());
        Flags {
            conf: v.is_set("conf").then(|| v.get("conf").to_string()),
            port,
            pidfile: (!v.get("pidfile").is_empty()).then(|| v.get("pidfile").to_string()),
            quiet: v.on("quiet"),
            version: v.on("version"),
            plugins: v.on("plugins"),
            validate: v.on("validate"),
            rest: v.rest.clone(),
        }
    }
}

/// Parse the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Flags, FlagError> {
    let v = flag_set().parse(args)?;
    Ok(Flags::from_values(&v, args))
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

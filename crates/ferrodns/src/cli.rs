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
    /// `-handoff` (ferrodns and node-cache only): where a starting process looks for a running
    /// one to take its sockets over from, and where it then waits for its own successor
    /// (`@name`: an abstract unix socket of the network namespace). Empty: no hand-off.
    pub handoff: String,
    /// `-handoffwait`: after SIGTERM, how long to go on serving while waiting for a successor
    /// before stopping as CoreDNS does.
    pub handoff_wait: std::time::Duration,
    /// `-memory` (ferrodns and node-cache only): the process's memory budget (`auto`: a share
    /// of the cgroup memory limit; see [`ferrodns_plugin::budget`]).
    pub memory: MemoryFlag,
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
            handoff: String::new(),
            handoff_wait: std::time::Duration::ZERO,
            memory: MemoryFlag::Auto,
            rest: Vec::new(),
        }
    }
}

/// The `ferrodns` binary's default rendezvous for hand-offs.
pub const DEFAULT_HANDOFF: &str = "@ferrodns-handoff";

/// Add the hand-off flags (`-handoff`, `-handoffwait`) with a binary's defaults.
pub fn define_handoff(set: &mut FlagSet, at: &'static str, wait: &'static str) {
    set.value(
        "handoff",
        "string",
        at,
        "where to take over a running instance's sockets, and to hand them to the next one (@name: abstract unix socket; empty: never)",
    )
    .value(
        "handoffwait",
        "duration",
        wait,
        "after SIGTERM, how long to go on serving while waiting for a successor to hand off to",
    );
}

/// The hand-off flags' values; a `-handoffwait` that is no Go duration is refused as Go's flag
/// package refuses it.
pub fn handoff_from_values(v: &Values) -> Result<(String, std::time::Duration), FlagError> {
    let text = v.get("handoffwait");
    let wait = ferrodns_go::time::parse_duration(text).map_err(|_| {
        FlagError::Bad(format!(
            "invalid value {text:?} for flag -handoffwait: parse error"
        ))
    })?;
    Ok((v.get("handoff").to_string(), wait))
}

/// Add the `-memory` flag (default `auto`).
pub fn define_memory(set: &mut FlagSet) {
    set.value(
        "memory",
        "string",
        "auto",
        "memory budget for cache entries and queries in flight: a size (64Mi, 200M, 1Gi, bytes), auto (75% of the cgroup memory limit, if any) or none",
    );
}

/// The `-memory` flag's value; one that is no size is refused as Go's flag package refuses a
/// bad value.
pub fn memory_from_values(v: &Values) -> Result<MemoryFlag, FlagError> {
    let text = v.get("memory");
    MemoryFlag::parse(text).map_err(|_| {
        FlagError::Bad(format!(
            "invalid value {text:?} for flag -memory: parse error"
        ))
    })
}

pub use ferrodns_go::flag::FlagError;
use ferrodns_go::flag::{FlagSet, Values};
use ferrodns_plugin::budget::MemoryFlag;

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
    define_handoff(&mut set, DEFAULT_HANDOFF, "0s");
    define_memory(&mut set);
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
            handoff: String::new(),
            handoff_wait: std::time::Duration::ZERO,
            memory: MemoryFlag::Auto,
            rest: v.rest.clone(),
        }
    }
}

/// Parse the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Flags, FlagError> {
    let v = flag_set().parse(args)?;
    let mut flags = Flags::from_values(&v, args);
    (flags.handoff, flags.handoff_wait) = handoff_from_values(&v)?;
    flags.memory = memory_from_values(&v)?;
    Ok(flags)
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

    #[test]
    fn memory() {
        assert_eq!(p(&[]).unwrap().memory, MemoryFlag::Auto);
        assert_eq!(
            p(&["-memory", "64Mi"]).unwrap().memory,
            MemoryFlag::Bytes(64 << 20)
        );
        assert_eq!(p(&["-memory=0"]).unwrap().memory, MemoryFlag::None);
        assert_eq!(
            p(&["-memory", "lots"]),
            Err(FlagError::Bad(
                "invalid value \"lots\" for flag -memory: parse error".into()
            ))
        );
    }
}

//! Parsing one `forward FROM TO... { ... }` stanza, with CoreDNS's defaults, checks and error
//! texts: the stanza's settings, and one parser per option of its block (the TO addresses are
//! read by the `addr` module).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ferrodns_go::strconv::quote as go_quote;
use ferrodns_go::time::{self, SignedDuration};
use ferrodns_plugin::corefile::{is_domain_name, normalize_exact, normalize_name};
use ferrodns_plugin::{Dispenser, SetupError};

use crate::addr::parse_ip;
pub use crate::addr::split_zone;
use crate::doh::DohMethod;
use crate::tls::TlsFiles;

/// The most TO addresses one stanza may have.
pub const MAX_UPSTREAMS: usize = 15;

/// How the upstream list is ordered for each query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// A random permutation (two upstreams: a coin flip).
    Random,
    /// A rotating first upstream, the rest in configured order.
    RoundRobin,
    /// Configured order.
    Sequential,
}

impl Policy {
    /// The option's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Random => "random",
            Policy::RoundRobin => "round_robin",
            Policy::Sequential => "sequential",
        }
    }
}

/// The transport of one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain DNS over UDP and TCP.
    Dns,
    /// DNS over TLS.
    Tls,
    /// DNS over HTTPS.
    Https,
}

/// Which protocol queries go upstream over, from `force_tcp` and `prefer_udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoChoice {
    /// The client's (neither option).
    Client,
    /// Always TCP (`force_tcp`, which wins when both are set); health probes too.
    ForceTcp,
    /// UDP even for TCP clients, retried over TCP when the reply is truncated (`prefer_udp`).
    PreferUdp,
}

/// One upstream after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    /// The address as CoreDNS labels it (`127.0.0.1:53`, `[::1]:53`).
    pub addr: String,
    /// The socket address, when the text is one (CoreDNS accepts ports it cannot dial).
    pub socket: Option<SocketAddr>,
    /// The transport.
    pub scheme: Scheme,
    /// The TLS server name given with `tls://IP%name`.
    pub server_name: Option<String>,
}

/// A parsed stanza.
#[derive(Debug, Clone)]
pub struct Config {
    /// FROM, normalised.
    pub from: String,
    /// `except` names, normalised.
    pub ignored: Vec<String>,
    /// The upstreams, de-duplicated, in order.
    pub upstreams: Vec<UpstreamSpec>,
    /// Number of TO entries as classified (before expansion), for the 15-entry limit.
    pub to_entries: usize,
    /// `max_fails` (2).
    pub max_fails: u32,
    /// `max_connect_attempts`, when set.
    pub max_connect_attempts: Option<u32>,
    /// `health_check` interval (500ms).
    pub hc_interval: Duration,
    /// RD in health probes (true unless `no_rec`).
    pub hc_recursion_desired: bool,
    /// Health probe name (`.`).
    pub hc_domain: String,
    /// `force_tcp`.
    pub force_tcp: bool,
    /// `prefer_udp`.
    pub prefer_udp: bool,
    /// `expire` (10s).
    pub expire: Duration,
    /// `max_age` (0 = unlimited).
    pub max_age: Duration,
    /// `max_idle_conns` (0 = unlimited).
    pub max_idle_conns: usize,
    /// `read_timeout` (2s).
    pub read_timeout: Duration,
    /// `tls` files as given (paths made absolute against `root` by CoreDNS; we have none).
    pub tls: Option<TlsFiles>,
    /// `tls_servername`.
    pub tls_servername: Option<String>,
    /// `doh_method` (POST).
    pub doh_method: DohMethod,
    /// `policy` (random).
    pub policy: Policy,
    /// `max_concurrent` (0 = off) and the value's text for the error message.
    pub max_concurrent: (i64, String),
    /// `next` rcodes.
    pub next_rcodes: Vec<u16>,
    /// `next_on_nodata`.
    pub next_on_nodata: bool,
    /// `failfast_all_unhealthy_upstreams`.
    pub failfast: bool,
    /// `failover` rcodes.
    pub failover_rcodes: Vec<u16>,
    /// `source_address`.
    pub source_address: Option<IpAddr>,
    /// `resolver` entries (IP or IP:port) for hostnames in TO.
    pub resolver: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            from: ".".into(),
            ignored: Vec::new(),
            upstreams: Vec::new(),
            to_entries: 0,
            max_fails: 2,
            max_connect_attempts: None,
            hc_interval: Duration::from_millis(500),
            hc_recursion_desired: true,
            hc_domain: ".".into(),
            force_tcp: false,
            prefer_udp: false,
            expire: Duration::from_secs(10),
            max_age: Duration::ZERO,
            max_idle_conns: 0,
            read_timeout: Duration::from_secs(2),
            tls: None,
            tls_servername: None,
            doh_method: DohMethod::Post,
            policy: Policy::Random,
            max_concurrent: (0, String::new()),
            next_rcodes: Vec::new(),
            next_on_nodata: false,
            failfast: false,
            failover_rcodes: Vec::new(),
            source_address: None,
            resolver: Vec::new(),
        }
    }
}

impl Config {
    /// The protocol choice `force_tcp` and `prefer_udp` make.
    pub fn proto_choice(&self) -> ProtoChoice {
        if self.force_tcp {
            ProtoChoice::ForceTcp
        } else if self.prefer_udp {
            ProtoChoice::PreferUdp
        } else {
            ProtoChoice::Client
        }
    }
}

/// An error without a location (CoreDNS's `fmt.Errorf` ones).
fn plain(msg: impl Into<String>) -> SetupError {
    SetupError::new(msg)
}

/// Go's `strconv.ParseUint(s, 10, 32)`.
fn parse_uint32(s: &str) -> Result<u32, SetupError> {
    ferrodns_go::strconv::parse_uint(s, 10, 32)
        .map(|v| v as u32)
        .map_err(plain)
}

/// A Go duration that may be negative, with Go's error text.
fn signed_duration(s: &str) -> Result<SignedDuration, SetupError> {
    SignedDuration::parse(s).map_err(|e| plain(e.to_string()))
}

/// Go's `strconv.Atoi`, with its error text.
fn atoi(s: &str) -> Result<i64, SetupError> {
    ferrodns_go::strconv::atoi(s).map_err(plain)
}

/// The rcode number of a name as miekg/dns's `StringToRcode` (upper-cased input).
pub fn rcode_from_name(s: &str) -> Option<u16> {
    ferrodns_pkg::text::rcode_from_str(&s.to_ascii_uppercase())
}

/// Go's `net.SplitHostPort`: `host:port` or `[host]:port`; `None` when Go fails.
pub fn split_host_port(s: &str) -> Option<(String, String)> {
    let (host, port) = ferrodns_go::net::split_host_port(s).ok()?;
    Some((host.to_string(), port.to_string()))
}

/// Parse every stanza of the directive (the dispenser before its first token).
pub fn parse_all(c: &mut Dispenser) -> Result<Vec<Config>, SetupError> {
    let mut out = Vec::new();
    while c.next() {
        out.push(parse_stanza(c)?);
    }
    Ok(out)
}

/// Parse one stanza; the cursor is on `forward`.
pub fn parse_stanza(c: &mut Dispenser) -> Result<Config, SetupError> {
    let mut f = Config::default();
    if !c.next_arg() {
        return Err(c.arg_err());
    }
    let orig_from = c.val().to_string();
    let zones = normalize_exact(&orig_from);
    let Some(first) = zones.first() else {
        return Err(plain(format!("unable to normalize '{orig_from}'")));
    };
    f.from = first.clone();
    if zones.len() > 1 {
        tracing::warn!(
            target: "plugin/forward",
            "Unsupported CIDR notation: '{}' expands to multiple zones. Using only '{}'.",
            orig_from,
            f.from
        );
    }
    let to = c.remaining_args();
    if to.is_empty() {
        return Err(c.arg_err());
    }
    while c.next_block() {
        parse_option(c, &mut f)?;
    }
    if !f.max_age.is_zero() && f.max_age < f.expire {
        return Err(plain(format!(
            "max_age ({}) must not be less than expire ({})",
            time::format_duration(f.max_age),
            time::format_duration(f.expire)
        )));
    }
    crate::addr::upstreams(&to, &mut f)?;
    Ok(f)
}

/// One option of the block; the cursor is on its name.
fn parse_option(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    match c.val() {
        "except" => parse_except(c, f),
        "max_fails" => parse_max_fails(c, f),
        "max_connect_attempts" => parse_max_connect_attempts(c, f),
        "health_check" => parse_health_check(c, f),
        "force_tcp" => parse_force_tcp(c, f),
        "prefer_udp" => parse_prefer_udp(c, f),
        "tls" => parse_tls(c, f),
        "tls_servername" => parse_tls_servername(c, f),
        "expire" => parse_expire(c, f),
        "max_age" => parse_max_age(c, f),
        "max_idle_conns" => parse_max_idle_conns(c, f),
        "read_timeout" => parse_read_timeout(c, f),
        "doh_method" => parse_doh_method(c, f),
        "policy" => parse_policy(c, f),
        "max_concurrent" => parse_max_concurrent(c, f),
        "next" => parse_next(c, f),
        "failover" => parse_failover(c, f),
        "next_on_nodata" => parse_next_on_nodata(c, f),
        "failfast_all_unhealthy_upstreams" => parse_failfast(c, f),
        "resolver" => parse_resolver(c, f),
        "source_address" => parse_source_address(c, f),
        other => Err(c.err(format!("unknown property '{other}'"))),
    }
}

/// The option's one argument (a missing one is an argument error).
fn one_arg(c: &mut Dispenser) -> Result<String, SetupError> {
    if !c.next_arg() {
        return Err(c.arg_err());
    }
    Ok(c.val().to_string())
}

/// An option without arguments.
fn no_args(c: &mut Dispenser) -> Result<(), SetupError> {
    if c.next_arg() {
        return Err(c.arg_err());
    }
    Ok(())
}

/// `except IGNORED_NAMES...`.
fn parse_except(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    let ignore = c.remaining_args();
    if ignore.is_empty() {
        return Err(c.arg_err());
    }
    for i in ignore {
        f.ignored.extend(normalize_exact(&i));
    }
    Ok(())
}

/// `max_fails INTEGER`.
fn parse_max_fails(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    f.max_fails = parse_uint32(&one_arg(c)?)?;
    Ok(())
}

/// `max_connect_attempts INTEGER`.
fn parse_max_connect_attempts(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    f.max_connect_attempts = Some(parse_uint32(&one_arg(c)?)?);
    Ok(())
}

/// `health_check DURATION [no_rec] [domain FQDN]`.
fn parse_health_check(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    let d = signed_duration(&one_arg(c)?)?;
    if d.negative {
        return Err(plain(format!(
            "health_check can't be negative: -{}",
            d.abs.as_nanos()
        )));
    }
    f.hc_interval = d.abs;
    f.hc_domain = ".".into();
    while c.next_arg() {
        match c.val() {
            "no_rec" => f.hc_recursion_desired = false,
            "domain" => {
                let d = one_arg(c)?;
                if !is_domain_name(&d) {
                    return Err(plain(format!("health_check: invalid domain name {d}")));
                }
                f.hc_domain = normalize_name(&d);
            }
            other => {
                return Err(plain(format!("health_check: unknown option {other}")));
            }
        }
    }
    Ok(())
}

/// `force_tcp`.
fn parse_force_tcp(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    no_args(c)?;
    f.force_tcp = true;
    Ok(())
}

/// `prefer_udp`.
fn parse_prefer_udp(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    no_args(c)?;
    f.prefer_udp = true;
    Ok(())
}

/// `tls [CERT KEY] [CA]`: the files are loaded now, as CoreDNS does.
fn parse_tls(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    let args = c.remaining_args();
    let Some(files) = TlsFiles::from_args(&args) else {
        return Err(c.arg_err());
    };
    crate::tls::check_args(&files).map_err(plain)?;
    f.tls = Some(files);
    Ok(())
}

/// `tls_servername NAME`.
fn parse_tls_servername(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    f.tls_servername = Some(one_arg(c)?);
    Ok(())
}

/// The one argument of `key`, a duration that must not be negative.
fn non_negative_duration(c: &mut Dispenser, key: &str) -> Result<Duration, SetupError> {
    let d = signed_duration(&one_arg(c)?)?;
    if d.negative {
        return Err(plain(format!("{key} can't be negative: {d}")));
    }
    Ok(d.abs)
}

/// `expire DURATION`.
fn parse_expire(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    f.expire = non_negative_duration(c, "expire")?;
    Ok(())
}

/// `max_age DURATION`.
fn parse_max_age(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    f.max_age = non_negative_duration(c, "max_age")?;
    Ok(())
}

/// `max_idle_conns INTEGER`.
fn parse_max_idle_conns(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    let n = atoi(&one_arg(c)?)?;
    if n < 0 {
        return Err(plain(format!("max_idle_conns can't be negative: {n}")));
    }
    f.max_idle_conns = usize::try_from(n).unwrap_or(usize::MAX);
    Ok(())
}

/// `read_timeout DURATION`.
fn parse_read_timeout(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    let d = signed_duration(&one_arg(c)?)?;
    if d.negative || d.abs.is_zero() {
        return Err(plain(format!("read_timeout must be positive: {d}")));
    }
    f.read_timeout = d.abs;
    Ok(())
}

/// `doh_method GET|POST`.
fn parse_doh_method(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    f.doh_method = match one_arg(c)?.as_str() {
        "GET" => DohMethod::Get,
        "POST" => DohMethod::Post,
        _ => return Err(plain("doh_method must be either POST or GET")),
    };
    Ok(())
}

/// `policy random|round_robin|sequential`.
fn parse_policy(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    f.policy = match one_arg(c)?.as_str() {
        "random" => Policy::Random,
        "round_robin" => Policy::RoundRobin,
        "sequential" => Policy::Sequential,
        x => return Err(c.err(format!("unknown policy '{x}'"))),
    };
    Ok(())
}

/// `max_concurrent MAX`.
fn parse_max_concurrent(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    let text = one_arg(c)?;
    let n = atoi(&text)?;
    if n < 0 {
        return Err(plain(format!("max_concurrent can't be negative: {n}")));
    }
    f.max_concurrent = (n, text);
    Ok(())
}

/// The rcodes of `next` or `failover` (which refuses NOERROR), checked in order.
fn rcode_args(c: &mut Dispenser, failover: bool) -> Result<Vec<u16>, SetupError> {
    let args = c.remaining_args();
    if args.is_empty() {
        return Err(c.arg_err());
    }
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        let Some(rc) = rcode_from_name(&a) else {
            return Err(plain(format!("{a} is not a valid rcode")));
        };
        if failover && rc == 0 {
            return Err(plain("NoError cannot be used in failover"));
        }
        out.push(rc);
    }
    Ok(out)
}

/// `next RCODE...`.
fn parse_next(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    let rcodes = rcode_args(c, false)?;
    f.next_rcodes.extend(rcodes);
    Ok(())
}

/// `failover RCODE...`.
fn parse_failover(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    let rcodes = rcode_args(c, true)?;
    f.failover_rcodes.extend(rcodes);
    Ok(())
}

/// `next_on_nodata`.
fn parse_next_on_nodata(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    no_args(c)?;
    f.next_on_nodata = true;
    Ok(())
}

/// `failfast_all_unhealthy_upstreams`.
fn parse_failfast(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    if !c.remaining_args().is_empty() {
        return Err(c.arg_err());
    }
    f.failfast = true;
    Ok(())
}

/// `resolver IP[:PORT]...`.
fn parse_resolver(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    let args = c.remaining_args();
    if args.is_empty() {
        return Err(c.arg_err());
    }
    for a in &args {
        let host = split_host_port(a)
            .map(|(h, _)| h)
            .unwrap_or_else(|| a.clone());
        if parse_ip(&host).is_none() {
            return Err(plain(format!(
                "resolver must be an IP address or IP:port: {}",
                go_quote(a)
            )));
        }
    }
    f.resolver = args;
    Ok(())
}

/// `source_address IP` (an IPv4-mapped IPv6 address as its IPv4 address).
fn parse_source_address(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    if !c.next_arg() {
        return Err(c.arg_err());
    }
    let Some(ip) = parse_ip(c.val()) else {
        return Err(c.err(format!("invalid IP address: {}", c.val())));
    };
    f.source_address = Some(match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    });
    Ok(())
}

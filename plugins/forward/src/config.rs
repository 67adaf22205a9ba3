//! Parsing one `forward FROM TO... { ... }` stanza, with CoreDNS's defaults, checks and error
//! texts.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ferrodns_go::strconv::quote as go_quote;
use ferrodns_go::time;
use ferrodns_plugin::corefile::{is_domain_name, normalize_exact, normalize_name};
use ferrodns_plugin::{Dispenser, SetupError};

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
    /// `tls` arguments as given (paths made absolute against `root` by CoreDNS; we have none).
    pub tls: Option<Vec<String>>,
    /// `tls_servername`.
    pub tls_servername: Option<String>,
    /// `doh_method` (POST).
    pub doh_method: String,
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
            doh_method: "POST".into(),
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

/// Go's `strconv.Atoi`.
fn parse_atoi(s: &str) -> Result<i64, SetupError> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(plain(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            go_quote(s)
        )));
    }
    s.parse::<i64>().map_err(|_| {
        plain(format!(
            "strconv.Atoi: parsing {}: value out of range",
            go_quote(s)
        ))
    })
}

/// A signed Go duration: (magnitude, negative).
fn parse_signed_duration(s: &str) -> Result<(Duration, bool), SetupError> {
    if let Some(rest) = s.strip_prefix('-') {
        return match time::parse_duration(rest) {
            Ok(d) if rest.starts_with(['-', '+']) => {
                // "--1s" and "-+1s" are invalid in Go.
                let _ = d;
                Err(plain(format!("time: invalid duration {}", go_quote(s))))
            }
            Ok(d) => Ok((d, !d.is_zero())),
            Err(_) => Err(plain(
                time::parse_duration(s)
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
            )),
        };
    }
    time::parse_duration(s)
        .map(|d| (d, false))
        .map_err(|e| plain(e.to_string()))
}

fn go_duration_text((d, neg): (Duration, bool)) -> String {
    if neg {
        format!("-{}", time::format_duration(d))
    } else {
        time::format_duration(d)
    }
}

/// The rcode number of a name as miekg/dns's `StringToRcode` (upper-cased input).
pub fn rcode_from_name(s: &str) -> Option<u16> {
    let up = s.to_ascii_uppercase();
    if up == "NOTIMPL" {
        return Some(4);
    }
    (0u16..=23).find(|&n| ferrodns_pkg::text::rcode_name(n) == Some(up.as_str()))
}

/// Go's `net.SplitHostPort`: `host:port` or `[host]:port`; `None` when Go fails.
pub fn split_host_port(s: &str) -> Option<(String, String)> {
    let (host, port) = ferrodns_go::net::split_host_port(s).ok()?;
    Some((host.to_string(), port.to_string()))
}

/// Go's `net.JoinHostPort`.
pub fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn strip_zone(host: &str) -> &str {
    match host.rfind('%') {
        Some(i) => &host[..i],
        None => host,
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok()
}

/// Split a `scheme://` prefix as CoreDNS's `parse.Transport` (dns when absent).
pub fn transport(s: &str) -> (&'static str, &str) {
    for scheme in ["tls", "dns", "quic", "grpc", "https3", "https", "unix"] {
        if let Some(rest) = s.strip_prefix(scheme).and_then(|r| r.strip_prefix("://")) {
            return (scheme, rest);
        }
    }
    ("dns", s)
}

/// CoreDNS's `splitZone`: take a `%servername` off an address, keeping its port.
pub fn split_zone(addr: &str) -> (String, String) {
    let (trans, host) = match addr.split_once("://") {
        Some((t, h)) => (t, h),
        None => ("", addr),
    };
    let mut new_host = host.to_string();
    let mut zone = String::new();
    if let Some(last) = host.rfind('%') {
        new_host = host[..last].to_string();
        if new_host.starts_with('[') {
            new_host.push(']');
        }
        zone = host[last + 1..].to_string();
        if let Some(colon) = zone.rfind(':') {
            new_host.push_str(&zone[colon..]);
            zone.truncate(colon);
            if let Some(z) = zone.strip_suffix(']') {
                zone = z.to_string();
            }
        }
    }
    if !trans.is_empty() {
        new_host = format!("{trans}://{new_host}");
    }
    (new_host, zone)
}

/// A resolv.conf-style file's name servers as `ip:53`.
fn try_file(path: &str) -> Result<Vec<String>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "failed to open file {}: {}",
                go_quote(path),
                go_quote(&format!("open {path}: no such file or directory"))
            ));
        }
        Err(e) => return Err(format!("open {path}: {e}")),
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 1 && f[0] == "nameserver" {
            out.push(join_host_port(strip_zone(f[1]), "53"));
        }
    }
    Ok(out)
}

/// What one TO entry is.
enum ToEntry {
    /// Addresses known now (IPs and files).
    Static(Vec<String>),
    /// A host name to resolve: (transport, hostname, port, servername).
    Host(&'static str, String, String, String),
}

/// CoreDNS's `parse.HostPortOrFile` for one entry. `Ok(None)` for a file without servers.
fn host_port_or_file(h: &str) -> Result<Option<Vec<String>>, String> {
    let (trans, host) = transport(h);
    if host.is_empty() {
        return Err(format!("invalid address: {}", go_quote(h)));
    }
    if trans == "unix" {
        return Ok(Some(vec![format!("unix://{host}")]));
    }
    let not_ip =
        |host: &str, e: String| format!("not an IP address or file {}: {e}", go_quote(host));
    let servers = match split_host_port(host) {
        None => {
            let host = host.trim_matches(|c| c == '[' || c == ']');
            if parse_ip(strip_zone(host)).is_none() {
                match try_file(host) {
                    Ok(s) => s,
                    Err(e) => return Err(not_ip(host, e)),
                }
            } else {
                let port = match trans {
                    "tls" | "quic" => "853",
                    "grpc" | "https" => "443",
                    _ => "53",
                };
                let joined = join_host_port(host, port);
                vec![if trans == "dns" {
                    joined
                } else {
                    format!("{trans}://{joined}")
                }]
            }
        }
        Some((addr, _)) => {
            if parse_ip(strip_zone(&addr)).is_none() {
                match try_file(host) {
                    Ok(s) => s,
                    Err(e) => return Err(not_ip(host, e)),
                }
            } else {
                vec![h.to_string()]
            }
        }
    };
    if servers.is_empty() {
        return Ok(None);
    }
    Ok(Some(servers))
}

fn classify(to: &[String]) -> Result<Vec<ToEntry>, String> {
    let mut out = Vec::new();
    for h in to {
        match host_port_or_file(h) {
            Ok(Some(s)) => out.push(ToEntry::Static(s)),
            Ok(None) => continue,
            Err(e) if e.contains("not an IP address or file") => {
                let Some(entry) = host_entry(h) else {
                    return Err(format!(
                        "not an IP address, file, or valid domain: {}",
                        go_quote(h)
                    ));
                };
                out.push(entry);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn host_entry(h: &str) -> Option<ToEntry> {
    let (clean, zone) = split_zone(h);
    let (trans, host) = transport(&clean);
    let port = match trans {
        "dns" => "53",
        "tls" => "853",
        "https" => "443",
        _ => return None,
    };
    let (mut hostname, mut port) = (host.to_string(), port.to_string());
    if let Some((h2, p)) = split_host_port(host) {
        hostname = h2;
        port = p;
    }
    let hostname = hostname.trim_matches(|c| c == '[' || c == ']').to_string();
    if hostname.is_empty() || !is_domain_name(&hostname) || parse_ip(&hostname).is_some() {
        return None;
    }
    Some(ToEntry::Host(trans, hostname, port, zone))
}

fn format_resolved(ip: IpAddr, port: &str, trans: &str, zone: &str) -> String {
    let ip_s = ip.to_string();
    match trans {
        "tls" | "https" => {
            if !zone.is_empty() {
                if ip.is_ipv6() {
                    format!("{trans}://[{ip_s}%{zone}]:{port}")
                } else {
                    format!("{trans}://{ip_s}%{zone}:{port}")
                }
            } else {
                format!("{trans}://{}", join_host_port(&ip_s, port))
            }
        }
        _ => join_host_port(&ip_s, port),
    }
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
    for addr in &to {
        let (trans, h) = transport(addr);
        if trans == "https" && h.contains('/') {
            return Err(plain(format!(
                "paths are not allowed in HTTPS upstream addresses (the /dns-query path is used by default): {addr}"
            )));
        }
    }
    let entries = classify(&to).map_err(plain)?;
    f.to_entries = entries.len();
    // Expand host names, then de-duplicate on ip:port (first wins).
    let mut hosts: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for e in entries {
        let addrs = match e {
            ToEntry::Static(a) => a,
            ToEntry::Host(trans, name, port, zone) => {
                let ips = crate::resolve::lookup(&name, &f.resolver)
                    .map_err(|e| plain(format!("failed to resolve {}: {e}", go_quote(&name))))?;
                ips.into_iter()
                    .map(|ip| format_resolved(ip, &port, trans, &zone))
                    .collect()
            }
        };
        for a in addrs {
            let (host, _) = split_zone(&a);
            let key = transport(&host).1.to_string();
            if seen.insert(key) {
                hosts.push(a);
            }
        }
    }
    if hosts.is_empty() {
        return Err(plain("no valid upstream addresses found"));
    }
    for hz in hosts {
        let (host, server_name) = split_zone(&hz);
        let (trans, h) = transport(&host);
        let scheme = match trans {
            "dns" => Scheme::Dns,
            "tls" => Scheme::Tls,
            "https" => Scheme::Https,
            other => {
                return Err(plain(format!(
                    "'{other}' is not supported as a destination protocol in forward: {host}"
                )));
            }
        };
        let mut sn = None;
        if scheme == Scheme::Tls && !server_name.is_empty() {
            if let Some(fsn) = &f.tls_servername {
                return Err(plain(format!(
                    "both forward ('{fsn}') and proxy level ('{server_name}') TLS servernames are set for upstream proxy '{host}'"
                )));
            }
            sn = Some(server_name);
        }
        let socket = split_host_port(h).and_then(|(ip, port)| {
            let ip = parse_ip(strip_zone(&ip))?;
            Some(SocketAddr::new(ip, port.parse::<u16>().ok()?))
        });
        f.upstreams.push(UpstreamSpec {
            addr: h.to_string(),
            socket,
            scheme,
            server_name: sn,
        });
    }
    Ok(f)
}

fn parse_option(c: &mut Dispenser, f: &mut Config) -> Result<(), SetupError> {
    let key = c.val().to_string();
    match key.as_str() {
        "except" => {
            let ignore = c.remaining_args();
            if ignore.is_empty() {
                return Err(c.arg_err());
            }
            for i in ignore {
                f.ignored.extend(normalize_exact(&i));
            }
        }
        "max_fails" => {
            if !c.next_arg() {
                return Err(c.arg_err());
            }
            f.max_fails = parse_uint32(c.val())?;
        }
        "max_connect_attempts" => {
            if !c.next_arg() {
                return Err(c.arg_err());
            }
            f.max_connect_attempts = Some(parse_uint32(c.val())?);
        }
        "health_check" => {
            if !c.next_arg() {
                return Err(c.arg_err());
            }
            let d = parse_signed_duration(c.val())?;
            if d.1 {
                return Err(plain(format!(
                    "health_check can't be negative: -{}",
                    d.0.as_nanos()
                )));
            }
            f.hc_interval = d.0;
            f.hc_domain = ".".into();
            while c.next_arg() {
                match c.val() {
                    "no_rec" => f.hc_recursion_desired = false,
                    "domain" => {
                        if !c.next_arg() {
                            return Err(c.arg_err());
                        }
                        let d = c.val().to_string();
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
        }
        "force_tcp" => {
            if c.next_arg() {
                return Err(c.arg_err());
            }
            f.force_tcp = true;
        }
        "prefer_udp" => {
            if c.next_arg() {
                return Err(c.arg_err());
            }
            f.prefer_udp = true;
        }
        "tls" => {
            let args = c.remaining_args();
            if args.len() > 3 {
                return Err(c.arg_err());
            }
            crate::tls::check_args(&args).map_err(plain)?;
            f.tls = Some(args);
        }
        "tls_servername" => {
            if !c.next_arg() {
                return Err(c.arg_err());
            }
            f.tls_servername = Some(c.val().to_string());
        }
        "expire" | "max_age" => {
            if !c.next_arg() {
                return Err(c.arg_err());
            }
            let d = parse_signed_duration(c.val())?;
            if d.1 {
                return Err(plain(format!(
                    "{key} can't be negative: {}",
                    go_duration_text(d)
                )));
            }
            if key == "expire" {
                f.expire = d.0;
            } else {
                f.max_age = d.0;
            }
        }
        "max_idle_conns" => {
            if !c.next_arg() {
                return Err(c.arg_err());
            }
            let n = parse_atoi(c.val())?;
            if n < 0 {
                return Err(plain(format!("max_idle_conns can't be negative: {n}")));
            }
            f.max_idle_conns = usize::try_from(n).unwrap_or(usize::MAX);
        }
        "read_timeout" => {
            if !c.next_arg() {
                return Err(c.arg_err());
            }
            let d = parse_signed_duration(c.val())?;
            if d.1 || d.0.is_zero() {
                return Err(plain(format!(
                    "read_timeout must be positive: {}",
                    go_duration_text(d)
                )));
            }
            f.read_timeout = d.0;
        }
        "doh_method" => {
            if !c.next_arg() {
                return Err(c.arg_err());
            }
            match c.val() {
                "GET" | "POST" => f.doh_method = c.val().to_string(),
                _ => return Err(plain("doh_method must be either POST or GET")),
            }
        }
        "policy" => {
            if !c.next_arg() {
                return Err(c.arg_err());
            }
            f.policy = match c.val() {
                "random" => Policy::Random,
                "round_robin" => Policy::RoundRobin,
                "sequential" => Policy::Sequential,
                x => return Err(c.err(format!("unknown policy '{x}'"))),
            };
        }
        "max_concurrent" => {
            if !c.next_arg() {
                return Err(c.arg_err());
            }
            let n = parse_atoi(c.val())?;
            if n < 0 {
                return Err(plain(format!("max_concurrent can't be negative: {n}")));
            }
            f.max_concurrent = (n, c.val().to_string());
        }
        "next" | "failover" => {
            let args = c.remaining_args();
            if args.is_empty() {
                return Err(c.arg_err());
            }
            for a in args {
                let Some(rc) = rcode_from_name(&a) else {
                    return Err(plain(format!("{a} is not a valid rcode")));
                };
                if key == "failover" {
                    if rc == 0 {
                        return Err(plain("NoError cannot be used in failover"));
                    }
                    f.failover_rcodes.push(rc);
                } else {
                    f.next_rcodes.push(rc);
                }
            }
        }
        "next_on_nodata" => {
            if c.next_arg() {
                return Err(c.arg_err());
            }
            f.next_on_nodata = true;
        }
        "failfast_all_unhealthy_upstreams" => {
            if !c.remaining_args().is_empty() {
                return Err(c.arg_err());
            }
            f.failfast = true;
        }
        "resolver" => {
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
        }
        "source_address" => {
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
        }
        other => return Err(c.err(format!("unknown property '{other}'"))),
    }
    Ok(())
}

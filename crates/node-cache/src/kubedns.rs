//! The legacy `kube-dns` ConfigMap as node-cache reads it from its mounted directory
//! (`/etc/kube-dns`): keys `stubDomains` (JSON object, domain → list of servers),
//! `upstreamNameservers` (JSON list) and `federations` (`name=domain,...`; parsed and
//! validated, otherwise unused).
//!
//! Two validations exist, as upstream:
//! * [`KubeDnsConfig::validate`] is kube-dns's own (stub domains must be DNS-1123 subdomains,
//!   their servers an IP, `IP:port` or a hostname; at most three upstreams, each an IP or
//!   `IP:port`). A directory whose content fails it (or whose JSON does not parse) is ignored
//!   and the caller keeps the config it had ([`parse`] returns the error).
//! * [`KubeDnsConfig::validate_forward`] is node-cache's check that every server list is a
//!   valid `forward` target list (IP, `IP:port`, `[v6]:port` or a resolv.conf-style file, over
//!   `dns://` or `tls://` only). It runs before every Corefile rewrite.
//!
//! Error texts are upstream's (Go formatting of `%q` and `%s` of lists included), so the log
//! lines read the same. Where upstream iterates a Go map (random order) we go in sorted order,
//! which only decides *which* error is reported when several entries are bad.

use std::collections::BTreeMap;

use ferrodns_go::fmt::quote_list as go_quote_list;
use ferrodns_go::net::join_host_port;
pub(crate) use ferrodns_go::strconv::quote as go_quote;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use tracing::error;

/// ConfigMap key of the stub domains (JSON object of lists).
pub const KEY_STUB_DOMAINS: &str = "stubDomains";
/// ConfigMap key of the upstream nameservers (JSON list).
pub const KEY_UPSTREAM_NAMESERVERS: &str = "upstreamNameservers";
/// ConfigMap key of the federations (`name=domain,...`).
pub const KEY_FEDERATIONS: &str = "federations";

/// The kube-dns configuration. `Default` is the empty config (no ConfigMap).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeDnsConfig {
    /// Federation name → domain; validated, otherwise unused by node-cache.
    pub federations: BTreeMap<String, String>,
    /// Stub domain → its servers, in the order given. A `BTreeMap`, so blocks render sorted.
    pub stub_domains: BTreeMap<String, Vec<String>>,
    /// Upstream nameservers replacing `/etc/resolv.conf`.
    pub upstream_nameservers: Vec<String>,
}

/// Why a kube-dns ConfigMap directory's content was rejected (the old config stays).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeDnsError {
    /// `stubDomains` or `upstreamNameservers` is not JSON of the right shape.
    #[error("{message}")]
    Json {
        /// The ConfigMap key.
        key: &'static str,
        /// The raw value.
        value: String,
        /// The decoder's message (Go's wording where it is easy to match; see [`parse`]).
        message: String,
    },
    /// `federations` does not parse.
    #[error("{source}")]
    Federations {
        /// The raw value.
        value: String,
        /// What is wrong with it.
        source: ValidationError,
    },
    /// The parsed config fails kube-dns's validation.
    #[error("{source}")]
    Invalid {
        /// What is wrong.
        source: ValidationError,
        /// The config as parsed (upstream prints it in the log line).
        config: Box<KubeDnsConfig>,
    },
}

impl KubeDnsError {
    /// Log this rejection with upstream's lines (all at error level).
    pub fn log(&self) {
        match self {
            KubeDnsError::Json {
                key,
                value,
                message,
            } => {
                error!(target: "node-cache", "Invalid JSON {}: {}", go_quote(value), message);
                error!(target: "node-cache", "Invalid configuration for {}, ignoring update: {}", key, message);
            }
            KubeDnsError::Federations { value, source } => {
                error!(target: "node-cache", "Invalid federations value: {} (value was {})", source, go_quote(value));
                error!(target: "node-cache", "Invalid configuration for {}, ignoring update: {}", KEY_FEDERATIONS, source);
            }
            KubeDnsError::Invalid { source, config } => {
                error!(target: "node-cache", "Invalid configuration: {} (value was {}), ignoring update", source, config.go_debug());
            }
        }
    }
}

/// kube-dns's validation errors, worded as upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// A federation entry without `=`.
    #[error("invalid format, must be key=value")]
    ExpectedKeyEqualsValue,
    /// A federation name that is not a DNS-1123 label.
    #[error("{} not a valid federation name: {}", go_quote(.name), go_quote_list(.errors))]
    FederationName {
        /// The name.
        name: String,
        /// apimachinery's messages.
        errors: Vec<String>,
    },
    /// A federation domain that is not a DNS-1123 subdomain.
    #[error("{} not a valid domain name: {}", go_quote(.domain), go_quote_list(.errors))]
    FederationDomain {
        /// The domain.
        domain: String,
        /// apimachinery's messages.
        errors: Vec<String>,
    },
    /// A stub domain that is not a DNS-1123 subdomain.
    #[error("invalid domain name: {}", go_quote(.0))]
    DomainName(String),
    /// A stub-domain server that is neither `IP[:port]` nor a hostname.
    #[error("invalid nameserver: {}", go_quote(.0))]
    Nameserver(String),
    /// More than three upstream nameservers.
    #[error("upstreamNameserver cannot have more than three entries")]
    TooManyUpstreams,
    /// An upstream that is not an IP and does not split as `host:port` (Go's `net.AddrError`).
    #[error("address {addr}: {reason}")]
    Address {
        /// The upstream as given.
        addr: String,
        /// Go's reason (`missing port in address`, `too many colons in address`, ...).
        reason: &'static str,
    },
    /// An upstream `host:port` whose host is not an IP.
    #[error("bad IP address: {}", go_quote(.0))]
    BadIp(String),
    /// An upstream `IP:port` whose port is not in 1..=65535.
    #[error("bad port number: {}", go_quote(.0))]
    BadPort(String),
}

/// node-cache's check that a list is usable as `forward` targets (§3.3 step 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// A stub domain's servers.
    #[error("invalid nameservers {} for the stub domain {domain}: {source}", go_list(.servers))]
    StubDomain {
        /// The stub domain.
        domain: String,
        /// Its servers.
        servers: Vec<String>,
        /// What is wrong.
        source: ForwardTargetError,
    },
    /// The upstream nameservers.
    #[error("invalid upstream nameservers {}: {source}", go_list(.servers))]
    Upstream {
        /// The servers.
        servers: Vec<String>,
        /// What is wrong.
        source: ForwardTargetError,
    },
}

/// Why one list of forward targets is refused (CoreDNS's `parse.HostPortOrFile` wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardTargetError {
    /// Neither an address nor a readable file.
    #[error("not an IP address or file: {}", go_quote(.0))]
    NotIpOrFile(String),
    /// The list (files included) yields no server.
    #[error("no nameservers found")]
    NoNameservers,
    /// A transport other than `dns://` and `tls://`.
    #[error("unsupported transport {transport} of nameserver {host}")]
    UnsupportedTransport {
        /// The transport name.
        transport: String,
        /// The server, as CoreDNS normalised it.
        host: String,
    },
}

/// Build the config from a directory's files (name → content), as kube-dns does: no files →
/// the empty config; otherwise parse `federations`, `stubDomains`, `upstreamNameservers` (in
/// this order; upstream's order is random) and validate. Other file names are ignored.
///
/// JSON follows Go's `encoding/json` into `map[string][]string` / `[]string`: `null` is an empty
/// map or list, a `null` list element is `""`, a repeated key keeps its last value. Syntax-error
/// texts are the decoder's own except `unexpected end of JSON input`, which is Go's.
pub fn parse(data: &BTreeMap<String, String>) -> Result<KubeDnsConfig, KubeDnsError> {
    let mut config = KubeDnsConfig::default();
    if data.is_empty() {
        return Ok(config);
    }
    if let Some(value) = data.get(KEY_FEDERATIONS) {
        config.federations =
            parse_federations(value).map_err(|source| KubeDnsError::Federations {
                value: value.clone(),
                source,
            })?;
    }
    if let Some(value) = data.get(KEY_STUB_DOMAINS) {
        config.stub_domains =
            json_string_list_map(value).map_err(|message| KubeDnsError::Json {
                key: KEY_STUB_DOMAINS,
                value: value.clone(),
                message,
            })?;
    }
    if let Some(value) = data.get(KEY_UPSTREAM_NAMESERVERS) {
        config.upstream_nameservers =
            json_string_list(value).map_err(|message| KubeDnsError::Json {
                key: KEY_UPSTREAM_NAMESERVERS,
                value: value.clone(),
                message,
            })?;
    }
    if let Err(source) = config.validate() {
        return Err(KubeDnsError::Invalid {
            source,
            config: Box::new(config),
        });
    }
    Ok(config)
}

impl KubeDnsConfig {
    /// kube-dns's validation: federations, then stub domains, then upstreams.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (name, domain) in &self.federations {
            validate_federation_name(name)?;
            validate_federation_domain(domain)?;
        }
        for (domain, servers) in &self.stub_domains {
            if !dns1123_subdomain_errors(domain).is_empty() {
                return Err(ValidationError::DomainName(domain.clone()));
            }
            for ns in servers {
                validate_stub_server(ns)?;
            }
        }
        if self.upstream_nameservers.len() > 3 {
            return Err(ValidationError::TooManyUpstreams);
        }
        for ns in &self.upstream_nameservers {
            validate_upstream(ns)?;
        }
        Ok(())
    }

    /// node-cache's check before rendering (§3.3 step 1): each stub domain's servers, then the
    /// upstreams, must be valid `forward` targets. Files named in the lists are opened.
    pub fn validate_forward(&self) -> Result<(), ForwardError> {
        for (domain, servers) in &self.stub_domains {
            validate_forward_targets(servers).map_err(|source| ForwardError::StubDomain {
                domain: domain.clone(),
                servers: servers.clone(),
                source,
            })?;
        }
        validate_forward_targets(&self.upstream_nameservers).map_err(|source| {
            ForwardError::Upstream {
                servers: self.upstream_nameservers.clone(),
                source,
            }
        })
    }

    /// The config as Go prints it with `%+v` (used in upstream's rejection log line).
    pub fn go_debug(&self) -> String {
        let feds: Vec<String> = self
            .federations
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        let stubs: Vec<String> = self
            .stub_domains
            .iter()
            .map(|(k, v)| format!("{k}:{}", go_list(v)))
            .collect();
        format!(
            "&{{TypeMeta:{{Kind: APIVersion:}} Federations:map[{}] StubDomains:map[{}] UpstreamNameservers:{}}}",
            feds.join(" "),
            stubs.join(" "),
            go_list(&self.upstream_nameservers)
        )
    }
}

/// Check one list of `forward` targets as node-cache does (CoreDNS's `parse.HostPortOrFile`
/// then a transport check): each entry is `[scheme://]IP`, `[scheme://]IP:port`, `[v6]:port`
/// (a `%zone` is allowed) or the path of a readable resolv.conf-style file, whose
/// `nameserver` lines count as servers. Only `dns` and `tls` transports pass. An empty list
/// passes (nothing to check).
pub fn validate_forward_targets(servers: &[String]) -> Result<(), ForwardTargetError> {
    if servers.is_empty() {
        return Ok(());
    }
    let mut hosts: Vec<String> = Vec::new();
    for h in servers {
        let (trans, host) = split_transport(h);
        match split_host_port(host) {
            Err(_) => {
                if parse_ip(strip_zone(host)).is_none() {
                    hosts.extend(nameservers_of_file(host)?);
                    continue;
                }
                let normalised = match trans {
                    "dns" => join_host_port(host, "53"),
                    "tls" => format!("tls://{}", join_host_port(host, "853")),
                    "grpc" => format!("grpc://{}", join_host_port(host, "443")),
                    "https" => format!("https://{}", join_host_port(host, "443")),
                    // CoreDNS appends an empty string for the other schemes.
                    _ => String::new(),
                };
                hosts.push(normalised);
            }
            Ok((addr, _)) => {
                if parse_ip(strip_zone(addr)).is_none() {
                    hosts.extend(nameservers_of_file(host)?);
                    continue;
                }
                hosts.push(h.clone());
            }
        }
    }
    if hosts.is_empty() {
        return Err(ForwardTargetError::NoNameservers);
    }
    for host in &hosts {
        let (trans, _) = split_transport(host);
        if trans != "dns" && trans != "tls" {
            return Err(ForwardTargetError::UnsupportedTransport {
                transport: trans.to_string(),
                host: host.clone(),
            });
        }
    }
    Ok(())
}

/// The servers of a resolv.conf-style file (`host:53` for each `nameserver X` line), or
/// `NotIpOrFile` when it cannot be opened. As with Go's resolver-config reader, a file that
/// opens but cannot be read (a directory) yields no servers rather than an error.
fn nameservers_of_file(path: &str) -> Result<Vec<String>, ForwardTargetError> {
    let not_found = || ForwardTargetError::NotIpOrFile(path.to_string());
    if path.is_empty() {
        return Err(not_found());
    }
    let file = std::fs::File::open(Path::new(path)).map_err(|_| not_found())?;
    let mut text = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(file), &mut text);
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            match (f.next(), f.next()) {
                (Some("nameserver"), Some(ns)) => Some(join_host_port(ns, "53")),
                _ => None,
            }
        })
        .collect())
}

/// CoreDNS's `parse.Transport`: the scheme (default `dns`) and the rest.
fn split_transport(s: &str) -> (&str, &str) {
    for t in ["tls", "dns", "quic", "grpc", "https3", "https", "unix"] {
        if let Some(rest) = s.strip_prefix(t).and_then(|r| r.strip_prefix("://")) {
            return (t, rest);
        }
    }
    ("dns", s)
}

fn strip_zone(host: &str) -> &str {
    match host.rfind('%') {
        Some(i) => &host[..i],
        None => host,
    }
}

fn parse_federations(value: &str) -> Result<BTreeMap<String, String>, ValidationError> {
    let mut out = BTreeMap::new();
    if value.trim().is_empty() {
        return Ok(out);
    }
    for item in value.split(',') {
        let Some((name, domain)) = item.trim().split_once('=') else {
            return Err(ValidationError::ExpectedKeyEqualsValue);
        };
        let (name, domain) = (name.trim(), domain.trim());
        validate_federation_name(name)?;
        validate_federation_domain(domain)?;
        out.insert(name.to_string(), domain.to_string());
    }
    Ok(out)
}

fn validate_federation_name(name: &str) -> Result<(), ValidationError> {
    let errors = dns1123_label_errors(name);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationError::FederationName {
            name: name.to_string(),
            errors,
        })
    }
}

fn validate_federation_domain(domain: &str) -> Result<(), ValidationError> {
    let errors = dns1123_subdomain_errors(domain);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationError::FederationDomain {
            domain: domain.to_string(),
            errors,
        })
    }
}

/// kube-dns's stub-domain server rule: an optional port must be a 16-bit number; then the host
/// must be an IP (leading zeros allowed, as apimachinery's sloppy parser) unless the *whole*
/// entry is a DNS-1123 subdomain (so `ns.example.com` passes, `ns.example.com:53` does not).
fn validate_stub_server(ns: &str) -> Result<(), ValidationError> {
    let (host, port) = match split_host_port(ns) {
        Ok((h, p)) => (h, p),
        Err(_) => (ns, ""),
    };
    let port_ok = port.is_empty()
        || (port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok());
    if !port_ok {
        return Err(ValidationError::Nameserver(ns.to_string()));
    }
    if parse_ip_sloppy(host).is_none() && !dns1123_subdomain_errors(ns).is_empty() {
        return Err(ValidationError::Nameserver(ns.to_string()));
    }
    Ok(())
}

/// kube-dns's `ValidateNameserverIpAndPort`.
fn validate_upstream(ns: &str) -> Result<(), ValidationError> {
    if parse_ip(ns).is_some() {
        return Ok(());
    }
    let (host, port) = split_host_port(ns).map_err(|reason| ValidationError::Address {
        addr: ns.to_string(),
        reason,
    })?;
    if parse_ip(host).is_none() {
        return Err(ValidationError::BadIp(host.to_string()));
    }
    match ferrodns_go::strconv::atoi(port).ok() {
        Some(p) if (1..=65535).contains(&p) => Ok(()),
        _ => Err(ValidationError::BadPort(port.to_string())),
    }
}

/// Go's `net.SplitHostPort`, with Go's bare reason (`missing port in address`) as the error.
fn split_host_port(addr: &str) -> Result<(&str, &str), &'static str> {
    ferrodns_go::net::split_host_port(addr).map_err(|e| e.reason)
}

/// Go's `net.ParseIP` (strict: no leading zeros, no zone).
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    match s.bytes().find(|&b| b == b'.' || b == b':') {
        Some(b'.') => s.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        Some(b':') => s.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        _ => None,
    }
}

/// apimachinery's `ParseIPSloppy` (Go's parser before 1.17): IPv4 parts may have leading zeros.
fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    match s.bytes().find(|&b| b == b'.' || b == b':') {
        Some(b'.') => {
            let mut octets = [0u8; 4];
            let mut parts = s.split('.');
            for o in &mut octets {
                let p = parts.next()?;
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let trimmed = p.trim_start_matches('0');
                if trimmed.len() > 3 {
                    return None;
                }
                *o = if trimmed.is_empty() {
                    0
                } else {
                    trimmed.parse::<u8>().ok()?
                };
            }
            if parts.next().is_some() {
                return None;
            }
            Some(IpAddr::V4(Ipv4Addr::from(octets)))
        }
        Some(b':') => s.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        _ => None,
    }
}

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(is_dns1123_label)
}

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";

/// apimachinery's `IsDNS1123Label` messages.
fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !is_dns1123_label(s) {
        if is_dns1123_subdomain(s) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(format!(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '{DNS1123_LABEL_FMT}')"
            ));
        }
    }
    errs
}

/// apimachinery's `IsDNS1123Subdomain` messages.
fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if !is_dns1123_subdomain(s) {
        errs.push(format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '{DNS1123_LABEL_FMT}(\\.{DNS1123_LABEL_FMT})*')"
        ));
    }
    errs
}

/// The JSON kinds as Go's decoder names them in type errors.
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

fn json_value(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| {
        if e.is_eof() {
            "unexpected end of JSON input".to_string()
        } else {
            e.to_string()
        }
    })
}

fn type_error(v: &serde_json::Value, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go value of type {go_type}",
        json_kind(v)
    )
}

fn strings_of(v: &serde_json::Value) -> Result<Vec<String>, String> {
    match v {
        serde_json::Value::Null => Ok(Vec::new()),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Null => Ok(String::new()),
                other => Err(type_error(other, "string")),
            })
            .collect(),
        other => Err(type_error(other, "[]string")),
    }
}

fn json_string_list(text: &str) -> Result<Vec<String>, String> {
    strings_of(&json_value(text)?)
}

fn json_string_list_map(text: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    match json_value(text)? {
        serde_json::Value::Null => Ok(BTreeMap::new()),
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), strings_of(v)?)))
            .collect(),
        other => Err(type_error(&other, "map[string][]string")),
    }
}

/// Go's `%s`/`%v` of a `[]string`: `[a b]`.
pub(crate) fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_directory_is_empty_config() {
        assert_eq!(parse(&BTreeMap::new()), Ok(KubeDnsConfig::default()));
        assert_eq!(
            parse(&data(&[("other", "x")])),
            Ok(KubeDnsConfig::default())
        );
    }

    #[test]
    fn parses_stub_domains_and_upstreams() {
        let cfg = parse(&data(&[
            (
                "stubDomains",
                r#"{"acme.local": ["1.2.3.4"], "b.example": ["10.0.0.1:5353", "[fd00::1]:53", "ns.example.com"]}"#,
            ),
            ("upstreamNameservers", r#"["8.8.8.8", "8.8.4.4:53"]"#),
            ("federations", "myfed=example.com"),
        ]))
        .unwrap();
        assert_eq!(cfg.stub_domains["acme.local"], vec!["1.2.3.4"]);
        assert_eq!(cfg.stub_domains["b.example"].len(), 3);
        assert_eq!(cfg.upstream_nameservers, vec!["8.8.8.8", "8.8.4.4:53"]);
        assert_eq!(cfg.federations["myfed"], "example.com");
    }

    #[test]
    fn json_nulls_behave_as_go() {
        let cfg = parse(&data(&[
            ("stubDomains", "null"),
            ("upstreamNameservers", "null"),
        ]))
        .unwrap();
        assert_eq!(cfg, KubeDnsConfig::default());
    }

    #[test]
    fn bad_json_is_rejected() {
        let err = parse(&data(&[("upstreamNameservers", "")])).unwrap_err();
        assert_eq!(err.to_string(), "unexpected end of JSON input");
        let err = parse(&data(&[("upstreamNameservers", r#"{"a":1}"#)])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "json: cannot unmarshal object into Go value of type []string"
        );
        let err = parse(&data(&[("stubDomains", r#"{"a": [1]}"#)])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "json: cannot unmarshal number into Go value of type string"
        );
        assert!(matches!(
            parse(&data(&[("stubDomains", "{")])),
            Err(KubeDnsError::Json {
                key: "stubDomains",
                ..
            })
        ));
    }

    #[test]
    fn validation_errors_read_as_upstream() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "stubDomains",
                r#"{"Acme.local": ["1.2.3.4"]}"#,
                r#"invalid domain name: "Acme.local""#,
            ),
            (
                "stubDomains",
                r#"{"acme.local": ["1.2.3.4:99999"]}"#,
                r#"invalid nameserver: "1.2.3.4:99999""#,
            ),
            (
                "stubDomains",
                r#"{"acme.local": ["ns.example.com:53"]}"#,
                r#"invalid nameserver: "ns.example.com:53""#,
            ),
            (
                "upstreamNameservers",
                r#"["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"]"#,
                "upstreamNameserver cannot have more than three entries",
            ),
            (
                "upstreamNameservers",
                r#"["dns.google"]"#,
                "address dns.google: missing port in address",
            ),
            (
                "upstreamNameservers",
                r#"["dns.google:53"]"#,
                r#"bad IP address: "dns.google""#,
            ),
            (
                "upstreamNameservers",
                r#"["8.8.8.8:0"]"#,
                r#"bad port number: "0""#,
            ),
            (
                "upstreamNameservers",
                r#"["1:2:3"]"#,
                "address 1:2:3: too many colons in address",
            ),
        ];
        for (key, value, want) in cases {
            let err = parse(&data(&[(key, value)])).unwrap_err();
            assert!(matches!(err, KubeDnsError::Invalid { .. }), "{value}");
            assert_eq!(err.to_string(), *want, "{value}");
        }
    }

    #[test]
    fn stub_servers_accept_sloppy_ips_and_bare_v6() {
        for ns in [
            "010.001.002.003",
            "::1",
            "fe80::1:53",
            "[::1]:53",
            "1.2.3.4:53",
        ] {
            assert_eq!(validate_stub_server(ns), Ok(()), "{ns}");
        }
    }

    #[test]
    fn federations_validated() {
        let err = parse(&data(&[("federations", "noequals")])).unwrap_err();
        assert_eq!(err.to_string(), "invalid format, must be key=value");
        let err = parse(&data(&[("federations", "Bad=example.com")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(r#""Bad" not a valid federation name: ["a lowercase RFC 1123 label"#),
            "{err}"
        );
        let err = parse(&data(&[("federations", "a=b.c")])).map(|c| c.federations);
        assert_eq!(err.unwrap()["a"], "b.c");
    }

    #[test]
    fn go_debug_prints_like_go() {
        let mut cfg = KubeDnsConfig::default();
        cfg.stub_domains.insert(
            "acme.local".into(),
            vec!["1.2.3.4".into(), "5.6.7.8".into()],
        );
        cfg.upstream_nameservers = vec!["8.8.8.8".into()];
        assert_eq!(
            cfg.go_debug(),
            "&{TypeMeta:{Kind: APIVersion:} Federations:map[] StubDomains:map[acme.local:[1.2.3.4 5.6.7.8]] UpstreamNameservers:[8.8.8.8]}"
        );
    }

    #[test]
    fn forward_targets() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(validate_forward_targets(&[]), Ok(()));
        assert_eq!(
            validate_forward_targets(&s(&["1.2.3.4", "1.2.3.4:53", "[fd00::1]:53", "fd00::1"])),
            Ok(())
        );
        assert_eq!(validate_forward_targets(&s(&["tls://1.2.3.4"])), Ok(()));
        assert_eq!(validate_forward_targets(&s(&["dns://1.2.3.4:53"])), Ok(()));
        assert_eq!(
            validate_forward_targets(&s(&["grpc://1.2.3.4"])),
            Err(ForwardTargetError::UnsupportedTransport {
                transport: "grpc".into(),
                host: "grpc://1.2.3.4:443".into()
            })
        );
        assert_eq!(
            validate_forward_targets(&s(&["https://1.2.3.4:443"]))
                .unwrap_err()
                .to_string(),
            "unsupported transport https of nameserver https://1.2.3.4:443"
        );
        assert_eq!(
            validate_forward_targets(&s(&["ns.example.com"]))
                .unwrap_err()
                .to_string(),
            r#"not an IP address or file: "ns.example.com""#
        );
        assert_eq!(
            validate_forward_targets(&s(&["/nonexistent/resolv.conf:53"]))
                .unwrap_err()
                .to_string(),
            r#"not an IP address or file: "/nonexistent/resolv.conf:53""#
        );
    }

    #[test]
    fn forward_targets_from_files() {
        let dir = std::env::temp_dir().join(format!("nc-kubedns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let with = dir.join("with");
        std::fs::write(&with, "# c\nnameserver 10.0.0.1\nsearch x\n").unwrap();
        let without = dir.join("without");
        std::fs::write(&without, "search x\n").unwrap();
        let p = |p: &std::path::Path| p.to_string_lossy().into_owned();
        assert_eq!(validate_forward_targets(&[p(&with)]), Ok(()));
        assert_eq!(
            validate_forward_targets(&[p(&without)]),
            Err(ForwardTargetError::NoNameservers)
        );
        let mut cfg = KubeDnsConfig::default();
        cfg.stub_domains
            .insert("acme.local".into(), vec!["ns.example.com".into()]);
        assert_eq!(
            cfg.validate_forward().unwrap_err().to_string(),
            r#"invalid nameservers [ns.example.com] for the stub domain acme.local: not an IP address or file: "ns.example.com""#
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn quoting() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
        assert_eq!(go_quote_list(&["a".into(), "b".into()]), r#"["a" "b"]"#);
    }

    #[test]
    fn split_host_port_as_go() {
        assert_eq!(split_host_port("1.2.3.4:53"), Ok(("1.2.3.4", "53")));
        assert_eq!(split_host_port("[::1]:53"), Ok(("::1", "53")));
        assert_eq!(split_host_port(":53"), Ok(("", "53")));
        assert_eq!(split_host_port("[::1]"), Err("missing port in address"));
        assert_eq!(split_host_port("[::1]x:53"), Err("missing port in address"));
        assert_eq!(
            split_host_port("[::1]::53"),
            Err("too many colons in address")
        );
        assert_eq!(split_host_port("[::1:53"), Err("missing ']' in address"));
        assert_eq!(split_host_port("a]:53"), Err("unexpected ']' in address"));
    }
}

//! The TO addresses of a stanza: their `scheme://` prefixes, `%servername` suffixes, IPs,
//! resolv.conf-style files and host names, turned into the stanza's upstream list with
//! CoreDNS's checks and error texts.

use std::net::{IpAddr, SocketAddr};

use ferrodns_go::strconv::quote as go_quote;
use ferrodns_plugin::SetupError;
use ferrodns_plugin::corefile::{Transport, is_domain_name};

use crate::config::{Config, Scheme, UpstreamSpec, split_host_port};
use ferrodns_go::net::join_host_port;

/// The upstream transport of a `scheme://` prefix, for the ones forward supports (dns, tls,
/// https); the others are refused.
pub fn upstream_scheme(t: Transport) -> Option<Scheme> {
    match t {
        Transport::Dns => Some(Scheme::Dns),
        Transport::Tls => Some(Scheme::Tls),
        Transport::Https => Some(Scheme::Https),
        Transport::Quic | Transport::Grpc | Transport::Https3 | Transport::Unix => None,
    }
}

fn plain(msg: impl Into<String>) -> SetupError {
    SetupError::new(msg)
}

/// `host` without a `%zone` suffix.
fn strip_zone(host: &str) -> &str {
    match host.rfind('%') {
        Some(i) => &host[..i],
        None => host,
    }
}

/// `s` as an IP address, if it is one.
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok()
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
    Host(Transport, String, String, String),
}

/// CoreDNS's `parse.HostPortOrFile` for one entry. `Ok(None)` for a file without servers.
fn host_port_or_file(h: &str) -> Result<Option<Vec<String>>, String> {
    let (trans, host) = Transport::split_scheme(h);
    if host.is_empty() {
        return Err(format!("invalid address: {}", go_quote(h)));
    }
    if trans == Transport::Unix {
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
                    Transport::Tls | Transport::Quic => "853",
                    Transport::Grpc | Transport::Https => "443",
                    _ => "53",
                };
                let joined = join_host_port(host, port);
                vec![if trans == Transport::Dns {
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
    let (trans, host) = Transport::split_scheme(&clean);
    let port = match upstream_scheme(trans)? {
        Scheme::Dns => "53",
        Scheme::Tls => "853",
        Scheme::Https => "443",
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

fn format_resolved(ip: IpAddr, port: &str, trans: Transport, zone: &str) -> String {
    let ip_s = ip.to_string();
    match trans {
        Transport::Tls | Transport::Https => {
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

/// Turn the TO addresses into `f.upstreams` (and count them into `f.to_entries`): host names
/// are resolved (with `f.resolver`), the result de-duplicated on `ip:port` (first wins) and each
/// address checked for a transport forward supports.
pub(crate) fn upstreams(to: &[String], f: &mut Config) -> Result<(), SetupError> {
    for addr in to {
        let (trans, h) = Transport::split_scheme(addr);
        if trans == Transport::Https && h.contains('/') {
            return Err(plain(format!(
                "paths are not allowed in HTTPS upstream addresses (the /dns-query path is used by default): {addr}"
            )));
        }
    }
    let entries = classify(to).map_err(plain)?;
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
            let key = Transport::split_scheme(&host).1.to_string();
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
        let (trans, h) = Transport::split_scheme(&host);
        let Some(scheme) = upstream_scheme(trans) else {
            return Err(plain(format!(
                "'{trans}' is not supported as a destination protocol in forward: {host}"
            )));
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
    Ok(())
}

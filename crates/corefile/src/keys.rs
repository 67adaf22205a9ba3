//! Server-block keys: `[SCHEME://]ZONE[:PORT]`, validated and normalised the
//! way CoreDNS's `InspectServerBlocks` does it (including reverse zones for
//! CIDR keys).

use std::fmt;

use ferrodns_go::strconv::quote;

use crate::error::CorefileError;
use crate::{ServerBlock, Token};

/// The transport a server block key selects with its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `dns://` (also the default without scheme): plain DNS over UDP and TCP.
    Dns,
    /// `tls://`: DNS over TLS.
    Tls,
    /// `quic://`: DNS over QUIC.
    Quic,
    /// `grpc://`: DNS over gRPC.
    Grpc,
    /// `https://`: DNS over HTTPS.
    Https,
    /// `https3://`: DNS over HTTP/3.
    Https3,
    /// `unix://`: DNS over a Unix socket.
    Unix,
}

impl Transport {
    /// The scheme name, e.g. `"dns"`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Transport::Dns => "dns",
            Transport::Tls => "tls",
            Transport::Quic => "quic",
            Transport::Grpc => "grpc",
            Transport::Https => "https",
            Transport::Https3 => "https3",
            Transport::Unix => "unix",
        }
    }

    /// The port used when a key has none. For [`Transport::Dns`] this is the
    /// compiled-in `53`; [`inspect_keys`] uses its `default_dns_port` argument
    /// (the `-dns.port` flag) instead. [`Transport::Unix`] has no default
    /// port (empty string), as in CoreDNS.
    pub fn default_port(&self) -> &'static str {
        match self {
            Transport::Dns => "53",
            Transport::Tls | Transport::Quic => "853",
            Transport::Grpc | Transport::Https | Transport::Https3 => "443",
            Transport::Unix => "",
        }
    }

    /// Splits a leading `scheme://` off `key` (CoreDNS's `parse.Transport`).
    /// Without a known (lower-case) scheme the key is returned unchanged with
    /// [`Transport::Dns`].
    pub fn split_scheme(key: &str) -> (Transport, &str) {
        const ORDER: [Transport; 7] = [
            Transport::Tls,
            Transport::Dns,
            Transport::Quic,
            Transport::Grpc,
            Transport::Https3,
            Transport::Https,
            Transport::Unix,
        ];
        for t in ORDER {
            if let Some(rest) = key
                .strip_prefix(t.scheme())
                .and_then(|r| r.strip_prefix("://"))
            {
                return (t, rest);
            }
        }
        (Transport::Dns, key)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

/// One zone a server block serves, after key inspection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ZoneAddr {
    /// Transport from the key's scheme.
    pub transport: Transport,
    /// Lower-cased, fully qualified zone, e.g. `example.org.` or `.`.
    pub zone: String,
    /// Port as decimal text (normalised, `053` -> `53`; may be empty for
    /// `unix://` keys without a port).
    pub port: String,
}

impl fmt::Display for ZoneAddr {
    /// Canonical form `dns://example.org.:53`, as CoreDNS rewrites the keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}:{}",
            self.transport.scheme(),
            self.zone,
            self.port
        )
    }
}

/// Inspects the keys of one server block like CoreDNS's
/// `InspectServerBlocks`: scheme, port (per-transport default; `dns` uses
/// `default_dns_port`, i.e. the `-dns.port` value), zone validation,
/// lower-casing and qualification, and CIDR keys expanded to their reverse
/// zones. Returns one entry per resulting key, in order (all zones of the
/// first key, then of the second, ...).
pub fn inspect_keys(
    block: &ServerBlock,
    default_dns_port: &str,
) -> Result<Vec<ZoneAddr>, CorefileError> {
    let mut out = Vec::new();
    for key in &block.keys {
        let fail = |message: String| key_error(key, message);
        let (transport, rest) = Transport::split_scheme(&key.text);
        let (hosts, port) = split_host_port(rest).map_err(fail)?;
        for h in &hosts {
            split_host_port(&fqdn(h)).map_err(fail)?;
        }
        let port = if port.is_empty() {
            match transport {
                Transport::Dns => default_dns_port.to_owned(),
                other => other.default_port().to_owned(),
            }
        } else {
            port
        };
        for h in hosts {
            out.push(ZoneAddr {
                transport,
                zone: normalize_name(&h),
                port: port.clone(),
            });
        }
    }
    Ok(out)
}

fn key_error(key: &Token, message: String) -> CorefileError {
    CorefileError::Key {
        file: key.file.to_string(),
        line: key.line,
        key: key.text.clone(),
        message,
    }
}

/// CoreDNS's `plugin.SplitHostPort` for a key without scheme: splits off a
/// numeric port after the last `:`, validates the zone, and expands a CIDR
/// into its reverse zones. Returns `(zones, port)` (port empty when absent,
/// zones not yet qualified) or CoreDNS's error message.
pub fn split_host_port(s: &str) -> Result<(Vec<String>, String), String> {
    let mut host = s;
    let mut port = String::new();
    match s.rfind(':') {
        Some(colon) if colon + 1 == s.len() => {
            return Err(format!("expecting data after last colon: {}", quote(s)));
        }
        None if s.is_empty() => {
            return Err(format!("expecting data after last colon: {}", quote(s)));
        }
        Some(colon) => {
            if let Ok(p) = s[colon + 1..].parse::<i64>() {
                port = p.to_string();
                host = &s[..colon];
            }
        }
        None => {}
    }

    if host.len() > 255 {
        return Err(format!("specified zone is too long: {} > 255", host.len()));
    }
    if !is_domain_name(host) {
        return Err(format!("zone is not a valid domain name: {host}"));
    }

    let Some(net) = parse_cidr(host) else {
        return Ok((vec![host.to_owned()], port));
    };
    let bytes = host.as_bytes();
    if bytes[0] == b':' || (bytes[0] == b'0' && host.contains(':')) {
        return Err(format!("invalid CIDR {host}"));
    }
    Ok((reverse_zones(&net), port))
}

/// CoreDNS's `plugin.Host(..).NormalizeExact()`: scheme and port stripped,
/// CIDRs expanded, every zone lower-cased and fully qualified. Invalid input
/// gives an empty list.
pub fn normalize_exact(host: &str) -> Vec<String> {
    let (_, rest) = Transport::split_scheme(host);
    match split_host_port(rest) {
        Ok((hosts, _)) => hosts.iter().map(|h| normalize_name(h)).collect(),
        Err(_) => Vec::new(),
    }
}

/// Lower-cases (per character, like Go's `strings.ToLower`) and qualifies.
pub fn normalize_name(name: &str) -> String {
    fqdn(name).chars().map(go_to_lower).collect()
}

fn go_to_lower(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    // Go uses the simple one-to-one mapping; Rust's full mapping only
    // differs for U+0130, which Go maps to plain 'i'.
    if c == '\u{130}' {
        return 'i';
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// Is the final dot of `s` an unescaped one (miekg/dns `IsFqdn`)?
pub fn is_fqdn(s: &str) -> bool {
    let Some(body) = s.strip_suffix('.') else {
        return false;
    };
    let backslashes = body.bytes().rev().take_while(|b| *b == b'\\').count();
    backslashes % 2 == 0
}

/// Appends a dot unless `s` is already fully qualified (miekg/dns `Fqdn`).
pub fn fqdn(s: &str) -> String {
    if is_fqdn(s) {
        s.to_owned()
    } else {
        format!("{s}.")
    }
}

/// miekg/dns `IsDomainName`: a liberal syntax check (label lengths < 64,
/// total wire length <= 256, no empty labels except the root, escapes
/// `\X` and `\DDD` understood). Any other characters are allowed.
pub fn is_domain_name(s: &str) -> bool {
    const LENMSG: i64 = 256;
    if s.is_empty() {
        return false;
    }
    let name = fqdn(s);
    let b = name.as_bytes();
    let mut off: i64 = 0;
    let mut begin: i64 = 0;
    let mut was_dot = false;
    let mut escape = false;
    let mut i: usize = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                escape = !escape;
                if off + 1 > LENMSG {
                    return false;
                }
                let rest = &b[i + 1..];
                if rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit) {
                    i += 3;
                    begin += 3;
                } else {
                    i += 1;
                    begin += 1;
                }
                was_dot = false;
            }
            b'.' => {
                escape = false;
                if i == 0 && b.len() > 1 {
                    return false;
                }
                if was_dot {
                    return false;
                }
                was_dot = true;
                let label_len = i as i64 - begin;
                if label_len >= 64 {
                    return false;
                }
                off += 1 + label_len;
                if off > LENMSG {
                    return false;
                }
                begin = i as i64 + 1;
            }
            _ => {
                escape = false;
                was_dot = false;
            }
        }
        i += 1;
    }
    !escape
}

/// A parsed network prefix: masked address bytes (4 or 16) and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    v6: bool,
    addr: u128,
    prefix: u32,
}

/// Go's `net.ParseCIDR` (acceptance only), returning the masked network.
fn parse_cidr(s: &str) -> Option<Cidr> {
    let (addr, mask) = s.split_once('/')?;
    let (v6, value) = parse_ip(addr)?;
    let bits: u32 = if v6 { 128 } else { 32 };
    // Go's dtoi: decimal digits only, leading zeros allowed, no sign,
    // values from 0xFFFFFF up rejected.
    if mask.is_empty() {
        return None;
    }
    let mut prefix: u32 = 0;
    for b in mask.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        prefix = prefix * 10 + u32::from(b - b'0');
        if prefix >= 0xFF_FFFF {
            return None;
        }
    }
    if prefix > bits {
        return None;
    }
    let host_bits = bits - prefix;
    let masked = if host_bits >= 128 {
        0
    } else {
        value & !((1u128 << host_bits) - 1)
    };
    Some(Cidr {
        v6,
        addr: masked,
        prefix,
    })
}

/// Go's `netip.ParseAddr` (no zones): which family and the numeric value.
fn parse_ip(s: &str) -> Option<(bool, u128)> {
    for b in s.bytes() {
        match b {
            b'.' => return parse_ipv4(s).map(|v| (false, u128::from(v))),
            b':' => return parse_ipv6(s).map(|v| (true, v)),
            b'%' => return None,
            _ => {}
        }
    }
    None
}

fn parse_ipv4(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    let mut fields = [0u32; 4];
    let mut pos = 0usize;
    let mut val = 0u32;
    let mut digits = 0usize;
    for (i, c) in b.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                if digits == 1 && val == 0 {
                    return None; // leading zero
                }
                val = val * 10 + u32::from(c - b'0');
                digits += 1;
                if val > 255 {
                    return None;
                }
            }
            b'.' => {
                if i == 0 || i == b.len() - 1 || b[i - 1] == b'.' || pos == 3 {
                    return None;
                }
                fields[pos] = val;
                pos += 1;
                val = 0;
                digits = 0;
            }
            _ => return None,
        }
    }
    if pos < 3 {
        return None;
    }
    fields[3] = val;
    Some((fields[0] << 24) | (fields[1] << 16) | (fields[2] << 8) | fields[3])
}

fn parse_ipv6(input: &str) -> Option<u128> {
    if input.contains('%') {
        return None;
    }
    let mut s = input.as_bytes();
    let mut ip = [0u8; 16];
    let mut ellipsis: Option<usize> = None;
    if s.len() >= 2 && s[0] == b':' && s[1] == b':' {
        ellipsis = Some(0);
        s = &s[2..];
        if s.is_empty() {
            return Some(0);
        }
    }
    let mut i = 0usize;
    while i < 16 {
        let mut off = 0usize;
        let mut acc: u32 = 0;
        while off < s.len() {
            let c = s[off];
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => break,
            };
            acc = (acc << 4) + u32::from(d);
            if off > 3 {
                return None;
            }
            off += 1;
        }
        if off == 0 {
            return None;
        }
        if off < s.len() && s[off] == b'.' {
            if ellipsis.is_none() && i != 12 {
                return None;
            }
            if i + 4 > 16 {
                return None;
            }
            let v4 = std::str::from_utf8(s).ok().and_then(parse_ipv4)?;
            ip[i..i + 4].copy_from_slice(&v4.to_be_bytes());
            s = &[];
            i += 4;
            break;
        }
        ip[i] = (acc >> 8) as u8;
        ip[i + 1] = acc as u8;
        i += 2;
        s = &s[off..];
        if s.is_empty() {
            break;
        }
        if s[0] != b':' || s.len() == 1 {
            return None;
        }
        s = &s[1..];
        if s[0] == b':' {
            if ellipsis.is_some() {
                return None;
            }
            ellipsis = Some(i);
            s = &s[1..];
            if s.is_empty() {
                break;
            }
        }
    }
    if !s.is_empty() {
        return None;
    }
    if i < 16 {
        let e = ellipsis?;
        let n = 16 - i;
        let mut j = i;
        while j > e {
            j -= 1;
            ip[j + n] = ip[j];
        }
        for b in &mut ip[e..e + n] {
            *b = 0;
        }
    } else if ellipsis.is_some() {
        return None;
    }
    Some(u128::from_be_bytes(ip))
}

/// CoreDNS's `cidr.Split` + `cidr.Reverse`: round the prefix up to a label
/// boundary (8 bits for IPv4, 4 for IPv6) and name every resulting network's
/// reverse zone.
fn reverse_zones(net: &Cidr) -> Vec<String> {
    let (bits, step) = if net.v6 {
        (128u32, 4u32)
    } else {
        (32u32, 8u32)
    };
    let target = net.prefix.div_ceil(step) * step;
    let count: u128 = 1u128 << (target - net.prefix);
    let host_bits = bits - target;
    let mut out = Vec::new();
    for k in 0..count {
        let addr = if host_bits >= 128 {
            net.addr
        } else {
            net.addr.wrapping_add(k << host_bits)
        };
        out.push(reverse_name(net.v6, addr, target));
    }
    out
}

fn reverse_name(v6: bool, addr: u128, prefix: u32) -> String {
    let mut name = String::new();
    if v6 {
        let nibbles = (prefix / 4) as usize;
        let digits: Vec<char> = format!("{addr:032x}").chars().collect();
        for d in digits[..nibbles].iter().rev() {
            name.push(*d);
            name.push('.');
        }
        name.push_str("ip6.arpa.");
    } else {
        let octets = (prefix / 8) as usize;
        let v4 = (addr as u32).to_be_bytes();
        for o in v4[..octets].iter().rev() {
            name.push_str(&o.to_string());
            name.push('.');
        }
        name.push_str("in-addr.arpa.");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_parsing() {
        assert_eq!(parse_ipv6("::"), Some(0));
        assert_eq!(parse_ipv6("::1"), Some(1));
        assert_eq!(parse_ipv6("1::"), Some(1u128 << 112));
        assert_eq!(parse_ipv6("::ffff:1.2.3.4"), Some(0xffff_0102_0304));
        assert_eq!(parse_ipv6("1:2:3:4:5:6:7:8::"), None);
        assert_eq!(parse_ipv6("12345::"), None);
        assert_eq!(parse_ipv6("1:::2"), None);
        assert_eq!(parse_ipv6("1:2"), None);
    }

    #[test]
    fn ipv4_parsing() {
        assert_eq!(parse_ipv4("10.0.0.1"), Some(0x0a00_0001));
        assert_eq!(parse_ipv4("010.0.0.1"), None);
        assert_eq!(parse_ipv4("1.2.3"), None);
        assert_eq!(parse_ipv4("1.2.3.4.5"), None);
        assert_eq!(parse_ipv4("256.0.0.0"), None);
    }
}

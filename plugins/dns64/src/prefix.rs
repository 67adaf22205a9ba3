//! The DNS64 prefix: parsing as Go's `net.ParseCIDR` with CoreDNS's checks, and embedding an
//! IPv4 address in it (RFC 6052 section 2.2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A prefix an IPv4 address is embedded in: 32, 40, 48, 56, 64 or 96 bits of an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    addr: [u8; 16],
    len: u8,
}

/// Why a prefix was refused, with CoreDNS's texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// Not a CIDR at all (Go's `net.ParseCIDR` error).
    #[error("invalid CIDR address: {0}")]
    Cidr(String),
    /// An IPv4 CIDR; `total` is its address length in bits, `net` the network as Go prints it.
    #[error("invalid netmask {total} IPv6 address: \"{net}\"")]
    Netmask {
        /// The address length in bits (32).
        total: u8,
        /// The network, as Go prints an `*net.IPNet`.
        net: String,
    },
    /// A length that is not a multiple of 8 between 32 and 96.
    #[error("invalid prefix length \"{0}\"")]
    Length(String),
}

impl PrefixError {
    /// Whether CoreDNS reports this error with the Corefile's `file:line` (its own checks do,
    /// Go's CIDR parse error does not).
    pub fn has_position(&self) -> bool {
        !matches!(self, PrefixError::Cidr(_))
    }
}

impl Default for Prefix {
    /// The well-known prefix `64:ff9b::/96` (RFC 6052).
    fn default() -> Self {
        Prefix {
            addr: Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0).octets(),
            len: 96,
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&go_net_text(&self.addr, self.len))
    }
}

/// A CIDR's mask applied to an address.
fn masked(addr: &[u8], len: u32) -> Vec<u8> {
    addr.iter()
        .enumerate()
        .map(|(i, b)| {
            let start = i as u32 * 8;
            if len >= start + 8 {
                *b
            } else if len <= start {
                0
            } else {
                b & (0xffu8 << (8 - (len - start)))
            }
        })
        .collect()
}

/// How Go prints a `*net.IPNet` with a 16-byte address: an IPv4-mapped network as the IPv4
/// address with the mask's last 32 bits' length, any other as the IPv6 text.
fn go_net_text(addr: &[u8; 16], len: u8) -> String {
    let v6 = Ipv6Addr::from(*addr);
    match v6.to_ipv4_mapped() {
        Some(v4) => format!("{v4}/{}", len.saturating_sub(96)),
        None => format!("{v6}/{len}"),
    }
}

/// Go's `dtoi` as `net.ParseCIDR` uses it on the length: decimal digits only, at least one.
fn mask_len(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n: u32 = 0;
    for b in s.bytes() {
        n = n.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
        if n >= 0xff_ffff {
            return None;
        }
    }
    Some(n)
}

/// Parse a prefix as CoreDNS's dns64 does: a CIDR (Go syntax), IPv6, and a length that is a
/// multiple of 8 from 32 to 96. The address is masked to the length.
pub fn parse(text: &str) -> Result<Prefix, PrefixError> {
    let bad = || PrefixError::Cidr(text.to_string());
    let (addr, len) = text.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = addr.parse().map_err(|_| bad())?;
    let n = mask_len(len).ok_or_else(bad)?;
    match ip {
        IpAddr::V4(v4) => {
            if n > 32 {
                return Err(bad());
            }
            let net =
                Ipv4Addr::from(<[u8; 4]>::try_from(masked(&v4.octets(), n)).map_err(|_| bad())?);
            Err(PrefixError::Netmask {
                total: 32,
                net: format!("{net}/{n}"),
            })
        }
        IpAddr::V6(v6) => {
            if n > 128 {
                return Err(bad());
            }
            let addr: [u8; 16] = masked(&v6.octets(), n).try_into().map_err(|_| bad())?;
            // n <= 128 here.
            let len = n as u8;
            if !len.is_multiple_of(8) || !(32..=96).contains(&len) {
                return Err(PrefixError::Length(go_net_text(&addr, len)));
            }
            Ok(Prefix { addr, len })
        }
    }
}

impl Prefix {
    /// The prefix length in bits.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Always false (a prefix has at least 32 bits); for clippy's `len` convention.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The IPv6 address embedding `v4` (RFC 6052 section 2.2): the prefix, then the IPv4
    /// address's bytes, skipping bits 64 to 71, the rest zero.
    pub fn embed(&self, v4: Ipv4Addr) -> Ipv6Addr {
        let a = v4.octets();
        let mut out = [0u8; 16];
        let n = usize::from(self.len / 8);
        out[..n].copy_from_slice(&self.addr[..n]);
        let mut i = n;
        for b in a {
            if i == 8 {
                i += 1;
            }
            out[i] = b;
            i += 1;
        }
        Ipv6Addr::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_follows_rfc6052() {
        // RFC 6052 section 2.4's table, for 192.0.2.33.
        let v4 = Ipv4Addr::new(192, 0, 2, 33);
        let cases = [
            ("2001:db8::/32", "2001:db8:c000:221::"),
            ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
            ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
            ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
            ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
            ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
            ("64:ff9b::/96", "64:ff9b::192.0.2.33"),
        ];
        for (p, want) in cases {
            let got = parse(p).expect(p).embed(v4);
            assert_eq!(got, want.parse::<Ipv6Addr>().expect(want), "{p}");
        }
    }

    #[test]
    fn errors_as_coredns() {
        let cases = [
            ("nonsense", "invalid CIDR address: nonsense"),
            ("64:ff9b::", "invalid CIDR address: 64:ff9b::"),
            ("64:ff9b::/129", "invalid CIDR address: 64:ff9b::/129"),
            ("64:ff9b::/", "invalid CIDR address: 64:ff9b::/"),
            ("64:ff9b::/+96", "invalid CIDR address: 64:ff9b::/+96"),
            ("fe80::1%eth0/64", "invalid CIDR address: fe80::1%eth0/64"),
            (
                "192.0.2.1/24",
                "invalid netmask 32 IPv6 address: \"192.0.2.0/24\"",
            ),
            ("64:ff9b::/100", "invalid prefix length \"64:ff9b::/100\""),
            ("64:ff9b::/33", "invalid prefix length \"64:ff9b::/33\""),
            ("64:ff9b::1:2/24", "invalid prefix length \"64:ff00::/24\""),
            ("::ffff:1.2.3.4/104", "invalid prefix length \"1.0.0.0/8\""),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).expect_err(text).to_string(), want, "{text}");
        }
        assert_eq!(
            parse("64:ff9b::1/096").expect("leading zero").to_string(),
            "64:ff9b::/96"
        );
        assert_eq!(parse("::ffff:0:0/96").expect("mapped").len(), 96);
    }
}

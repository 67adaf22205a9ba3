//! The source networks a policy matches, read as CoreDNS reads them: Go's `net.ParseCIDR`
//! syntax, a bare address standing for itself alone, and one tree per address family.

use std::net::IpAddr;

/// One source network: its family, its address with the host bits cleared, its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    v6: bool,
    addr: u128,
    len: u8,
}

/// Go's `dtoi` as `net.ParseCIDR` applies it to the length: decimal digits only, at least one,
/// leading zeros allowed, anything from 0xFFFFFF up refused.
fn prefix_len(text: &str) -> Option<u32> {
    if text.is_empty() {
        return None;
    }
    let mut n: u32 = 0;
    for b in text.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(b - b'0');
        if n >= 0xff_ffff {
            return None;
        }
    }
    Some(n)
}

/// The bits a prefix of `len` keeps out of `width`.
fn mask(width: u32, len: u32) -> u128 {
    if len == 0 {
        return 0;
    }
    let ones = u128::MAX << (128 - len);
    ones >> (128 - width)
}

impl Network {
    /// Every IPv4 source.
    pub const ALL_V4: Network = Network {
        v6: false,
        addr: 0,
        len: 0,
    };

    /// Every IPv6 source.
    pub const ALL_V6: Network = Network {
        v6: true,
        addr: 0,
        len: 0,
    };

    /// Read `ADDRESS/LENGTH` as Go's `net.ParseCIDR` does; `None` where it fails. An address
    /// written in IPv6 form stays IPv6 even when it maps an IPv4 one (`::ffff:10.0.0.0/104`), as
    /// in CoreDNS, where such a network never holds an IPv4 client.
    pub fn parse(text: &str) -> Option<Network> {
        let (addr, len) = text.split_once('/')?;
        // Rust's address syntax is Go's (no zones, no leading zeros in IPv4 parts).
        let addr: IpAddr = addr.parse().ok()?;
        let len = prefix_len(len)?;
        let (v6, width, value) = match addr {
            IpAddr::V4(a) => (false, 32, u128::from(u32::from(a))),
            IpAddr::V6(a) => (true, 128, u128::from(a)),
        };
        if len > width {
            return None;
        }
        Some(Network {
            v6,
            addr: value & mask(width, len),
            len: u8::try_from(len).ok()?,
        })
    }

    /// Whether `ip` is in this network. An IPv4-mapped IPv6 client counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ferrodns_pkg::names::canonical(ip) {
            IpAddr::V4(a) if !self.v6 => {
                u128::from(u32::from(a)) & mask(32, u32::from(self.len)) == self.addr
            }
            IpAddr::V6(a) if self.v6 => u128::from(a) & mask(128, u32::from(self.len)) == self.addr,
            _ => false,
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.v6 {
            write!(f, "{}/{}", std::net::Ipv6Addr::from(self.addr), self.len)
        } else {
            let v4 = u32::try_from(self.addr).unwrap_or_default();
            write!(f, "{}/{}", std::net::Ipv4Addr::from(v4), self.len)
        }
    }
}

/// A `net` token as CoreDNS completes it before parsing: text with a `/` is kept, an address
/// with a `:` gets `/128`, anything else `/32`.
pub fn with_length(token: &str) -> String {
    if token.contains('/') {
        token.to_string()
    } else if token.contains(':') {
        format!("{token}/128")
    } else {
        format!("{token}/32")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_added_by_family() {
        assert_eq!(with_length("10.218.10.8/24"), "10.218.10.8/24");
        assert_eq!(with_length("10.218.10.8"), "10.218.10.8/32");
        assert_eq!(
            with_length("2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334/128"
        );
    }

    #[test]
    fn go_cidr_syntax() {
        for ok in [
            "192.168.0.0/16",
            "10.0.0.1/08",
            "0.0.0.0/0",
            "2001:db8:85a3::8a2e:370:7334/64",
            "::/0",
            "::ffff:10.0.0.0/104",
        ] {
            assert!(Network::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "192.168.0/16",
            "192.168.0.0/33",
            "192.168.0.0/",
            "192.168.0.0/+8",
            "010.0.0.0/8",
            "2001::85a3::8a2e:370:7334/128",
            "2001:db8:85a3:::8a2e:370:7334/128",
            "fe80::1%eth0/128",
            "::/129",
            "example.org/8",
            "1.2.3.4",
        ] {
            assert!(Network::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn families_stay_apart() {
        let v4 = Network::parse("192.168.0.0/16").unwrap();
        assert_eq!(v4.to_string(), "192.168.0.0/16");
        assert!(v4.contains("192.168.3.4".parse().unwrap()));
        assert!(v4.contains("::ffff:192.168.3.4".parse().unwrap()));
        assert!(!v4.contains("192.169.0.1".parse().unwrap()));
        let mapped = Network::parse("::ffff:192.168.0.0/112").unwrap();
        assert!(!mapped.contains("192.168.3.4".parse().unwrap()));
        assert!(Network::ALL_V6.contains("::1".parse().unwrap()));
        assert!(!Network::ALL_V6.contains("127.0.0.1".parse().unwrap()));
        assert!(Network::ALL_V4.contains("127.0.0.1".parse().unwrap()));
        let host = Network::parse("2001:db8::1/128").unwrap();
        assert!(host.contains("2001:db8::1".parse().unwrap()));
        assert!(!host.contains("2001:db8::2".parse().unwrap()));
        let masked = Network::parse("10.218.10.8/24").unwrap();
        assert_eq!(masked.to_string(), "10.218.10.0/24");
    }
}

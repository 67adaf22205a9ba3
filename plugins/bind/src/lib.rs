//! # bind
//!
//! Chooses the addresses a server block listens on, as CoreDNS's *bind* plugin does. Each
//! argument is an IP address, kept as written, or the name of a host interface, which stands for
//! every address of that interface at setup time (IPv6 link-local addresses get a `%<iface>`
//! zone). A block may hold several `bind` lines; their addresses are put together in order,
//! without removing duplicates, and each line's `except` list removes addresses from that line
//! only.
//!
//! ```text
//! bind ADDRESS|IFACE ... {
//!     except ADDRESS|IFACE ...
//! }
//! ```
//!
//! The plugin has no request handler.

mod setup;
pub use setup::{parse_line, setup_with_interfaces};

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};

use ferrodns_go::strconv::quote as go_quote;
use ferrodns_plugin::{Descriptor, SetupError};

/// The directive name.
pub const NAME: &str = "bind";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// A host interface and its addresses, in the order the system lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The interface's name (`lo`, `eth0`).
    pub name: String,
    /// Its addresses.
    pub addrs: Vec<IpAddr>,
}

/// The host's interfaces: every name the system knows (also those without an address) and the
/// addresses of each.
pub fn interfaces() -> std::io::Result<Vec<Interface>> {
    let mut out: Vec<Interface> = Vec::new();
    for iface in if_addrs::get_if_addrs()? {
        let ip = iface.ip();
        match out.iter_mut().find(|i| i.name == iface.name) {
            Some(i) => i.addrs.push(ip),
            None => out.push(Interface {
                name: iface.name,
                addrs: vec![ip],
            }),
        }
    }
    // Interfaces without any address are known by name too, as Go's `net.Interfaces` knows
    // them; on Linux their names are in sysfs.
    if let Ok(dir) = std::fs::read_dir("/sys/class/net") {
        let names: BTreeSet<String> = dir
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        for name in names {
            if !out.iter().any(|i| i.name == name) {
                out.push(Interface {
                    name,
                    addrs: Vec::new(),
                });
            }
        }
    }
    Ok(out)
}

/// One `bind` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    /// Addresses and interface names to listen on.
    pub addrs: Vec<String>,
    /// Addresses and interface names to leave out (the last `except` of the line).
    pub except: Vec<String>,
}

/// Turn arguments into listen addresses: an interface name becomes all its addresses, anything
/// else must be an IP address and is kept as written.
pub fn expand(args: &[String], ifaces: &[Interface]) -> Result<Vec<String>, SetupError> {
    let mut out = Vec::new();
    for arg in args {
        let mut is_iface = false;
        for iface in ifaces.iter().filter(|i| &i.name == arg) {
            is_iface = true;
            for ip in &iface.addrs {
                out.push(address_text(*ip, &iface.name));
            }
        }
        if !is_iface {
            if arg.parse::<IpAddr>().is_err() {
                return Err(SetupError::new(format!(
                    "not a valid IP address or interface name: {}",
                    go_quote(arg)
                )));
            }
            out.push(arg.clone());
        }
    }
    Ok(out)
}

/// An interface address as Go prints it, with the interface as zone for IPv6 link-local
/// addresses.
pub fn address_text(ip: IpAddr, iface: &str) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None if is_link_local(&v6) => format!("{}%{iface}", ipv6_text(&v6)),
            None => ipv6_text(&v6),
        },
    }
}

fn is_link_local(ip: &Ipv6Addr) -> bool {
    let o = ip.octets();
    let unicast = o[0] == 0xfe && o[1] & 0xc0 == 0x80;
    let multicast = o[0] == 0xff && o[1] & 0x0f == 0x02;
    unicast || multicast
}

/// IPv6 text as Go prints it: lowercase hex, the longest run of two or more zero groups (the
/// first of equal runs) as `::`.
pub fn ipv6_text(ip: &Ipv6Addr) -> String {
    let g = ip.segments();
    let (mut best_start, mut best_len) = (usize::MAX, 0);
    let mut i = 0;
    while i < 8 {
        if g[i] == 0 {
            let start = i;
            while i < 8 && g[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best_start = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best_start = usize::MAX;
    }
    let mut out = String::with_capacity(39);
    let mut i = 0;
    while i < 8 {
        if i == best_start {
            out.push_str("::");
            i += best_len;
            continue;
        }
        if !out.is_empty() && !out.ends_with(':') {
            out.push(':');
        }
        out.push_str(&format!("{:x}", g[i]));
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_like_go() {
        // Go's net.IP.String for the same addresses.
        let cases = [
            ("::1", "::1"),
            ("::", "::"),
            ("fe80::fc:ff:fe00:1", "fe80::fc:ff:fe00:1"),
            ("1:0:1:1:1:1:1:1", "1:0:1:1:1:1:1:1"),
            ("1:0:0:1:0:0:0:1", "1:0:0:1::1"),
            ("1:0:0:1:1:0:0:1", "1::1:1:0:0:1"),
            ("2001:DB8::0:1", "2001:db8::1"),
            ("::1.2.3.4", "::102:304"),
            ("1::", "1::"),
        ];
        for (input, want) in cases {
            let ip: Ipv6Addr = input.parse().expect("ip");
            assert_eq!(ipv6_text(&ip), want, "{input}");
        }
    }

    #[test]
    fn interface_addresses() {
        assert_eq!(
            address_text("127.0.0.1".parse().expect("ip"), "lo"),
            "127.0.0.1"
        );
        assert_eq!(address_text("::1".parse().expect("ip"), "lo"), "::1");
        assert_eq!(
            address_text("fe80::fc:ff:fe00:1".parse().expect("ip"), "eth0"),
            "fe80::fc:ff:fe00:1%eth0"
        );
        assert_eq!(
            address_text("febf::1".parse().expect("ip"), "eth0"),
            "febf::1%eth0"
        );
        assert_eq!(
            address_text("fec0::1".parse().expect("ip"), "eth0"),
            "fec0::1"
        );
        assert_eq!(
            address_text("ff02::1".parse().expect("ip"), "eth0"),
            "ff02::1%eth0"
        );
        assert_eq!(
            address_text("::ffff:10.1.2.3".parse().expect("ip"), "x"),
            "10.1.2.3"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(go_quote("noone"), "\"noone\"");
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(go_quote("tab\there"), "\"tab\\there\"");
        assert_eq!(go_quote("\u{1}é"), "\"\\x01é\"");
    }
}

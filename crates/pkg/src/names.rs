//! Name helpers with miekg/dns semantics on presentation-format names: subdomains
//! (`dns.IsSubDomain`), zone matching (`plugin.Zones.Matches`), fallthrough zones (`fall.F`),
//! the zones of a plugin line (`plugin.OriginsFromArgsOrServerBlock`) and reverse names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The labels of a presentation-format name, split on unescaped dots, lowercased.
fn labels(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push('\\');
                if let Some(n) = chars.next() {
                    cur.push(n.to_ascii_lowercase());
                }
            }
            '.' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c.to_ascii_lowercase()),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// miekg/dns `IsSubDomain(parent, child)`: every label of `parent` ends `child`, compared
/// without ASCII case; escaped dots (`a\.b`) are inside a label. The root is the parent of
/// every name.
pub fn is_subdomain(parent: &str, child: &str) -> bool {
    if !parent.contains('\\') && !child.contains('\\') {
        // No escapes: compare the labels from the right in place (this runs per query).
        let mut c = child.rsplit('.').filter(|l| !l.is_empty());
        return parent
            .rsplit('.')
            .filter(|l| !l.is_empty())
            .all(|p| c.next().is_some_and(|l| l.eq_ignore_ascii_case(p)));
    }
    let p = labels(parent);
    let c = labels(child);
    p.len() <= c.len() && c[c.len() - p.len()..] == p[..]
}

/// `plugin.Zones.Matches`: the longest zone `qname` is in, if any.
pub fn zone_match<'a>(zones: &'a [String], qname: &str) -> Option<&'a str> {
    let mut best: Option<&str> = None;
    for z in zones {
        if is_subdomain(z, qname) && best.is_none_or(|b| z.len() > b.len()) {
            best = Some(z);
        }
    }
    best
}

/// A `fallthrough [ZONES...]` setting (`fall.F`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fall {
    /// The zones falling through; empty means never.
    pub zones: Vec<String>,
}

impl Fall {
    /// Set from the option's arguments: none means the root zone.
    pub fn set_from_args(&mut self, args: &[String]) {
        let args: Vec<String> = if args.is_empty() {
            vec![".".to_string()]
        } else {
            args.to_vec()
        };
        self.zones = args
            .iter()
            .flat_map(|a| ferrodns_corefile::normalize_exact(a))
            .collect();
    }

    /// Whether a query for `qname` falls through.
    pub fn through(&self, qname: &str) -> bool {
        zone_match(&self.zones, qname).is_some()
    }
}

/// `dnsutil.ExtractAddressFromReverse`: the address a reverse name stands for, if it is a
/// complete one.
pub fn address_from_reverse(name: &str) -> Option<IpAddr> {
    if let Some(search) = name.strip_suffix(".in-addr.arpa.") {
        let mut parts: Vec<&str> = search.split('.').collect();
        parts.reverse();
        return parts.join(".").parse::<Ipv4Addr>().ok().map(IpAddr::V4);
    }
    if let Some(search) = name.strip_suffix(".ip6.arpa.") {
        let mut parts: Vec<&str> = search.split('.').collect();
        parts.reverse();
        let groups: Vec<String> = parts.chunks_exact(4).map(|c| c.concat()).collect();
        let ip = groups.join(":").parse::<Ipv6Addr>().ok()?;
        return Some(canonical(IpAddr::V6(ip)));
    }
    None
}

/// An address as Go's `net.IP.String` tells it apart: IPv4-mapped IPv6 addresses are IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// `replaceWithAsteriskLabel`: `*.` followed by the name without its first label; `None` for
/// names of one label or the root.
pub fn wildcard_of(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'.' => {
                let rest = &name[i + 1..];
                if rest.is_empty() {
                    return None;
                }
                return Some(format!("*.{rest}"));
            }
            _ => i += 1,
        }
    }
    None
}

/// CoreDNS's `plugin.OriginsFromArgsOrServerBlock`: the zones given as arguments (normalised,
/// CIDRs expanded), or else the block's own zones.
pub fn origins(args: &[String], block_zones: &[String]) -> Vec<String> {
    if args.is_empty() {
        return block_zones
            .iter()
            .map(|z| {
                ferrodns_corefile::normalize_exact(z)
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| z.clone())
            })
            .collect();
    }
    args.iter()
        .flat_map(|a| ferrodns_corefile::normalize_exact(a))
        .collect()
}

/// Whether the dot at byte `i` of `s` is escaped (an odd run of backslashes before it).
fn escaped(s: &[u8], i: usize) -> bool {
    s[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

/// miekg/dns `NextLabel(s, offset)`: the byte index where the label after the one at `offset`
/// starts, and whether the end of `s` was reached instead.
pub fn next_label(s: &str, offset: usize) -> (usize, bool) {
    let b = s.as_bytes();
    if b.is_empty() {
        return (0, true);
    }
    let mut i = offset;
    while i + 1 < b.len() {
        if b[i] == b'.' && !escaped(b, i) {
            return (i + 1, false);
        }
        i += 1;
    }
    (i + 1, true)
}

/// miekg/dns `CountLabel(s)`: how many labels `s` has (the root has none).
pub fn count_label(s: &str) -> usize {
    if s == "." {
        return 0;
    }
    let mut labels = 0;
    let mut off = 0;
    loop {
        let (next, end) = next_label(s, off);
        off = next;
        labels += 1;
        if end {
            return labels;
        }
    }
}

/// miekg/dns `PrevLabel(s, n)`: the byte index of the label `n` labels from the right of
/// `s`, and whether the start of `s` was overshot.
pub fn prev_label(s: &str, n: usize) -> (usize, bool) {
    let b = s.as_bytes();
    if b.is_empty() {
        return (0, true);
    }
    if n == 0 {
        return (b.len(), false);
    }
    let mut n = n;
    let mut l = b.len() - 1;
    if b[l] == b'.' {
        if l == 0 {
            return (0, true);
        }
        l -= 1;
    }
    loop {
        if b[l] == b'.' && !escaped(b, l) {
            n -= 1;
            if n == 0 {
                return (l + 1, false);
            }
        }
        if l == 0 {
            return (0, true);
        }
        l -= 1;
    }
}

/// CoreDNS's `dnsutil.TrimZone(q, z)`: `q` without the labels of the zone `z` and the dot
/// before them (`www.example.org.` in `example.org.` is `www`); `None` when `q` has no label
/// left of the zone's.
pub fn trim_zone<'a>(q: &'a str, z: &str) -> Option<&'a str> {
    let (i, overshot) = prev_label(q, count_label(z));
    if overshot || i == 0 {
        return None;
    }
    q.get(..i - 1)
}

/// CoreDNS's `dnsutil.Join(labels...)`: the labels joined with dots and fully qualified (a
/// last element `.` is the root, not an extra label).
pub fn join(labels: &[&str]) -> String {
    match labels.split_last() {
        None => ".".to_string(),
        Some((&".", rest)) => format!("{}.", rest.join(".")),
        Some(_) => fqdn(&labels.join(".")),
    }
}

/// miekg/dns `Fqdn(s)`: `s` with a final dot, unless it ends in an unescaped one already.
pub fn fqdn(s: &str) -> String {
    let b = s.as_bytes();
    if b.last() == Some(&b'.') && !escaped(b, b.len() - 1) {
        s.to_string()
    } else {
        format!("{s}.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miekg_label_walks() {
        assert_eq!(count_label("."), 0);
        assert_eq!(count_label("www.example.org."), 3);
        assert_eq!(count_label("a\\.b.org."), 2);
        assert_eq!(next_label("www.example.org.", 0), (4, false));
        assert_eq!(prev_label("www.example.org.", 2), (4, false));
        assert_eq!(prev_label("www.example.org.", 0), (16, false));
        assert_eq!(prev_label("www.example.org.", 3), (0, true));
        assert_eq!(trim_zone("Www.Example.org.", "example.org."), Some("Www"));
        assert_eq!(trim_zone("a.b.svc.", "b.svc."), Some("a"));
        assert_eq!(trim_zone("example.org.", "example.org."), None);
        assert_eq!(trim_zone("x.example.org.", "."), Some("x.example.org"));
        assert_eq!(
            join(&["ns1", "dns", "example.org."]),
            "ns1.dns.example.org."
        );
        assert_eq!(join(&["hostmaster", "dns", "."]), "hostmaster.dns.");
        assert_eq!(join(&["a", "b"]), "a.b.");
        assert_eq!(fqdn("a\\."), "a\\..");
    }

    #[test]
    fn subdomains() {
        assert!(is_subdomain(".", "example.org."));
        assert!(is_subdomain(".", "."));
        assert!(is_subdomain("example.org.", "example.org."));
        assert!(is_subdomain("Example.ORG.", "www.example.org."));
        assert!(!is_subdomain("example.org.", "example.net."));
        assert!(!is_subdomain("example.org.", "org."));
        assert!(!is_subdomain("example.org.", "."));
        assert!(!is_subdomain("ample.org.", "example.org."));
        assert!(is_subdomain("a\\.b.org.", "x.a\\.b.org."));
        assert!(!is_subdomain("b.org.", "a\\.b.org."));
    }

    /// The in-place comparison for names without escapes agrees with comparing label lists.
    #[test]
    fn subdomains_in_place_agree_with_label_lists() {
        let names = [
            ".",
            "",
            "org.",
            "ORG",
            "example.org.",
            "Example.Org",
            "www.example.org.",
            "ample.org.",
            "a..example.org.",
            "example..org.",
            "x.y.z.",
            "z.",
            "y.z",
        ];
        for p in names {
            for c in names {
                let (lp, lc) = (labels(p), labels(c));
                let slow = lp.len() <= lc.len() && lc[lc.len() - lp.len()..] == lp[..];
                assert_eq!(is_subdomain(p, c), slow, "is_subdomain({p:?}, {c:?})");
            }
        }
    }
}

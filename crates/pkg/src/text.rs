//! Texts of DNS values as CoreDNS (miekg/dns and Go) prints and reads them: type, class and
//! rcode mnemonics both ways, domain names in presentation format, addresses. Plugins use these
//! so that their logs and errors read exactly like CoreDNS's, and their options accept the same
//! words.

use std::net::IpAddr;

use hickory_proto::rr::Name;

/// A name in presentation format as miekg/dns unpacks it (the plugin API's own reading, which
/// [`ferrodns_plugin::Request::name_lower`] prints).
pub use ferrodns_plugin::presentation;

/// Type mnemonics known to miekg/dns v1.1.72 (`TypeToString`); other values print `TYPE<n>`.
const TYPES: &[(u16, &str)] = &[
    (0, "None"),
    (1, "A"),
    (2, "NS"),
    (3, "MD"),
    (4, "MF"),
    (5, "CNAME"),
    (6, "SOA"),
    (7, "MB"),
    (8, "MG"),
    (9, "MR"),
    (10, "NULL"),
    (12, "PTR"),
    (13, "HINFO"),
    (14, "MINFO"),
    (15, "MX"),
    (16, "TXT"),
    (17, "RP"),
    (18, "AFSDB"),
    (19, "X25"),
    (20, "ISDN"),
    (21, "RT"),
    (23, "NSAP-PTR"),
    (24, "SIG"),
    (25, "KEY"),
    (26, "PX"),
    (27, "GPOS"),
    (28, "AAAA"),
    (29, "LOC"),
    (30, "NXT"),
    (31, "EID"),
    (32, "NIMLOC"),
    (33, "SRV"),
    (34, "ATMA"),
    (35, "NAPTR"),
    (36, "KX"),
    (37, "CERT"),
    (39, "DNAME"),
    (41, "OPT"),
    (42, "APL"),
    (43, "DS"),
    (44, "SSHFP"),
    (45, "IPSECKEY"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (48, "DNSKEY"),
    (49, "DHCID"),
    (50, "NSEC3"),
    (51, "NSEC3PARAM"),
    (52, "TLSA"),
    (53, "SMIMEA"),
    (55, "HIP"),
    (56, "NINFO"),
    (57, "RKEY"),
    (58, "TALINK"),
    (59, "CDS"),
    (60, "CDNSKEY"),
    (61, "OPENPGPKEY"),
    (62, "CSYNC"),
    (63, "ZONEMD"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (99, "SPF"),
    (100, "UINFO"),
    (101, "UID"),
    (102, "GID"),
    (103, "UNSPEC"),
    (104, "NID"),
    (105, "L32"),
    (106, "L64"),
    (107, "LP"),
    (108, "EUI48"),
    (109, "EUI64"),
    (128, "NXNAME"),
    (249, "TKEY"),
    (250, "TSIG"),
    (251, "IXFR"),
    (252, "AXFR"),
    (253, "MAILB"),
    (254, "MAILA"),
    (255, "ANY"),
    (256, "URI"),
    (257, "CAA"),
    (258, "AVC"),
    (260, "AMTRELAY"),
    (261, "RESINFO"),
    (32768, "TA"),
    (32769, "DLV"),
    (65535, "Reserved"),
];

/// The type's mnemonic, or `TYPE<n>`.
pub fn type_name(t: u16) -> String {
    match TYPES.binary_search_by_key(&t, |(n, _)| *n) {
        Ok(i) => TYPES[i].1.to_string(),
        Err(_) => format!("TYPE{t}"),
    }
}

/// miekg/dns's `ClassToString` table.
const CLASSES: &[(u16, &str)] = &[
    (1, "IN"),
    (2, "CS"),
    (3, "CH"),
    (4, "HS"),
    (254, "NONE"),
    (255, "ANY"),
];

/// The class's entry in miekg/dns's `ClassToString`, `ANY` included.
pub fn class_mnemonic(c: u16) -> Option<&'static str> {
    CLASSES.iter().find(|(n, _)| *n == c).map(|(_, m)| *m)
}

/// The class's mnemonic, or `CLASS<n>`. `ANY` (255) prints as `CLASS255` because miekg/dns only
/// uses mnemonics that are not also type names.
pub fn class_name(c: u16) -> String {
    match class_mnemonic(c) {
        Some(m) if c != 255 => m.to_string(),
        _ => format!("CLASS{c}"),
    }
}

/// miekg/dns's `StringToClass`: the exact mnemonic (case-sensitive, `ANY` included) to its
/// number.
pub fn class_from_str(s: &str) -> Option<u16> {
    CLASSES.iter().find(|(_, m)| *m == s).map(|(n, _)| *n)
}

/// miekg/dns's `StringToType`: the exact mnemonic (case-sensitive) to its number.
pub fn type_from_str(s: &str) -> Option<u16> {
    TYPES.iter().find(|(_, m)| *m == s).map(|(n, _)| *n)
}

/// The rcode's name as miekg/dns prints it, `None` for values without one.
pub fn rcode_name(rcode: u16) -> Option<&'static str> {
    Some(match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        11 => "DSOTYPENI",
        16 => "BADSIG",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        _ => return None,
    })
}

/// miekg/dns's `StringToRcode` (exact, case-sensitive): the names [`rcode_name`] gives, and
/// `NOTIMPL` for 4.
pub fn rcode_from_str(s: &str) -> Option<u16> {
    if s == "NOTIMPL" {
        return Some(4);
    }
    (0..=23u16).find(|r| rcode_name(*r) == Some(s))
}

/// The lowercased presentation of a name (CoreDNS's `state.Name()`).
pub fn name_lower(name: &Name) -> String {
    let mut s = presentation(name);
    s.make_ascii_lowercase();
    s
}

/// A name read from its presentation format as miekg/dns reads it: any byte may stand in a
/// label, written as itself or escaped (`\\DDD` in decimal, `\\X` for X itself); `@` is
/// `origin`, and a name without a final dot is relative to `origin` (the root when there is
/// none). `None` for an empty label, a label over 63 bytes or a name over 255.
///
/// hickory's own readers apply IDNA rules to names, and refuse names that miekg/dns and so
/// CoreDNS take as they are (`ab_9.example.`, `\\217\\163.example.`).
pub fn name_from_presentation(s: &str, origin: Option<&Name>) -> Option<Name> {
    if s == "@" {
        return Some(origin.cloned().unwrap_or_else(Name::root));
    }
    if s == "." {
        return Some(Name::root());
    }
    let bytes = s.as_bytes();
    let mut labels: Vec<Vec<u8>> = Vec::new();
    let mut label = Vec::new();
    let mut fqdn = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                let digits = bytes
                    .get(i + 1..i + 4)
                    .filter(|d| d.iter().all(u8::is_ascii_digit));
                if let Some(d) = digits {
                    let v = d
                        .iter()
                        .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'));
                    label.push(u8::try_from(v).ok()?);
                    i += 4;
                } else {
                    label.push(*bytes.get(i + 1)?);
                    i += 2;
                }
            }
            b'.' => {
                if label.is_empty() {
                    return None;
                }
                labels.push(std::mem::take(&mut label));
                i += 1;
                fqdn = i == bytes.len();
            }
            b => {
                label.push(b);
                i += 1;
            }
        }
    }
    if !label.is_empty() {
        labels.push(label);
    }
    let name = Name::from_labels(labels.iter().map(Vec::as_slice)).ok()?;
    match origin {
        Some(o) if !fqdn => name.append_domain(o).ok(),
        _ => Some(name),
    }
}

/// An address as Go prints the host part of a socket address: IPv4-mapped IPv6 addresses in
/// dotted form, IPv6 in RFC 5952 form.
pub fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// As [`ip_text`], in brackets when it contains a colon (RFC 3986 host form).
pub fn ip_rfc3986(ip: IpAddr) -> String {
    let s = ip_text(ip);
    if s.contains(':') { format!("[{s}]") } else { s }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_read_as_miekg_reads_them() {
        let n = |s: &str| name_from_presentation(s, None).map(|n| n.to_ascii());
        let labels = |s: &str| {
            name_from_presentation(s, None)
                .map(|n| n.iter().map(<[u8]>::to_vec).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(n("ab_9.Word.example."), Some("ab_9.Word.example.".into()));
        assert_eq!(
            labels("\\217\\163.x."),
            vec![vec![0xd9, 0xa3], b"x".to_vec()]
        );
        assert_eq!(labels("a\\.b.x."), vec![b"a.b".to_vec(), b"x".to_vec()]);
        assert_eq!(n("."), Some(".".into()));
        assert_eq!(n("a..b."), None);
        assert_eq!(n("\\256.x."), None);
        assert_eq!(n(&format!("{}.x.", "a".repeat(64))), None);
        let origin = Name::from_ascii("example.org.").ok();
        let rel = |s: &str| name_from_presentation(s, origin.as_ref()).map(|n| n.to_ascii());
        assert_eq!(rel("www"), Some("www.example.org.".into()));
        assert_eq!(rel("@"), Some("example.org.".into()));
        assert_eq!(rel("www.other."), Some("www.other.".into()));
    }

    use super::*;

    #[test]
    fn type_names_are_sorted_for_binary_search() {
        assert!(TYPES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(type_name(1), "A");
        assert_eq!(type_name(23), "NSAP-PTR");
        assert_eq!(type_name(11), "TYPE11");
        assert_eq!(type_name(65305), "TYPE65305");
        assert_eq!(type_name(65535), "Reserved");
    }

    #[test]
    fn mnemonics_read_back() {
        assert_eq!(class_from_str("IN"), Some(1));
        assert_eq!(class_from_str("ANY"), Some(255));
        assert_eq!(class_from_str("in"), None);
        assert_eq!(class_mnemonic(255), Some("ANY"));
        assert_eq!(class_mnemonic(42), None);
        assert_eq!(type_from_str("None"), Some(0));
        assert_eq!(type_from_str("Reserved"), Some(65535));
        assert_eq!(type_from_str("TYPE1"), None);
        assert_eq!(rcode_from_str("NOTIMP"), Some(4));
        assert_eq!(rcode_from_str("NOTIMPL"), Some(4));
        assert_eq!(rcode_from_str("noerror"), None);
    }

    #[test]
    fn classes() {
        assert_eq!(class_name(1), "IN");
        assert_eq!(class_name(3), "CH");
        assert_eq!(class_name(254), "NONE");
        assert_eq!(class_name(255), "CLASS255");
        assert_eq!(class_name(42), "CLASS42");
    }

    #[test]
    fn names_escape_like_miekg() {
        let n = Name::from_labels(vec![
            &b"a.b"[..],
            &b"C d"[..],
            &b"\x00\xff"[..],
            &b"org"[..],
        ])
        .expect("name");
        assert_eq!(presentation(&n), "a\\.b.C\\ d.\\000\\255.org.");
        assert_eq!(name_lower(&n), "a\\.b.c\\ d.\\000\\255.org.");
        assert_eq!(presentation(&Name::root()), ".");
    }

    #[test]
    fn addresses() {
        assert_eq!(ip_rfc3986("::1".parse().expect("ip")), "[::1]");
        assert_eq!(
            ip_rfc3986("::ffff:10.0.0.1".parse().expect("ip")),
            "10.0.0.1"
        );
        assert_eq!(ip_rfc3986("10.0.0.1".parse().expect("ip")), "10.0.0.1");
    }
}

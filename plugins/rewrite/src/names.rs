//! Small helpers shared by the rules: miekg/dns's mnemonic tables and name checks.

use std::sync::OnceLock;

use ferrodns_plugin::text;

/// miekg/dns's `StringToType`: the exact mnemonic (case-sensitive) to its number.
pub fn type_from_str(s: &str) -> Option<u16> {
    static TABLE: OnceLock<Vec<(String, u16)>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .filter_map(|t| {
                let n = text::type_name(t);
                (!n.starts_with("TYPE")).then_some((n, t))
            })
            .collect()
    });
    table.iter().find(|(n, _)| n == s).map(|(_, t)| *t)
}

/// miekg/dns's `StringToClass` (exact, case-sensitive).
pub fn class_from_str(s: &str) -> Option<u16> {
    Some(match s {
        "IN" => 1,
        "CS" => 2,
        "CH" => 3,
        "HS" => 4,
        "NONE" => 254,
        "ANY" => 255,
        _ => return None,
    })
}

/// miekg/dns's `StringToRcode` (exact, case-sensitive).
pub fn rcode_from_str(s: &str) -> Option<u16> {
    if s == "NOTIMPL" {
        return Some(4);
    }
    (0..=23u16).find(|r| text::rcode_name(*r) == Some(s))
}

/// CoreDNS's `plugin.Name(s).Normalize()`: lowercased and fully qualified.
pub fn normalize(s: &str) -> String {
    let mut out = s.to_lowercase();
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// miekg/dns's `IsDomainName`, as the parser checks zone keys.
pub use ferrodns_plugin::corefile::is_domain_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names() {
        assert!(is_domain_name("example.org."));
        assert!(is_domain_name("."));
        assert!(!is_domain_name(""));
        assert!(!is_domain_name(".."));
        assert!(!is_domain_name(".a."));
        assert!(!is_domain_name("a..b."));
        assert!(!is_domain_name(&format!("{}.", "a".repeat(64))));
        assert!(is_domain_name(&format!("{}.", "a".repeat(63))));
        assert!(!is_domain_name(&"abcdefghi.".repeat(26)));
    }

    #[test]
    fn tables() {
        assert_eq!(type_from_str("AAAA"), Some(28));
        assert_eq!(type_from_str("aaaa"), None);
        assert_eq!(type_from_str("NSAP-PTR"), Some(23));
        assert_eq!(class_from_str("CH"), Some(3));
        assert_eq!(rcode_from_str("NOTIMPL"), Some(4));
        assert_eq!(rcode_from_str("BADCOOKIE"), Some(23));
        assert_eq!(rcode_from_str("BADVERS"), None);
    }
}

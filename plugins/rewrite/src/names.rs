//! Small helpers shared by the rules: miekg/dns's mnemonic tables and name checks.

/// miekg/dns's `StringToType`, `StringToClass` and `StringToRcode` (exact, case-sensitive).
pub use ferrodns_pkg::text::{class_from_str, rcode_from_str, type_from_str};

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

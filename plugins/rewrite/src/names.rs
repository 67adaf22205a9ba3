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

/// Go's `strconv.ParseUint(s, 0, bits)`: base prefixes `0x`, `0o`, `0b`, a leading `0` for
/// octal, underscores only with a prefix. The error is Go's text.
pub fn parse_uint_base0(s: &str, bits: u32) -> Result<u64, String> {
    let syntax = || {
        format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            text::go_quote(s)
        )
    };
    let range = || {
        format!(
            "strconv.ParseUint: parsing {}: value out of range",
            text::go_quote(s)
        )
    };
    if s.is_empty() {
        return Err(syntax());
    }
    let lower = s.to_ascii_lowercase();
    let (digits, base, prefixed) = if let Some(r) = lower.strip_prefix("0x") {
        (r.to_string(), 16, true)
    } else if let Some(r) = lower.strip_prefix("0o") {
        (r.to_string(), 8, true)
    } else if let Some(r) = lower.strip_prefix("0b") {
        (r.to_string(), 2, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (lower[1..].to_string(), 8, true)
    } else {
        (lower.clone(), 10, false)
    };
    let digits = if prefixed {
        // Underscores are allowed between digits when a base prefix is present.
        if digits.starts_with('_') && base == 8 && !lower.starts_with("0o") {
            // "0_1" style: allowed in Go (underscore after the leading 0)
        }
        if digits.contains("__") || digits.ends_with('_') {
            return Err(syntax());
        }
        digits.replace('_', "")
    } else {
        if digits.contains('_') {
            return Err(syntax());
        }
        digits
    };
    if digits.is_empty() {
        return Err(syntax());
    }
    let mut v: u64 = 0;
    let max: u64 = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut overflow = false;
    for c in digits.chars() {
        let d = c.to_digit(base).ok_or_else(syntax)?;
        match v
            .checked_mul(u64::from(base))
            .and_then(|x| x.checked_add(u64::from(d)))
        {
            Some(x) => v = x,
            None => overflow = true,
        }
    }
    if overflow || v > max {
        return Err(range());
    }
    Ok(v)
}

/// Go's `strconv.ParseUint(s, 10, bits)`.
pub fn parse_uint10(s: &str, bits: u32) -> Result<u64, String> {
    let syntax = || {
        format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            text::go_quote(s)
        )
    };
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    let max: u64 = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    match s.parse::<u64>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(format!(
            "strconv.ParseUint: parsing {}: value out of range",
            text::go_quote(s)
        )),
    }
}

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

    #[test]
    fn go_uints() {
        assert_eq!(parse_uint_base0("0xffee", 16), Ok(0xffee));
        assert_eq!(parse_uint_base0("65001", 16), Ok(65001));
        assert_eq!(parse_uint_base0("010", 16), Ok(8));
        assert_eq!(
            parse_uint_base0("70000", 16),
            Err("strconv.ParseUint: parsing \"70000\": value out of range".into())
        );
        assert_eq!(
            parse_uint_base0("x", 16),
            Err("strconv.ParseUint: parsing \"x\": invalid syntax".into())
        );
        assert_eq!(parse_uint10("12", 16), Ok(12));
    }
}

//! Go's `strconv`: `Quote` (what `%q` prints for a string) and `ParseUint`, with Go's error
//! texts (`strconv.ParseUint: parsing "x": invalid syntax`).

use std::fmt;

/// Go's `strconv.Quote`, as `%q` prints a string: double quotes, `\"` and `\\`, the C escapes
/// (`\a \b \f \n \r \t \v`), other non-printable characters as `\xNN`, `\uNNNN` or
/// `\UNNNNNNNN`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_print(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Approximation of Go's `strconv.IsPrint` without Unicode tables: ASCII
/// graphic characters and space, and non-ASCII characters that are not
/// control, white space, format or private-use characters.
fn is_print(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    const FORMAT: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xD800, 0xF8FF),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
        (0xF0000, 0x10FFFF),
    ];
    !FORMAT.iter().any(|(lo, hi)| (*lo..=*hi).contains(&u))
}

/// Why a number did not parse (Go's `*strconv.NumError`); prints as Go does:
/// `strconv.ParseUint: parsing "70000": value out of range`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("strconv.{func}: parsing {}: {reason}", quote(.input))]
pub struct NumError {
    /// The Go function that failed (`ParseUint`).
    pub func: &'static str,
    /// The input as given.
    pub input: String,
    /// What was wrong with it.
    pub reason: NumErrorReason,
}

/// The reason inside a [`NumError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumErrorReason {
    /// Not a number in the base (`invalid syntax`).
    Syntax,
    /// Does not fit in the bit size (`value out of range`).
    Range,
    /// The base is not 0 or 2..=36 (`invalid base N`).
    Base(i64),
    /// The bit size is not 0..=64 (`invalid bit size N`).
    BitSize(i64),
}

impl fmt::Display for NumErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumErrorReason::Syntax => f.write_str("invalid syntax"),
            NumErrorReason::Range => f.write_str("value out of range"),
            NumErrorReason::Base(b) => write!(f, "invalid base {b}"),
            NumErrorReason::BitSize(b) => write!(f, "invalid bit size {b}"),
        }
    }
}

/// Go's error text, for callers whose errors are plain strings (so `?` works there).
impl From<NumError> for String {
    fn from(e: NumError) -> String {
        e.to_string()
    }
}

/// Go's `strconv.Atoi` on a 64-bit platform: an optional sign and decimal digits (no
/// underscores, no prefixes) that fit in an `i64`.
pub fn atoi(s: &str) -> Result<i64, NumError> {
    let err = |reason| NumError {
        func: "Atoi",
        input: s.to_string(),
        reason,
    };
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(NumErrorReason::Syntax));
    }
    s.parse::<i64>().map_err(|_| err(NumErrorReason::Range))
}

/// Go's `strconv.ParseUint(s, base, bitSize)` on a 64-bit platform.
///
/// `base` is 2..=36, or 0 for the base the prefix says: `0x`/`0X` hexadecimal, `0o`/`0O` and a
/// bare leading `0` octal, `0b`/`0B` binary, else decimal; with base 0 only, underscores may
/// separate digits as in Go literals. `bit_size` 0 means 64. The errors are Go's, checked in
/// Go's order: an empty input, the base, the bit size, then each digit in turn (a value that
/// overflows is out of range even if a bad digit follows), then the underscores.
pub fn parse_uint(s: &str, base: i64, bit_size: i64) -> Result<u64, NumError> {
    let err = |reason| NumError {
        func: "ParseUint",
        input: s.to_string(),
        reason,
    };
    if s.is_empty() {
        return Err(err(NumErrorReason::Syntax));
    }
    let base0 = base == 0;
    let bytes = s.as_bytes();
    let (digits, base): (&[u8], u64) = match base {
        2..=36 => (bytes, base as u64),
        0 if bytes[0] == b'0' => match bytes.get(1).map(u8::to_ascii_lowercase) {
            Some(b'b') if bytes.len() >= 3 => (&bytes[2..], 2),
            Some(b'o') if bytes.len() >= 3 => (&bytes[2..], 8),
            Some(b'x') if bytes.len() >= 3 => (&bytes[2..], 16),
            _ => (&bytes[1..], 8),
        },
        0 => (bytes, 10),
        other => return Err(err(NumErrorReason::Base(other))),
    };
    let bit_size = match bit_size {
        0 => 64,
        1..=64 => bit_size,
        other => return Err(err(NumErrorReason::BitSize(other))),
    };
    let max = if bit_size == 64 {
        u64::MAX
    } else {
        (1u64 << bit_size) - 1
    };
    let mut underscores = false;
    let mut n: u64 = 0;
    for &c in digits {
        let d = match c {
            b'_' if base0 => {
                underscores = true;
                continue;
            }
            b'0'..=b'9' => c - b'0',
            _ if c.is_ascii_alphabetic() => c.to_ascii_lowercase() - b'a' + 10,
            _ => return Err(err(NumErrorReason::Syntax)),
        };
        if u64::from(d) >= base {
            return Err(err(NumErrorReason::Syntax));
        }
        n = match n
            .checked_mul(base)
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) if v <= max => v,
            _ => return Err(err(NumErrorReason::Range)),
        };
    }
    if underscores && !underscores_ok(s) {
        return Err(err(NumErrorReason::Syntax));
    }
    Ok(n)
}

/// Whether the underscores of a base-0 literal only separate digits (Go's `underscoreOK`):
/// each one follows a digit or the base prefix and is followed by a digit.
fn underscores_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let b = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    // What came last: '^' the start, '0' a digit or the base prefix, '_' an underscore, '!'
    // anything else.
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    for &c in &b[i..] {
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
    }
    saw != b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_as_go() {
        assert_eq!(atoi("+5"), Ok(5));
        assert_eq!(atoi("-0"), Ok(0));
        assert_eq!(atoi("-12"), Ok(-12));
        // Texts of Go 1.26's strconv.Atoi for the same inputs.
        for (input, want) in [
            ("x", r#"strconv.Atoi: parsing "x": invalid syntax"#),
            ("+", r#"strconv.Atoi: parsing "+": invalid syntax"#),
            ("1_0", r#"strconv.Atoi: parsing "1_0": invalid syntax"#),
            (
                "99999999999999999999",
                r#"strconv.Atoi: parsing "99999999999999999999": value out of range"#,
            ),
        ] {
            assert_eq!(atoi(input).map_err(|e| e.to_string()), Err(want.into()));
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b\\"), "\"a\\\"b\\\\\"");
        assert_eq!(quote("\u{1}\u{a0}é"), "\"\\x01\\u00a0é\"");
    }

    fn text(r: Result<u64, NumError>) -> Result<u64, String> {
        r.map_err(|e| e.to_string())
    }

    #[test]
    fn parse_uint_as_go() {
        assert_eq!(parse_uint("0xffee", 0, 16), Ok(0xffee));
        assert_eq!(parse_uint("65001", 0, 16), Ok(65001));
        assert_eq!(parse_uint("010", 0, 16), Ok(8));
        assert_eq!(parse_uint("0", 0, 16), Ok(0));
        assert_eq!(parse_uint("0b101", 0, 8), Ok(5));
        assert_eq!(parse_uint("0O17", 0, 8), Ok(15));
        assert_eq!(parse_uint("0x_1_f", 0, 64), Ok(31));
        assert_eq!(parse_uint("1_000", 0, 64), Ok(1000));
        assert_eq!(parse_uint("0a", 16, 8), Ok(10));
        assert_eq!(parse_uint("Zz", 36, 0), Ok(35 * 36 + 35));
        assert_eq!(parse_uint("12", 10, 16), Ok(12));
        assert_eq!(parse_uint("4294967295", 10, 32), Ok(u64::from(u32::MAX)));
        assert_eq!(parse_uint("18446744073709551615", 10, 64), Ok(u64::MAX));
        assert_eq!(
            text(parse_uint("70000", 0, 16)),
            Err("strconv.ParseUint: parsing \"70000\": value out of range".into())
        );
        assert_eq!(
            text(parse_uint("4294967296", 10, 32)),
            Err("strconv.ParseUint: parsing \"4294967296\": value out of range".into())
        );
        assert_eq!(
            text(parse_uint("18446744073709551616", 10, 0)),
            Err("strconv.ParseUint: parsing \"18446744073709551616\": value out of range".into())
        );
        for bad in [
            "", "x", "+1", "-1", " 1", "1_0x", "0x", "0b", "08", "0x_", "0x1_", "0x__1", "_1",
            "1__0", "0xg",
        ] {
            assert_eq!(
                text(parse_uint(bad, 0, 64)),
                Err(format!(
                    "strconv.ParseUint: parsing {}: invalid syntax",
                    quote(bad)
                )),
                "{bad:?}"
            );
        }
        assert_eq!(
            text(parse_uint("1_0", 10, 64)),
            Err("strconv.ParseUint: parsing \"1_0\": invalid syntax".into())
        );
        assert_eq!(
            text(parse_uint("1", 1, 8)),
            Err("strconv.ParseUint: parsing \"1\": invalid base 1".into())
        );
        assert_eq!(
            text(parse_uint("1", 37, 65)),
            Err("strconv.ParseUint: parsing \"1\": invalid base 37".into())
        );
        assert_eq!(
            text(parse_uint("1", 10, 65)),
            Err("strconv.ParseUint: parsing \"1\": invalid bit size 65".into())
        );
        assert_eq!(
            text(parse_uint("1", 10, -1)),
            Err("strconv.ParseUint: parsing \"1\": invalid bit size -1".into())
        );
        // Go stops at the first digit that overflows, before a bad one after it.
        assert_eq!(
            text(parse_uint("99999x", 10, 16)),
            Err("strconv.ParseUint: parsing \"99999x\": value out of range".into())
        );
    }
}

//! Go's `time`: the duration syntax Corefile options use (`30s`, `1m30s`, `500ms`, `1.5h`),
//! parsed and printed as Go's `time.ParseDuration` and `Duration.String` do.

use std::time::Duration;

/// Why a duration did not parse; the text matches Go's (`time: invalid duration "x"`), with the
/// input quoted as Go's `time` package quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration at all.
    #[error("time: invalid duration {}", quote(.0))]
    Invalid(String),
    /// A number without a unit (other than a bare `0`).
    #[error("time: missing unit in duration {}", quote(.0))]
    MissingUnit(String),
    /// An unknown unit.
    #[error("time: unknown unit {} in duration {}", quote(.unit), quote(.input))]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// Negative durations have no `std::time::Duration`.
    #[error("negative duration \"{0}\"")]
    Negative(String),
}

/// The `time` package's own quoting in its errors: double quotes, `"` and `\\` escaped, and
/// every byte of a control or non-ASCII character as `\xNN` (unlike `strconv.Quote`).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    out.push('"');
    out
}

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parse a Go duration. Negative values are an error (no option of ours accepts them).
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_string());
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let n = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..n];
            s = &rest[n..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map(|(i, _)| i)
            .unwrap_or(s.len());
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let scale = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_string(),
            input: input.to_string(),
        })?;
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut value = whole.checked_mul(scale).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            let digits = &frac_part[..frac_part.len().min(30)];
            let frac: u128 = digits.parse().map_err(|_| invalid())?;
            let denom = 10u128
                .checked_pow(digits.len() as u32)
                .ok_or_else(invalid)?;
            value += frac * scale / denom;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i64::MAX as u128 {
            return Err(invalid());
        }
    }
    if negative && total != 0 {
        return Err(DurationError::Negative(input.to_string()));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// A Go `time.Duration`, which may be negative where `std::time::Duration` cannot: what
/// `time.ParseDuration` gives options that accept (or must reject with their own words) a
/// negative value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedDuration {
    /// The magnitude.
    pub abs: Duration,
    /// Below zero (never for a zero magnitude: Go has no negative zero).
    pub negative: bool,
}

impl SignedDuration {
    /// Go's `time.ParseDuration`, negative values included; errors name the whole input.
    pub fn parse(input: &str) -> Result<SignedDuration, DurationError> {
        let (body, negative) = match input.strip_prefix('-') {
            Some(rest) if rest.starts_with(['-', '+']) => {
                return Err(DurationError::Invalid(input.to_string()));
            }
            Some(rest) => (rest, true),
            None => (input, false),
        };
        match parse_duration(body) {
            Ok(abs) => Ok(SignedDuration {
                abs,
                negative: negative && !abs.is_zero(),
            }),
            // The same failure, told of the whole input as Go tells it.
            Err(_) => Err(match parse_duration(input) {
                Err(e) => e,
                Ok(_) => DurationError::Invalid(input.to_string()),
            }),
        }
    }

    /// The duration, or zero when it is negative (how long a negative wait lasts).
    pub fn or_zero(self) -> Duration {
        if self.negative {
            Duration::ZERO
        } else {
            self.abs
        }
    }
}

/// Go's `Duration.String`, with its sign.
impl std::fmt::Display for SignedDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        f.write_str(&format_duration(self.abs))
    }
}

/// Print a duration as Go's `Duration.String` does: `0s`, `1.5s`, `2m0s`, `1h0m0s`, `500ms`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (scale, unit) = if nanos < 1_000 {
            (1, "ns")
        } else if nanos < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        return format!("{}{}", frac(nanos, scale), unit);
    }
    let hours = nanos / 3_600_000_000_000;
    let rem = nanos % 3_600_000_000_000;
    let mins = rem / 60_000_000_000;
    let secs_nanos = rem % 60_000_000_000;
    let secs = frac(secs_nanos, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{mins}m{secs}s")
    } else if mins > 0 {
        format!("{mins}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

fn frac(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go() {
        let ok = [
            ("0", 0),
            ("1s", 1_000_000_000),
            ("1.5s", 1_500_000_000),
            ("300ms", 300_000_000),
            ("2h45m", 9_900_000_000_000),
            ("1m30s", 90_000_000_000),
            ("10us", 10_000),
            ("10µs", 10_000),
            (".5s", 500_000_000),
            ("+5s", 5_000_000_000),
        ];
        for (s, n) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_nanos(n)), "{s}");
        }
        assert_eq!(
            parse_duration("1"),
            Err(DurationError::MissingUnit("1".into()))
        );
        assert!(matches!(
            parse_duration("1x"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert_eq!(parse_duration(""), Err(DurationError::Invalid("".into())));
        assert_eq!(parse_duration("s"), Err(DurationError::Invalid("s".into())));
        assert_eq!(
            parse_duration("-1s"),
            Err(DurationError::Negative("-1s".into()))
        );
        assert_eq!(
            parse_duration("1").unwrap_err().to_string(),
            "time: missing unit in duration \"1\""
        );
    }

    #[test]
    fn signed_durations_and_their_errors_as_go() {
        let d = |s| SignedDuration::parse(s).map(|d| (d.negative, d.to_string()));
        assert_eq!(d("-1m30s"), Ok((true, "-1m30s".to_string())));
        assert_eq!(d("-0"), Ok((false, "0s".to_string())));
        assert_eq!(d("+2s"), Ok((false, "2s".to_string())));
        assert_eq!(
            SignedDuration::parse("-3s").map(|d| d.or_zero()),
            Ok(Duration::ZERO)
        );
        // Texts of Go 1.26's time.ParseDuration for the same inputs.
        let errors = [
            ("--1s", r#"time: invalid duration "--1s""#),
            ("-+1s", r#"time: invalid duration "-+1s""#),
            ("-5", r#"time: missing unit in duration "-5""#),
            ("-x", r#"time: invalid duration "-x""#),
            ("a\"b", r#"time: invalid duration "a\"b""#),
            (
                "1µx",
                r#"time: unknown unit "\xc2\xb5x" in duration "1\xc2\xb5x""#,
            ),
            ("-1\t", r#"time: unknown unit "\x09" in duration "-1\x09""#),
        ];
        for (input, want) in errors {
            assert_eq!(
                SignedDuration::parse(input).map_err(|e| e.to_string()),
                Err(want.to_string()),
                "{input}"
            );
        }
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (0, "0s"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (30_000_000_000, "30s"),
            (300_000_000_000, "5m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_661_000_000_000, "1h1m1s"),
            (500_000_000, "500ms"),
            (1_500, "1.5µs"),
            (7, "7ns"),
        ];
        for (n, s) in cases {
            assert_eq!(format_duration(Duration::from_nanos(n)), s);
        }
    }

    #[test]
    fn signed_durations_read_and_print_as_go() {
        let ok = [
            ("30s", "30s"),
            ("5m", "5m0s"),
            ("1h", "1h0m0s"),
            ("1.5s", "1.5s"),
            ("-1s", "-1s"),
            ("0", "0s"),
            ("-0", "0s"),
            ("+2s", "2s"),
            ("1.s", "1s"),
        ];
        for (input, shown) in ok {
            let d = SignedDuration::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(d.to_string(), shown, "{input}");
        }
        assert_eq!(
            SignedDuration::parse("-1s").map(|d| d.or_zero()),
            Ok(Duration::ZERO)
        );
        let bad = [
            ("abc", "time: invalid duration \"abc\""),
            ("1", "time: missing unit in duration \"1\""),
            ("-1", "time: missing unit in duration \"-1\""),
            ("1x", "time: unknown unit \"x\" in duration \"1x\""),
            ("-1x", "time: unknown unit \"x\" in duration \"-1x\""),
            ("-+1s", "time: invalid duration \"-+1s\""),
            ("--1s", "time: invalid duration \"--1s\""),
            ("-", "time: invalid duration \"-\""),
            ("", "time: invalid duration \"\""),
            (".s", "time: invalid duration \".s\""),
            ("1e3s", "time: unknown unit \"e\" in duration \"1e3s\""),
            ("9223372037s", "time: invalid duration \"9223372037s\""),
        ];
        for (input, want) in bad {
            assert_eq!(
                SignedDuration::parse(input).map_err(|e| e.to_string()),
                Err(want.to_string()),
                "{input}"
            );
        }
    }
}

//! `net/url`: decoding `%XX` escapes in paths and query strings.

/// `%XX` escapes decoded, as Go's URL parser decodes a request path; `None` for a malformed
/// escape (a `%` not followed by two hex digits), which Go's HTTP server answers with 400.
pub fn path_unescape(raw: &str) -> Option<String> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex_value(*b.get(i + 1)?)?;
            let lo = hex_value(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// A query key or value decoded as `url.ParseQuery` does: `+` is a space, then `%XX` escapes.
pub fn query_unescape(s: &str) -> Option<String> {
    path_unescape(&s.replace('+', " "))
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_as_go_decodes_them() {
        assert_eq!(path_unescape("/heal%74h").as_deref(), Some("/health"));
        assert_eq!(path_unescape("/%2Fx").as_deref(), Some("//x"));
        assert_eq!(path_unescape("/x%zz"), None);
        assert_eq!(path_unescape("/x%4"), None);
        assert_eq!(path_unescape("/x%+1"), None);
        assert_eq!(query_unescape("a+b%21").as_deref(), Some("a b!"));
    }
}

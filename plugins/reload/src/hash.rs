//! The configuration hash CoreDNS logs: SHA-512 over the JSON its Caddy parser's server blocks
//! marshal to. Reproducing that JSON byte for byte makes our hash equal to CoreDNS's for the same
//! Corefile, so operators can compare the two.
//!
//! The shape is `[{"Keys":[...],"Tokens":{"<directive>":[{"File":..,"Line":..,"Text":..}]}}]`,
//! directives sorted by name (a Go map), strings escaped as Go's `encoding/json` does (HTML
//! characters as `\u003c` and the like). Tokens of the root Corefile carry an empty `File`
//! (Caddy's lexer leaves it unset); imported tokens carry their file's path.

use std::fmt::Write as _;

use ferrodns_plugin::CorefileInput;
use ferrodns_plugin::corefile::{self, ParseOptions, ServerBlock};
use sha2::{Digest, Sha512};

/// The hex SHA-512 of `input`'s server blocks, or the parse error (CoreDNS's text).
pub fn of(input: &CorefileInput) -> Result<String, String> {
    // Caddy's parser is called without a directive list here, so every name is accepted.
    let any = |_: &str| true;
    let blocks = corefile::parse(
        &input.filename,
        &input.text,
        &ParseOptions::process_env(&any),
    )
    .map_err(|e| e.to_string())?;
    Ok(hex(&Sha512::digest(
        json(&input.filename, &blocks).as_bytes(),
    )))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The JSON Go marshals `[]caddyfile.ServerBlock` to.
pub fn json(root: &str, blocks: &[ServerBlock]) -> String {
    let mut out = String::from("[");
    for (i, b) in blocks.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"Keys\":[");
        for (k, key) in b.keys.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            string(&mut out, &key.text);
        }
        out.push_str("],\"Tokens\":{");
        let mut dirs: Vec<_> = b.directives.iter().collect();
        dirs.sort_by(|x, y| x.name.as_bytes().cmp(y.name.as_bytes()));
        for (d, dir) in dirs.iter().enumerate() {
            if d > 0 {
                out.push(',');
            }
            string(&mut out, &dir.name);
            out.push_str(":[");
            for (t, tok) in dir.tokens.iter().enumerate() {
                if t > 0 {
                    out.push(',');
                }
                out.push_str("{\"File\":");
                let file: &str = &tok.file;
                string(&mut out, if file == root { "" } else { file });
                let _ = write!(out, ",\"Line\":{},\"Text\":", tok.line);
                string(&mut out, &tok.text);
                out.push('}');
            }
            out.push(']');
        }
        out.push_str("}}");
    }
    out.push(']');
    out
}

/// A JSON string as Go's encoder writes it (with HTML escaping, its default).
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, text: &str) -> CorefileInput {
        CorefileInput {
            filename: name.to_string(),
            text: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn same_hash_as_coredns() {
        // Logged by CoreDNS v1.14.7 for this Corefile.
        let h = of(&input(
            "Corefile",
            ".:15353 {\n  reload 2s 1s\n  whoami\n}\n",
        ))
        .unwrap();
        assert_eq!(
            h,
            "b47267ef5742bb6391ea5ddd358ea52966831e49758f081d6cedda562f50a992\
             5ffe5c529553c4393e09438090ab2938bd60b55773995af79bd083503ca8cacc"
        );
    }

    #[test]
    fn json_matches_go_for_imports_snippets_and_html() {
        let dir = std::env::temp_dir().join(format!("ferrodns-reload-hash-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("inc")).unwrap();
        std::fs::write(dir.join("inc/x.conf"), "whoami <a&b>\n").unwrap();
        let root = dir.join("C2");
        let text = "example.org {\n  import inc/*.conf\n  reload\n}\n(snip) {\n log\n}\n. { import snip\n }\n";
        std::fs::write(&root, text).unwrap();
        let name = root.to_string_lossy().to_string();
        let any = |_: &str| true;
        let blocks =
            corefile::parse(&name, text.as_bytes(), &ParseOptions::process_env(&any)).unwrap();
        let inc = dir.join("inc/x.conf").to_string_lossy().to_string();
        // What Go's json.Marshal gives for caddyfile.Parse of the same files.
        let want = format!(
            "[{{\"Keys\":[\"example.org\"],\"Tokens\":{{\"reload\":[{{\"File\":\"\",\"Line\":3,\"Text\":\"reload\"}}],\
             \"whoami\":[{{\"File\":\"{inc}\",\"Line\":1,\"Text\":\"whoami\"}},{{\"File\":\"{inc}\",\"Line\":1,\
             \"Text\":\"\\u003ca\\u0026b\\u003e\"}}]}}}},{{\"Keys\":[\".\"],\"Tokens\":{{\"log\":[{{\"File\":\"\",\
             \"Line\":6,\"Text\":\"log\"}}]}}}}]"
        );
        assert_eq!(json(&name, &blocks), want);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn line_moves_change_the_hash_trailing_comments_do_not() {
        let a = of(&input("Corefile", ". {\n whoami\n}\n")).unwrap();
        let b = of(&input("Corefile", ". {\n whoami # hi\n}\n")).unwrap();
        let c = of(&input("Corefile", "# top\n. {\n whoami\n}\n")).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn parse_errors_are_caddys() {
        let e = of(&input("Corefile", ". {\n whoami\n")).unwrap_err();
        assert!(e.contains("Corefile:"), "{e}");
    }

    #[test]
    fn control_characters_escape_like_go() {
        let mut s = String::new();
        string(&mut s, "a\"\\\u{1}\u{8}\u{c}\u{2028}é");
        assert_eq!(s, "\"a\\\"\\\\\\u0001\\b\\f\\u2028é\"");
    }
}

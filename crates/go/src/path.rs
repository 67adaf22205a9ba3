//! Go's `path/filepath` on Unix, with the exact semantics CoreDNS's `import`
//! gets from it: lexical cleaning, joining, `Abs`, and `Glob` (with `*`, `?`,
//! `[...]` classes and backslash escapes).
//!
//! Paths are handled as raw bytes so that non-UTF-8 file names found while
//! globbing can still be opened.

use std::ffi::OsStr;
use std::io;
use std::path::Path;

/// Maximum number of nested directory levels a glob may recurse through
/// (Go uses the same limit against stack exhaustion).
const GLOB_DEPTH_LIMIT: usize = 10_000;

/// Byte view of a path → `Path`.
#[cfg(unix)]
pub fn to_path(p: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(OsStr::from_bytes(p))
}

#[cfg(not(unix))]
pub fn to_path(p: &[u8]) -> &Path {
    match std::str::from_utf8(p) {
        Ok(s) => Path::new(s),
        Err(_) => Path::new(OsStr::new("\u{FFFD}")),
    }
}

/// `OsStr` → bytes (lossy off Unix).
#[cfg(unix)]
fn os_bytes(s: &OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    s.as_bytes().to_vec()
}

#[cfg(not(unix))]
fn os_bytes(s: &OsStr) -> Vec<u8> {
    s.to_string_lossy().into_owned().into_bytes()
}

/// Bytes → display string (invalid UTF-8 replaced).
pub fn display(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

/// Go's `filepath.IsAbs` on Unix.
pub fn is_abs(p: &[u8]) -> bool {
    p.first() == Some(&b'/')
}

/// Go's `filepath.Clean`: purely lexical normalisation.
pub fn clean(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path[0] == b'/';
    let n = path.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let (mut r, mut dotdot) = (0usize, 0usize);
    if rooted {
        out.push(b'/');
        r = 1;
        dotdot = 1;
    }
    while r < n {
        let is_sep_at = |i: usize| i == n || path[i] == b'/';
        if path[r] == b'/' || (path[r] == b'.' && is_sep_at(r + 1)) {
            // empty element or `.`
            r += 1;
        } else if path[r] == b'.' && r + 1 < n && path[r + 1] == b'.' && is_sep_at(r + 2) {
            r += 2;
            if out.len() > dotdot {
                // drop the last element together with its separator
                let mut w = out.len() - 1;
                while w > dotdot && out[w] != b'/' {
                    w -= 1;
                }
                out.truncate(w);
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while r < n && path[r] != b'/' {
                out.push(path[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// Go's `filepath.Join` for two elements.
pub fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Vec::new(),
        (true, false) => clean(b),
        (false, true) => clean(a),
        (false, false) => {
            let mut joined = a.to_vec();
            joined.push(b'/');
            joined.extend_from_slice(b);
            clean(&joined)
        }
    }
}

/// Go's `filepath.Split`: everything up to and including the last `/`, and
/// the rest.
pub fn split(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().rposition(|b| *b == b'/') {
        Some(i) => (&p[..=i], &p[i + 1..]),
        None => (&p[..0], p),
    }
}

/// Go's `filepath.Dir`.
pub fn dir(p: &[u8]) -> Vec<u8> {
    clean(split(p).0)
}

/// Go's `os.Getwd` on Unix: `$PWD` when it names the current directory,
/// otherwise the kernel's answer.
fn getwd() -> io::Result<Vec<u8>> {
    let dot = std::fs::metadata(".")?;
    if let Some(pwd) = std::env::var_os("PWD") {
        let pwd = os_bytes(&pwd);
        if is_abs(&pwd)
            && let Ok(meta) = std::fs::metadata(to_path(&pwd))
            && same_file(&dot, &meta)
        {
            return Ok(pwd);
        }
    }
    Ok(os_bytes(std::env::current_dir()?.as_os_str()))
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_a: &std::fs::Metadata, _b: &std::fs::Metadata) -> bool {
    false
}

/// Go's `filepath.Abs`.
pub fn abs(p: &[u8]) -> io::Result<Vec<u8>> {
    if is_abs(p) {
        return Ok(clean(p));
    }
    Ok(join(&getwd()?, p))
}

/// `op path: errno` like Go's `*fs.PathError`.
pub fn path_error(op: &str, p: &[u8], e: &io::Error) -> String {
    format!("{op} {}: {}", display(p), crate::os::io_text(e))
}

/// Go's `hasMeta` on Unix.
fn has_meta(p: &[u8]) -> bool {
    p.iter().any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
}

/// Go's `utf8.DecodeRune`: (rune, width); invalid input gives (U+FFFD, 1).
fn decode_rune(s: &[u8]) -> (u32, usize) {
    if s.is_empty() {
        return (0xFFFD, 0);
    }
    let width = match s[0] {
        0x00..=0x7F => return (u32::from(s[0]), 1),
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (0xFFFD, 1),
    };
    if s.len() < width {
        return (0xFFFD, 1);
    }
    match std::str::from_utf8(&s[..width]) {
        Ok(t) => match t.chars().next() {
            Some(c) => (u32::from(c), width),
            None => (0xFFFD, 1),
        },
        Err(_) => (0xFFFD, 1),
    }
}

/// A malformed glob pattern (Go's `filepath.ErrBadPattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern")]
pub struct BadPattern;

/// Splits off the next chunk: (leading star?, chunk, rest).
fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while pattern.first() == Some(&b'*') {
        pattern = &pattern[1..];
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => return (star, &pattern[..i], &pattern[i..]),
            _ => {}
        }
        i += 1;
    }
    (star, pattern, &[])
}

/// One character (possibly escaped) of a character class.
fn class_char(chunk: &[u8]) -> Result<(u32, &[u8]), BadPattern> {
    let mut chunk = chunk;
    if chunk.is_empty() || chunk[0] == b'-' || chunk[0] == b']' {
        return Err(BadPattern);
    }
    if chunk[0] == b'\\' {
        chunk = &chunk[1..];
        if chunk.is_empty() {
            return Err(BadPattern);
        }
    }
    let (r, n) = decode_rune(chunk);
    if r == 0xFFFD && n == 1 {
        return Err(BadPattern);
    }
    let rest = &chunk[n..];
    if rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((r, rest))
}

/// Matches `chunk` (no stars) against the start of `s`. The whole chunk is
/// always scanned so that malformed patterns are reported even when the
/// match already failed.
fn match_chunk<'s>(mut chunk: &[u8], mut s: &'s [u8]) -> Result<Option<&'s [u8]>, BadPattern> {
    let mut failed = false;
    while !chunk.is_empty() {
        failed = failed || s.is_empty();
        match chunk[0] {
            b'[' => {
                let mut r = 0u32;
                if !failed {
                    let (rr, n) = decode_rune(s);
                    r = rr;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let mut negated = false;
                if chunk.first() == Some(&b'^') {
                    negated = true;
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if chunk.first() == Some(&b']') && ranges > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = class_char(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk.first() == Some(&b'-') {
                        let (h, rest) = class_char(&chunk[1..])?;
                        hi = h;
                        chunk = rest;
                    }
                    matched = matched || (lo <= r && r <= hi);
                    ranges += 1;
                }
                failed = failed || matched == negated;
            }
            b'?' => {
                if !failed {
                    failed = s[0] == b'/';
                    let (_, n) = decode_rune(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            c => {
                let lit = if c == b'\\' {
                    chunk = &chunk[1..];
                    match chunk.first() {
                        Some(l) => *l,
                        None => return Err(BadPattern),
                    }
                } else {
                    c
                };
                if !failed {
                    failed = lit != s[0];
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    if failed { Ok(None) } else { Ok(Some(s)) }
}

/// Go's `filepath.Match` on Unix.
fn match_name(pattern: &[u8], name: &[u8]) -> Result<bool, BadPattern> {
    let mut pattern = pattern;
    let mut name = name;
    'outer: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            return Ok(!name.contains(&b'/'));
        }
        if let Some(t) = match_chunk(chunk, name)?
            && (t.is_empty() || !pattern.is_empty())
        {
            name = t;
            continue;
        }
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                // the last chunk must consume the rest of the name
                if let Some(t) = match_chunk(chunk, &name[i + 1..])?
                    && (!pattern.is_empty() || t.is_empty())
                {
                    name = t;
                    continue 'outer;
                }
                i += 1;
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Lists `dir` and appends the entries matching `pattern` (Go's lower-case
/// `glob`): unreadable directories are silently skipped.
fn glob_dir(
    dir: &[u8],
    pattern: &[u8],
    mut found: Vec<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, BadPattern> {
    let Ok(meta) = std::fs::metadata(to_path(dir)) else {
        return Ok(found);
    };
    if !meta.is_dir() {
        return Ok(found);
    }
    let Ok(entries) = std::fs::read_dir(to_path(dir)) else {
        return Ok(found);
    };
    let mut names: Vec<Vec<u8>> = entries
        .filter_map(Result::ok)
        .map(|e| os_bytes(&e.file_name()))
        .collect();
    names.sort();
    for name in names {
        if match_name(pattern, &name)? {
            found.push(join(dir, &name));
        }
    }
    Ok(found)
}

/// Go's `filepath.Glob` on Unix. The only error is a malformed pattern
/// ([`BadPattern`]); I/O problems just produce fewer matches.
pub fn glob(pattern: &[u8]) -> Result<Vec<Vec<u8>>, BadPattern> {
    // Walk up the directory part while it still contains wildcards, then
    // expand downwards again (iterative version of Go's recursion).
    let mut pending_files: Vec<Vec<u8>> = Vec::new();
    let mut current = pattern.to_vec();
    let mut depth = 0usize;
    let mut matches = loop {
        if depth == GLOB_DEPTH_LIMIT {
            return Err(BadPattern);
        }
        match_name(&current, b"")?;
        if !has_meta(&current) {
            if std::fs::symlink_metadata(to_path(&current)).is_ok() {
                break vec![current];
            }
            break Vec::new();
        }
        let (d, f) = split(&current);
        let d = match d {
            [] => b".".to_vec(),
            [b'/'] => b"/".to_vec(),
            _ => d[..d.len() - 1].to_vec(),
        };
        if !has_meta(&d) {
            break glob_dir(&d, f, Vec::new())?;
        }
        if d == current {
            return Err(BadPattern);
        }
        pending_files.push(f.to_vec());
        current = d;
        depth += 1;
    };
    while let Some(file) = pending_files.pop() {
        let mut next = Vec::new();
        for d in &matches {
            next = glob_dir(d, &file, next)?;
        }
        matches = next;
    }
    Ok(matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> String {
        display(&clean(s.as_bytes()))
    }

    #[test]
    fn clean_like_go() {
        assert_eq!(c(""), ".");
        assert_eq!(c("/"), "/");
        assert_eq!(c("a//b/./c/.."), "a/b");
        assert_eq!(c("/../x"), "/x");
        assert_eq!(c("../../x"), "../../x");
        assert_eq!(c("a/../.."), "..");
        assert_eq!(c("/a/b/"), "/a/b");
    }

    #[test]
    fn match_like_go() {
        let m = |p: &str, n: &str| match_name(p.as_bytes(), n.as_bytes()).ok();
        assert_eq!(m("*.txt", "a.txt"), Some(true));
        assert_eq!(m("*.txt", "a/b.txt"), Some(false));
        assert_eq!(m("a?c", "abc"), Some(true));
        assert_eq!(m("a\\*c", "a*c"), Some(true));
        assert_eq!(m("a\\*c", "abc"), Some(false));
        assert_eq!(m("[a-c]x", "bx"), Some(true));
        assert_eq!(m("[^a-c]x", "bx"), Some(false));
        assert_eq!(m("a[b", "x"), None);
        assert_eq!(m("ab\\", "x"), None);
        // only the first chunk is validated against an empty name
        assert_eq!(m("x*a[b", ""), Some(false));
    }
}

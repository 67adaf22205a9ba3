//! Tokenizer for Corefile text, written with `nom`.
//!
//! Rules (same as CoreDNS's Caddyfile lexer):
//! * a leading U+FEFF byte order mark is dropped;
//! * bytes that are not valid UTF-8 become U+FFFD, one per offending byte;
//! * tokens are separated by Unicode white space, but `\r` never separates
//!   anything: outside quotes it is simply deleted;
//! * `#` outside quotes starts a comment.  At the start of a token the
//!   comment runs to the end of the line; inside a word it only swallows the
//!   rest of that word (up to the next white space), the word itself ends
//!   before the `#`;
//! * a token that *begins* with `"` is quoted: it extends to the next `"` that
//!   is not preceded by a backslash, may span lines, and `\"` is its only
//!   escape (every other backslash is kept).  An unterminated quote runs to
//!   the end of the input;
//! * braces have no special meaning here, `{` and `}` are ordinary words.

use nom::{
    IResult, Parser,
    branch::alt,
    bytes::complete::{is_not, tag, take_till, take_while, take_while1},
    character::complete::{anychar, char},
    combinator::{map, opt, recognize, value},
    multi::{fold_many0, many0_count},
    sequence::preceded,
};

/// A raw token as produced by the lexer (no file attached yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawToken {
    pub text: String,
    pub line: u32,
}

/// Decodes bytes the way Go's `bufio.Reader.ReadRune` does: every byte that
/// does not start a valid UTF-8 sequence is replaced by one U+FFFD.
pub(crate) fn decode_go_utf8(mut input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len());
    loop {
        match std::str::from_utf8(input) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(e) => {
                let good = e.valid_up_to();
                // The prefix is valid by construction; from_utf8 cannot fail here.
                if let Ok(valid) = std::str::from_utf8(&input[..good]) {
                    out.push_str(valid);
                }
                out.push('\u{FFFD}');
                input = &input[good + 1..];
            }
        }
    }
}

/// White space as understood by the Corefile lexer (Go's `unicode.IsSpace`
/// and Rust's `char::is_whitespace` agree on this set).
fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// White space that ends a word (`\r` does not).
fn is_separator(c: char) -> bool {
    c != '\r' && is_space(c)
}

fn count_newlines(s: &str) -> u32 {
    u32::try_from(s.bytes().filter(|b| *b == b'\n').count()).unwrap_or(u32::MAX)
}

/// A comment that starts where a token could start: `#` up to (not including)
/// the end of the line.
fn line_comment(i: &str) -> IResult<&str, &str> {
    recognize(preceded(char('#'), take_till(|c| c == '\n'))).parse(i)
}

/// Anything that separates tokens: white space and whole-line comments.
fn trivia(i: &str) -> IResult<&str, &str> {
    recognize(many0_count(alt((take_while1(is_space), line_comment)))).parse(i)
}

/// One piece of a quoted token body.
#[derive(Clone)]
enum Piece<'a> {
    /// `\"` -> `"`
    Quote,
    /// a backslash followed by some other character: both are kept
    Kept(char),
    /// plain run of text
    Text(&'a str),
}

/// The body of a quoted token after its opening quote. Returns the token text
/// and whether a closing quote was found.
fn quoted_body(i: &str) -> IResult<&str, (String, bool)> {
    let (i, text) = fold_many0(
        alt((
            value(Piece::Quote, tag("\\\"")),
            map(preceded(char('\\'), anychar), Piece::Kept),
            map(is_not("\\\""), Piece::Text),
        )),
        String::new,
        |mut acc: String, piece| {
            match piece {
                Piece::Quote => acc.push('"'),
                Piece::Kept(c) => {
                    acc.push('\\');
                    acc.push(c);
                }
                Piece::Text(t) => acc.push_str(t),
            }
            acc
        },
    )
    .parse(i)?;
    // A lone backslash right before the end of input is an escape that never
    // got its character: it is dropped.
    let (i, _) = opt(char('\\')).parse(i)?;
    let (i, closed) = opt(char('"')).parse(i)?;
    Ok((i, (text, closed.is_some())))
}

/// A quoted token: `"` body [`"`].
fn quoted(i: &str) -> IResult<&str, (String, bool)> {
    preceded(char('"'), quoted_body).parse(i)
}

/// An unquoted word: returns the word (with `\r` removed) and consumes an
/// in-word comment if one follows.
fn word(i: &str) -> IResult<&str, String> {
    let (i, raw) = take_while1(|c: char| !is_separator(c) && c != '#').parse(i)?;
    // `foo#bar` -> `foo`; the comment only eats up to the next separator.
    let (i, _) = opt(preceded(char('#'), take_while(|c: char| !is_separator(c)))).parse(i)?;
    let text = if raw.contains('\r') {
        raw.chars().filter(|c| *c != '\r').collect()
    } else {
        raw.to_owned()
    };
    Ok((i, text))
}

/// Splits `input` into tokens with their line numbers.
pub(crate) fn lex(input: &[u8]) -> Vec<RawToken> {
    let decoded = decode_go_utf8(input);
    let mut rest = decoded.strip_prefix('\u{FEFF}').unwrap_or(&decoded);
    let mut line: u32 = 1;
    let mut out = Vec::new();
    loop {
        // `trivia` cannot fail: it accepts the empty string.
        if let Ok((r, skipped)) = trivia(rest) {
            line = line.saturating_add(count_newlines(skipped));
            rest = r;
        }
        if rest.is_empty() {
            break;
        }
        let start_line = line;
        if let Ok((r, (text, closed))) = quoted(rest) {
            let consumed = &rest[..rest.len() - r.len()];
            line = line.saturating_add(count_newlines(consumed));
            rest = r;
            // An unterminated quote at end of input only yields a token when
            // it collected something.
            if closed || !text.is_empty() {
                out.push(RawToken {
                    text,
                    line: start_line,
                });
            }
            continue;
        }
        match word(rest) {
            Ok((r, text)) => {
                rest = r;
                out.push(RawToken {
                    text,
                    line: start_line,
                });
            }
            // Unreachable in practice (trivia stopped on a word character),
            // but never loop forever: drop one character and go on.
            Err(_) => {
                let mut chars = rest.chars();
                chars.next();
                rest = chars.as_str();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str) -> Vec<(String, u32)> {
        lex(input.as_bytes())
            .into_iter()
            .map(|t| (t.text, t.line))
            .collect()
    }

    #[test]
    fn decode_replaces_each_bad_byte() {
        assert_eq!(decode_go_utf8(b"a\xE2\x82Ab"), "a\u{FFFD}\u{FFFD}Ab");
        assert_eq!(decode_go_utf8(b"\xff"), "\u{FFFD}");
    }

    #[test]
    fn in_word_comment_only_eats_the_word() {
        assert_eq!(
            texts("foo#bar baz\nqux"),
            vec![("foo".into(), 1), ("baz".into(), 1), ("qux".into(), 2)]
        );
    }

    #[test]
    fn trailing_backslash_in_open_quote() {
        assert_eq!(texts("\"abc\\"), vec![("abc".into(), 1)]);
        assert!(texts("\"").is_empty());
    }
}

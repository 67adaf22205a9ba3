//! The lexer: the text between actions, and the tokens of one action; number and quoted
//! constants.

use super::parse::{Item, Parser};
use super::tree::{Node, Number};
use crate::strconv;

/// One token of an action.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Dot,
    Field(String),
    Var(String),
    Ident(String),
    Str(String, String),
    Char(i64, String),
    Num(String),
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
}

impl Parser<'_> {
    /// The next text run or action. `trim_next` says the previous action ended with `-}}`.
    pub(super) fn next_item(&mut self, trim_left: &mut bool) -> Result<Item, String> {
        loop {
            if self.pos >= self.text.len() {
                return Ok(Item::Eof);
            }
            let rest = &self.text[self.pos..];
            match rest.find("{{") {
                Some(0) => {}
                found => {
                    let end = found.unwrap_or(rest.len());
                    let mut t = &rest[..end];
                    if *trim_left {
                        t = t.trim_start_matches([' ', '\t', '\r', '\n']);
                    }
                    // A following `{{- ` trims this text's end.
                    let after = &rest[end..];
                    if after.starts_with("{{- ")
                        || after.starts_with("{{-\t")
                        || after.starts_with("{{-\n")
                        || after.starts_with("{{-\r")
                    {
                        t = t.trim_end_matches([' ', '\t', '\r', '\n']);
                    }
                    self.pos += end;
                    *trim_left = false;
                    if !t.is_empty() {
                        return Ok(Item::Node(Node::Text(t.to_string())));
                    }
                    continue;
                }
            }
            // An action.
            let start = self.pos;
            self.pos += 2;
            let b = self.text.as_bytes();
            if b.get(self.pos) == Some(&b'-')
                && matches!(b.get(self.pos + 1), Some(b' ' | b'\t' | b'\r' | b'\n'))
            {
                self.pos += 2;
            }
            *trim_left = false;
            // Comment.
            // A comment must follow the delimiter (and its trim marker) directly, as in Go.
            let inner = &self.text[self.pos..];
            if inner.starts_with("/*") {
                let cstart = self.text.len() - inner.len();
                let Some(close) = self.text[cstart + 2..].find("*/") else {
                    return Err(self.err(start, "unclosed comment"));
                };
                let mut p = cstart + 2 + close + 2;
                let after = &self.text[p..];
                let trimmed = after.trim_start_matches([' ', '\t', '\r', '\n']);
                let mut q = self.text.len() - trimmed.len();
                if trimmed.starts_with("-}}") && q > p {
                    *trim_left = true;
                    q += 3;
                } else if trimmed.starts_with("}}") {
                    q += 2;
                } else {
                    return Err(self.err(start, "comment ends before closing delimiter"));
                }
                p = q;
                self.pos = p;
                continue;
            }
            return self.action(start, trim_left);
        }
    }

    pub(super) fn lex_action(
        &mut self,
        start: usize,
        trim_left: &mut bool,
    ) -> Result<Vec<(Tok, usize, bool)>, String> {
        let b = self.text.as_bytes();
        let mut toks = Vec::new();
        let mut space = true;
        let mut depth = 0i32;
        loop {
            let Some(&c) = b.get(self.pos) else {
                return Err(self.err(start, "unclosed action"));
            };
            let here = self.pos;
            if c == b' ' || c == b'\t' || c == b'\r' || c == b'\n' {
                // ` -}}` closes with a trim.
                let rest = &self.text[self.pos..];
                let t = rest.trim_start_matches([' ', '\t', '\r', '\n']);
                if t.starts_with("-}}") {
                    self.pos = self.text.len() - t.len() + 3;
                    *trim_left = true;
                    if depth > 0 {
                        return Err(self.err(start, "unclosed left paren"));
                    }
                    return Ok(toks);
                }
                if c == b'\n' && depth == 0 {
                    // Newlines are allowed inside actions in Go 1.16+.
                }
                self.pos += 1;
                space = true;
                continue;
            }
            if self.text[self.pos..].starts_with("}}") {
                self.pos += 2;
                if depth > 0 {
                    return Err(self.err(start, "unclosed left paren"));
                }
                return Ok(toks);
            }
            let tok = match c {
                b'|' => {
                    self.pos += 1;
                    Tok::Pipe
                }
                b'(' => {
                    self.pos += 1;
                    depth += 1;
                    Tok::LParen
                }
                b')' => {
                    self.pos += 1;
                    depth -= 1;
                    if depth < 0 {
                        return Err(self.err(here, "unexpected right paren"));
                    }
                    Tok::RParen
                }
                b',' => {
                    self.pos += 1;
                    Tok::Comma
                }
                b':' => {
                    if b.get(self.pos + 1) == Some(&b'=') {
                        self.pos += 2;
                        Tok::Declare
                    } else {
                        return Err(self.err(here, "expected :="));
                    }
                }
                b'=' => {
                    self.pos += 1;
                    Tok::Assign
                }
                b'"' => {
                    let mut i = self.pos + 1;
                    loop {
                        match b.get(i) {
                            None | Some(b'\n') => {
                                return Err(self.err(here, "unterminated quoted string"));
                            }
                            Some(b'\\') => i += 2,
                            Some(b'"') => break,
                            _ => i += 1,
                        }
                    }
                    let raw = &self.text[self.pos..=i];
                    let v = unquote(raw)
                        .ok_or_else(|| self.err(here, format!("invalid syntax: {raw}")))?;
                    self.pos = i + 1;
                    Tok::Str(v, raw.to_string())
                }
                b'`' => {
                    let Some(end) = self.text[self.pos + 1..].find('`') else {
                        return Err(self.err(here, "unterminated raw quoted string"));
                    };
                    let raw = &self.text[self.pos..self.pos + end + 2];
                    self.pos += end + 2;
                    Tok::Str(raw[1..raw.len() - 1].to_string(), raw.to_string())
                }
                b'\'' => {
                    let mut i = self.pos + 1;
                    loop {
                        match b.get(i) {
                            None | Some(b'\n') => {
                                return Err(self.err(here, "unterminated character constant"));
                            }
                            Some(b'\\') => i += 2,
                            Some(b'\'') => break,
                            _ => i += 1,
                        }
                    }
                    let raw = &self.text[self.pos..=i];
                    let inner = format!("\"{}\"", &raw[1..raw.len() - 1]);
                    let v = unquote(&inner)
                        .and_then(|s| {
                            let mut cs = s.chars();
                            match (cs.next(), cs.next()) {
                                (Some(c), None) => Some(c as i64),
                                _ => None,
                            }
                        })
                        .ok_or_else(|| {
                            self.err(here, format!("malformed character constant: {raw}"))
                        })?;
                    self.pos = i + 1;
                    Tok::Char(v, raw.to_string())
                }
                b'$' => {
                    let mut i = self.pos + 1;
                    while b
                        .get(i)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    {
                        i += 1;
                    }
                    let v = self.text[self.pos..i].to_string();
                    self.pos = i;
                    Tok::Var(v)
                }
                b'.' => {
                    let next = b.get(self.pos + 1).copied();
                    if next.is_some_and(|c| c.is_ascii_digit()) {
                        self.number()?
                    } else {
                        let mut i = self.pos + 1;
                        while b
                            .get(i)
                            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                        {
                            i += 1;
                        }
                        let f = self.text[self.pos + 1..i].to_string();
                        self.pos = i;
                        if f.is_empty() {
                            Tok::Dot
                        } else {
                            Tok::Field(f)
                        }
                    }
                }
                b'+' | b'-' | b'0'..=b'9' => self.number()?,
                // A letter of any script starts an identifier; any other character above
                // ASCII (a BOM, a symbol) is unrecognized, as below.
                c if c.is_ascii_alphabetic()
                    || c == b'_'
                    || (c >= 0x80
                        && self.text[self.pos..]
                            .chars()
                            .next()
                            .is_some_and(char::is_alphanumeric)) =>
                {
                    let mut i = self.pos;
                    while let Some(ch) = self.text[i..].chars().next() {
                        if ch.is_alphanumeric() || ch == '_' {
                            i += ch.len_utf8();
                        } else {
                            break;
                        }
                    }
                    let w = self.text[self.pos..i].to_string();
                    self.pos = i;
                    Tok::Ident(w)
                }
                b'/' => {
                    return Err(self.err(here, "unexpected \"/\" in command"));
                }
                _ => {
                    let ch = self.text[self.pos..].chars().next().unwrap_or('?');
                    return Err(self.err(
                        here,
                        format!(
                            "unrecognized character in action: U+{:04X} {}",
                            ch as u32,
                            go_quote_char(ch)
                        ),
                    ));
                }
            };
            toks.push((tok, here, space));
            space = false;
        }
    }

    fn number(&mut self) -> Result<Tok, String> {
        let b = self.text.as_bytes();
        let start = self.pos;
        let mut i = self.pos;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        while b.get(i).is_some_and(|c| {
            c.is_ascii_alphanumeric()
                || *c == b'.'
                || *c == b'_'
                || ((*c == b'+' || *c == b'-')
                    && matches!(b.get(i - 1), Some(b'e' | b'E' | b'p' | b'P')))
        }) {
            i += 1;
        }
        self.pos = i;
        let raw = &self.text[start..i];
        if parse_number(raw).is_none() {
            return Err(self.err(start, format!("bad number syntax: {}", strconv::quote(raw))));
        }
        Ok(Tok::Num(raw.to_string()))
    }
}

/// How Go's parser names a token in its errors.
pub(super) fn tok_desc(t: &Tok) -> String {
    match t {
        Tok::Dot => "<.>".into(),
        Tok::Field(f) => format!("<.{f}>"),
        Tok::Var(v) => format!("<{v}>"),
        Tok::Ident(w) => format!("<{w}>"),
        Tok::Str(_, raw) | Tok::Char(_, raw) | Tok::Num(raw) => raw.clone(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Pipe => "\"|\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Comma => "\",\"".into(),
    }
}

/// The quoted character Go's `%#U` prints after `U+XXXX`, as we print it: the character
/// between single quotes, unescaped (this is not `strconv.QuoteRune`).
fn go_quote_char(c: char) -> String {
    format!("'{c}'")
}

/// A number constant as Go's lexer reads it (underscores, base prefixes, signs, floats).
pub(super) fn parse_number(raw: &str) -> Option<Number> {
    let s = raw.replace('_', "");
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r.to_string()),
        None => (false, s.strip_prefix('+').unwrap_or(&s).to_string()),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        u64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        u64::from_str_radix(b, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|c| c.is_ascii_digit())
    {
        u64::from_str_radix(&lower[1..], 8).ok()
    } else if lower.bytes().all(|c| c.is_ascii_digit()) {
        lower.parse::<u64>().ok()
    } else {
        None
    };
    if let Some(u) = int {
        if neg {
            return i64::try_from(u).ok().map(|v| Number::Int(-v));
        }
        return Some(match i64::try_from(u) {
            Ok(v) => Number::Int(v),
            Err(_) => Number::Uint(u),
        });
    }
    let f: f64 = lower.parse().ok()?;
    Some(Number::Float(if neg { -f } else { f }))
}

/// Go's `strconv.Unquote` for a double-quoted string (common escapes).
fn unquote(raw: &str) -> Option<String> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '\'' => out.push('\''),
            'x' => {
                let h: String = chars.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&h, 16).ok()?));
            }
            'u' => {
                let h: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&h, 16).ok()?)?);
            }
            'U' => {
                let h: String = chars.by_ref().take(8).collect();
                out.push(char::from_u32(u32::from_str_radix(&h, 16).ok()?)?);
            }
            d @ '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let v = u8::from_str_radix(&format!("{d}{rest}"), 8).ok()?;
                out.push(char::from(v));
            }
            _ => return None,
        }
    }
    Some(out)
}

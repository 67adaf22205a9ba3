//! Go regular expressions (RE2 syntax as Go's `regexp.Compile` reads it) on top of the `regex`
//! crate.
//!
//! The pattern is read with Go's grammar and rewritten into an equivalent pattern for `regex`,
//! so that it is accepted or rejected as Go would, with Go's error texts
//! (`error parsing regexp: unexpected ): `())``), and matches what Go would match:
//!
//! - `\d \s \w \b` and their negations are ASCII-only, as in Go (`\s` without `\v`);
//! - flags (`(?i)`, `(?m)`, `(?s)`, `(?U)`) are resolved while reading and applied to each
//!   piece, so that their scope is Go's;
//! - `\Q...\E`, octal escapes and Go's literal-brace rules (`a{,3}`, `x{01}`) are kept;
//! - Go's repetition limits (counts up to 1000, nested counts multiplying to at most 1000) and
//!   its refusal of stacked repetition operators (`a**`) are enforced.
//!
//! Not reproduced exactly: the set of Unicode property names accepted by `\p{...}` is the `regex`
//! crate's (Go accepts general categories and scripts only), and Go's nesting-depth limit is
//! approximated by a limit of 1000 nested groups.

use regex::RegexBuilder;

/// The compiled expression type (the `regex` crate's), re-exported so plugins need no
/// dependency of their own on it.
pub use regex::Regex;

/// Go's limit on repetition counts.
const MAX_REPEAT: u64 = 1000;
/// The nesting depth Go refuses.
const MAX_DEPTH: usize = 1000;

/// How deep capturing groups may nest in [`compile_captures`]. Go allows 1000, but keeping that
/// many real groups makes the `regex` crate recurse deeper than a thread's stack allows.
pub const MAX_CAPTURE_DEPTH: usize = 100;

/// Compile a Go regular expression for matching only (groups are not kept). The error is Go's
/// text.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    build(pattern, translate(pattern).map_err(|e| e.to_string())?)
}

/// Compile a Go regular expression keeping its capture groups, numbered and named as Go numbers
/// and names them (for `{1}`-style substitutions). Capture groups may nest at most
/// [`MAX_CAPTURE_DEPTH`] deep.
pub fn compile_captures(pattern: &str) -> Result<Regex, String> {
    let mut t = Translator::new(pattern);
    t.keep_captures = true;
    let translated = t.run().map_err(|e| e.to_string())?;
    build(pattern, translated)
}

fn build(pattern: &str, translated: String) -> Result<Regex, String> {
    RegexBuilder::new(&translated)
        .nest_limit(u32::try_from(MAX_DEPTH * 4 + 16).unwrap_or(u32::MAX))
        .size_limit(64 << 20)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => GoError::new(Code::Large, pattern).to_string(),
            other => format!("error parsing regexp: {other}"),
        })
}

/// Go's error codes (`regexp/syntax.ErrorCode`) that can arise here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    InvalidCharClass,
    InvalidCharRange,
    InvalidEscape,
    InvalidNamedCapture,
    InvalidPerlOp,
    InvalidRepeatOp,
    InvalidRepeatSize,
    MissingBracket,
    MissingParen,
    MissingRepeatArgument,
    TrailingBackslash,
    UnexpectedParen,
    NestingDepth,
    Large,
    /// ferrodns's own limit on nested capture groups kept by `compile_captures`.
    CaptureDepth,
}

impl Code {
    fn text(self) -> &'static str {
        match self {
            Code::InvalidCharClass => "invalid character class",
            Code::InvalidCharRange => "invalid character class range",
            Code::InvalidEscape => "invalid escape sequence",
            Code::InvalidNamedCapture => "invalid named capture",
            Code::InvalidPerlOp => "invalid or unsupported Perl syntax",
            Code::InvalidRepeatOp => "invalid nested repetition operator",
            Code::InvalidRepeatSize => "invalid repeat count",
            Code::MissingBracket => "missing closing ]",
            Code::MissingParen => "missing closing )",
            Code::MissingRepeatArgument => "missing argument to repetition operator",
            Code::TrailingBackslash => "trailing backslash at end of expression",
            Code::CaptureDepth => "capture groups nested more than 100 deep (ferrodns's limit)",
            Code::UnexpectedParen => "unexpected )",
            Code::NestingDepth => "expression nests too deeply",
            Code::Large => "expression too large",
        }
    }
}

/// A Go parse error: the code and the offending part of the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoError {
    code: Code,
    expr: String,
}

impl GoError {
    fn new(code: Code, expr: &str) -> Self {
        GoError {
            code,
            expr: expr.to_string(),
        }
    }
}

impl std::fmt::Display for GoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "error parsing regexp: {}: `{}`",
            self.code.text(),
            self.expr
        )
    }
}

/// The flags in force while reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Flags {
    /// `i`
    fold: bool,
    /// `m` (Go's OneLine cleared)
    multi_line: bool,
    /// `s`
    dot_nl: bool,
    /// `U`
    non_greedy: bool,
}

/// A finished piece of the output that a repetition may apply to.
#[derive(Debug, Clone, Copy)]
struct Atom {
    /// Where its text starts in the output.
    start: usize,
    /// The largest product of nested counted repetitions inside it (Go's `repeatIsValid`).
    weight: u64,
}

/// An open group (the outermost frame is the whole expression).
#[derive(Debug)]
struct Frame {
    /// Flags to restore when the group closes.
    saved: Flags,
    /// Where the group's text starts in the output.
    start: usize,
    /// The piece a repetition would apply to, if any (none after `(` or `|`).
    last: Option<Atom>,
    /// The largest weight of the pieces already finished in the group.
    weight: u64,
    /// Whether Go would make a capture node of the group.
    capturing: bool,
}

impl Frame {
    fn new(saved: Flags, start: usize) -> Self {
        Frame {
            saved,
            start,
            last: None,
            weight: 1,
            capturing: false,
        }
    }

    fn finish_last(&mut self) {
        if let Some(a) = self.last.take() {
            self.weight = self.weight.max(a.weight);
        }
    }
}

/// A character-class item.
enum ClassItem {
    Range(char, char),
    /// A nested class or property in `regex` syntax (`[0-9]`, `[:alpha:]`, `\p{Greek}`).
    Raw(String),
}

/// Rewrite a Go pattern into `regex` syntax, or fail as Go would.
pub fn translate(pattern: &str) -> Result<String, GoError> {
    Translator::new(pattern).run()
}

struct Translator<'a> {
    whole: &'a str,
    pos: usize,
    out: String,
    flags: Flags,
    frames: Vec<Frame>,
    /// Where the previous token started, if it was a repetition operator.
    last_repeat: Option<usize>,
    /// Keep capturing groups capturing (else every group is written as `(?:`).
    keep_captures: bool,
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn hex_value(c: char) -> Option<u32> {
    c.to_digit(16)
}

fn rx_char(c: char) -> String {
    format!("\\x{{{:X}}}", u32::from(c))
}

impl<'a> Translator<'a> {
    fn new(whole: &'a str) -> Self {
        Translator {
            whole,
            pos: 0,
            out: String::with_capacity(whole.len() * 2),
            flags: Flags::default(),
            frames: vec![Frame::new(Flags::default(), 0)],
            last_repeat: None,
            keep_captures: false,
        }
    }

    fn rest(&self) -> &'a str {
        &self.whole[self.pos..]
    }

    fn frame(&mut self) -> &mut Frame {
        // There is always the outermost frame.
        let last = self.frames.len() - 1;
        &mut self.frames[last]
    }

    fn err(&self, code: Code, expr: &str) -> GoError {
        GoError::new(code, expr)
    }

    /// Append a piece that repetitions may apply to.
    fn push_atom(&mut self, text: &str, weight: u64) {
        let start = self.out.len();
        self.out.push_str(text);
        let frame = self.frame();
        frame.finish_last();
        frame.last = Some(Atom { start, weight });
    }

    /// Append a piece with the case-folding flag applied.
    fn push_folded(&mut self, text: &str) {
        if self.flags.fold {
            self.push_atom(&format!("(?i:{text})"), 1);
        } else {
            self.push_atom(text, 1);
        }
    }

    fn push_literal(&mut self, c: char) {
        let text = regex::escape(c.encode_utf8(&mut [0; 4]));
        self.push_folded(&text);
    }

    fn run(mut self) -> Result<String, GoError> {
        while self.pos < self.whole.len() {
            let t = self.rest();
            let mut repeat_at = None;
            let Some(c) = t.chars().next() else { break };
            match c {
                '(' => {
                    if t.starts_with("(?") {
                        self.perl_flags()?;
                    } else {
                        self.open_group(self.flags, true, None)?;
                        self.pos += 1;
                    }
                }
                '|' => {
                    self.frame().finish_last();
                    self.out.push('|');
                    self.pos += 1;
                }
                ')' => {
                    self.close_group()?;
                    self.pos += 1;
                }
                '^' => {
                    let text = if self.flags.multi_line {
                        "(?m:^)"
                    } else {
                        "\\A"
                    };
                    self.push_atom(text, 1);
                    self.pos += 1;
                }
                '$' => {
                    let text = if self.flags.multi_line {
                        "(?m:$)"
                    } else {
                        "\\z"
                    };
                    self.push_atom(text, 1);
                    self.pos += 1;
                }
                '.' => {
                    let text = if self.flags.dot_nl { "(?s:.)" } else { "." };
                    self.push_atom(text, 1);
                    self.pos += 1;
                }
                '[' => self.class()?,
                '*' | '+' | '?' => {
                    repeat_at = Some(self.pos);
                    let op = match c {
                        '*' => "*",
                        '+' => "+",
                        _ => "?",
                    };
                    let before = self.pos;
                    self.pos += 1;
                    self.repeat(op, None, before)?;
                }
                '{' => match parse_repeat(t) {
                    None => {
                        self.push_literal('{');
                        self.pos += 1;
                    }
                    Some((min, max, len)) => {
                        let before = self.pos;
                        self.pos += len;
                        let bad = match (min, max) {
                            (None, _) => true,
                            (Some(min), Max::Unbounded) => min > MAX_REPEAT,
                            (Some(_), Max::TooBig) => true,
                            (Some(min), Max::Of(max)) => {
                                min > MAX_REPEAT || max > MAX_REPEAT || min > max
                            }
                        };
                        if bad {
                            return Err(self.err(Code::InvalidRepeatSize, &t[..len]));
                        }
                        let min = min.unwrap_or(0);
                        let (op, count) = match max {
                            Max::Of(max) if max == min => (format!("{{{min}}}"), Some((min, max))),
                            Max::Of(max) => (format!("{{{min},{max}}}"), Some((min, max))),
                            _ => (format!("{{{min},}}"), Some((min, u64::MAX))),
                        };
                        repeat_at = Some(before);
                        self.repeat(&op, count, before)?;
                    }
                },
                '\\' => self.escape()?,
                _ => {
                    self.push_literal(c);
                    self.pos += c.len_utf8();
                }
            }
            self.last_repeat = repeat_at;
        }
        if self.frames.len() != 1 {
            return Err(self.err(Code::MissingParen, self.whole));
        }
        Ok(self.out)
    }

    /// Open a group: capturing groups stay capturing (numbered, or named when `name` is given)
    /// so that callers can read what they matched.
    fn open_group(
        &mut self,
        saved: Flags,
        capturing: bool,
        name: Option<&str>,
    ) -> Result<(), GoError> {
        let start = self.out.len();
        match (capturing && self.keep_captures, name) {
            (true, Some(n)) => {
                self.out.push_str("(?P<");
                self.out.push_str(n);
                self.out.push('>');
            }
            (true, None) => self.out.push('('),
            (false, _) => self.out.push_str("(?:"),
        }
        let mut frame = Frame::new(saved, start);
        frame.capturing = capturing;
        self.frames.push(frame);
        // Go refuses parse trees higher than 1000; nested capturing groups are what makes
        // them that high in practice.
        let depth = self.frames.iter().filter(|f| f.capturing).count();
        if depth >= MAX_DEPTH {
            return Err(self.err(Code::NestingDepth, self.whole));
        }
        if self.keep_captures && depth > MAX_CAPTURE_DEPTH {
            return Err(self.err(Code::CaptureDepth, self.whole));
        }
        Ok(())
    }

    fn close_group(&mut self) -> Result<(), GoError> {
        if self.frames.len() < 2 {
            return Err(self.err(Code::UnexpectedParen, self.whole));
        }
        let Some(mut frame) = self.frames.pop() else {
            return Err(self.err(Code::UnexpectedParen, self.whole));
        };
        frame.finish_last();
        self.out.push(')');
        self.flags = frame.saved;
        let parent = self.frame();
        parent.finish_last();
        parent.last = Some(Atom {
            start: frame.start,
            weight: frame.weight,
        });
        Ok(())
    }

    /// `(?flags)`, `(?flags:`, `(?P<name>`, `(?<name>`.
    fn perl_flags(&mut self) -> Result<(), GoError> {
        let s = self.rest();
        let b = s.as_bytes();
        let starts_with_p = b.len() > 4 && b[2] == b'P' && b[3] == b'<';
        let starts_with_name = b.len() > 3 && b[2] == b'<';
        if starts_with_p || starts_with_name {
            let expr_start = if starts_with_p { 4 } else { 3 };
            let Some(end) = s.find('>') else {
                return Err(self.err(Code::InvalidNamedCapture, s));
            };
            let name = &s[expr_start..end];
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(self.err(Code::InvalidNamedCapture, &s[..=end]));
            }
            let name = name.to_string();
            self.open_group(self.flags, true, Some(&name))?;
            self.pos += end + 1;
            return Ok(());
        }

        let mut flags = self.flags;
        let mut negated = false;
        let mut saw_flag = false;
        let mut consumed = 2;
        for c in s[2..].chars() {
            consumed += c.len_utf8();
            match c {
                'i' => {
                    flags.fold = !negated;
                    saw_flag = true;
                }
                'm' => {
                    flags.multi_line = !negated;
                    saw_flag = true;
                }
                's' => {
                    flags.dot_nl = !negated;
                    saw_flag = true;
                }
                'U' => {
                    flags.non_greedy = !negated;
                    saw_flag = true;
                }
                '-' => {
                    if negated {
                        break;
                    }
                    negated = true;
                    saw_flag = false;
                }
                ':' | ')' => {
                    if negated && !saw_flag {
                        break;
                    }
                    if c == ':' {
                        self.open_group(self.flags, false, None)?;
                    }
                    self.flags = flags;
                    self.pos += consumed;
                    return Ok(());
                }
                _ => break,
            }
        }
        Err(self.err(Code::InvalidPerlOp, &s[..consumed]))
    }

    /// Apply a repetition operator to the last piece. `before` is where the operator starts;
    /// `self.pos` is just after it.
    fn repeat(
        &mut self,
        op: &str,
        count: Option<(u64, u64)>,
        before: usize,
    ) -> Result<(), GoError> {
        let mut lazy = false;
        if self.rest().starts_with('?') {
            self.pos += 1;
            lazy = true;
        }
        if let Some(prev) = self.last_repeat {
            return Err(self.err(Code::InvalidRepeatOp, &self.whole[prev..self.pos]));
        }
        let Some(atom) = self.frame().last else {
            return Err(self.err(Code::MissingRepeatArgument, &self.whole[before..self.pos]));
        };
        let weight = match count {
            None => atom.weight,
            Some((_, 0)) => 1,
            Some((min, max)) => {
                let m = if max == u64::MAX { min } else { max };
                m.max(1).saturating_mul(atom.weight)
            }
        };
        if let Some((min, max)) = count {
            // Go checks counted repetitions with a minimum or a (bounded) maximum of 2 or more.
            let counted = min >= 2 || (max != u64::MAX && max >= 2);
            if counted && weight > MAX_REPEAT {
                return Err(self.err(Code::InvalidRepeatSize, &self.whole[before..self.pos]));
            }
        }
        self.out.insert_str(atom.start, "(?:");
        self.out.push(')');
        self.out.push_str(op);
        if lazy != self.flags.non_greedy {
            self.out.push('?');
        }
        self.frame().last = Some(Atom {
            start: atom.start,
            weight,
        });
        Ok(())
    }

    /// A backslash outside a class.
    fn escape(&mut self) -> Result<(), GoError> {
        let t = self.rest();
        let mut chars = t.chars();
        chars.next();
        let Some(c) = chars.next() else {
            return Err(self.err(Code::TrailingBackslash, ""));
        };
        match c {
            'A' => {
                self.push_atom("\\A", 1);
                self.pos += 2;
                return Ok(());
            }
            'b' => {
                self.push_atom("(?-u:\\b)", 1);
                self.pos += 2;
                return Ok(());
            }
            'B' => {
                self.push_atom("(?-u:\\B)", 1);
                self.pos += 2;
                return Ok(());
            }
            'C' => return Err(self.err(Code::InvalidEscape, &t[..2])),
            'Q' => {
                let body = &t[2..];
                let (lit, used) = match body.find("\\E") {
                    Some(i) => (&body[..i], 2 + i + 2),
                    None => (body, t.len()),
                };
                for ch in lit.chars() {
                    self.push_literal(ch);
                }
                self.pos += used;
                return Ok(());
            }
            'z' => {
                self.push_atom("\\z", 1);
                self.pos += 2;
                return Ok(());
            }
            'p' | 'P' => {
                let (raw, used) = self.unicode_class(t)?;
                self.pos += used;
                self.push_folded(&raw);
                return Ok(());
            }
            _ => {}
        }
        if let Some(raw) = perl_class(c) {
            self.pos += 2;
            self.push_folded(raw);
            return Ok(());
        }
        let (ch, used) = self.parse_escape(t)?;
        self.pos += used;
        self.push_literal(ch);
        Ok(())
    }

    /// `\pN`, `\p{Name}`, `\P{^Name}` at the start of `s`: the property in `regex` syntax and
    /// the bytes read.
    fn unicode_class(&self, s: &str) -> Result<(String, usize), GoError> {
        let mut negated = s.as_bytes().get(1) == Some(&b'P');
        let rest = &s[2..];
        let Some(c) = rest.chars().next() else {
            // `\p` at the very end: Go reads an empty name and rejects it.
            return Err(self.err(Code::InvalidCharRange, s));
        };
        let (seq, mut name) = if c != '{' {
            let seq = &s[..2 + c.len_utf8()];
            (seq, &seq[2..])
        } else {
            let Some(end) = s.find('}') else {
                return Err(self.err(Code::InvalidCharRange, s));
            };
            (&s[..=end], &s[3..end])
        };
        if let Some(n) = name.strip_prefix('^') {
            negated = !negated;
            name = n;
        }
        let known = !name.is_empty()
            && !name.contains(['{', '}', '=', ':'])
            && Regex::new(&format!("\\p{{{name}}}")).is_ok();
        if !known {
            return Err(self.err(Code::InvalidCharRange, seq));
        }
        let raw = if negated {
            format!("\\P{{{name}}}")
        } else {
            format!("\\p{{{name}}}")
        };
        Ok((raw, seq.len()))
    }

    /// Go's `parseEscape` at the start of `s` (which starts with a backslash): the character
    /// and the bytes read.
    fn parse_escape(&self, s: &str) -> Result<(char, usize), GoError> {
        let t = &s[1..];
        let mut it = t.char_indices();
        let Some((_, c)) = it.next() else {
            return Err(self.err(Code::TrailingBackslash, ""));
        };
        let mut used = 1 + c.len_utf8();
        let invalid = |used: usize| self.err(Code::InvalidEscape, &s[..used]);
        match c {
            '1'..='7' | '0' => {
                let next_is_octal = |i: usize| matches!(s.as_bytes().get(i), Some(b'0'..=b'7'));
                if c != '0' && !next_is_octal(used) {
                    return Err(invalid(used));
                }
                let mut r = c as u32 - '0' as u32;
                for _ in 1..3 {
                    if !next_is_octal(used) {
                        break;
                    }
                    r = r * 8 + u32::from(s.as_bytes()[used] - b'0');
                    used += 1;
                }
                Ok((char::from_u32(r).unwrap_or('\0'), used))
            }
            'x' => {
                let Some((_, c1)) = it.next() else {
                    return Err(invalid(used));
                };
                used += c1.len_utf8();
                if c1 == '{' {
                    let mut r: u32 = 0;
                    let mut digits = 0;
                    loop {
                        let Some((_, d)) = it.next() else {
                            return Err(invalid(used));
                        };
                        used += d.len_utf8();
                        if d == '}' {
                            break;
                        }
                        let Some(v) = hex_value(d) else {
                            return Err(invalid(used));
                        };
                        r = r * 16 + v;
                        if r > 0x10FFFF {
                            return Err(invalid(used));
                        }
                        digits += 1;
                    }
                    if digits == 0 {
                        return Err(invalid(used));
                    }
                    return char::from_u32(r)
                        .map(|ch| (ch, used))
                        .ok_or_else(|| invalid(used));
                }
                let x = hex_value(c1);
                let c2 = it.next().map(|(_, c2)| c2);
                if let Some(c2) = c2 {
                    used += c2.len_utf8();
                }
                match (x, c2.and_then(hex_value)) {
                    (Some(x), Some(y)) => char::from_u32(x * 16 + y)
                        .map(|ch| (ch, used))
                        .ok_or_else(|| invalid(used)),
                    _ => Err(invalid(used)),
                }
            }
            'a' => Ok(('\u{7}', used)),
            'f' => Ok(('\u{c}', used)),
            'n' => Ok(('\n', used)),
            'r' => Ok(('\r', used)),
            't' => Ok(('\t', used)),
            'v' => Ok(('\u{b}', used)),
            c if c.is_ascii() && !is_alnum(c) => Ok((c, used)),
            _ => Err(invalid(used)),
        }
    }

    /// A bracketed class starting at `self.pos`.
    fn class(&mut self) -> Result<(), GoError> {
        let s = self.rest();
        let mut i = 1;
        let mut negated = false;
        if s[i..].starts_with('^') {
            negated = true;
            i += 1;
        }
        let mut items: Vec<ClassItem> = Vec::new();
        let mut first = true;
        loop {
            let t = &s[i..];
            if t.starts_with(']') && !first {
                i += 1;
                break;
            }
            first = false;
            if t.len() > 2
                && t.starts_with("[:")
                && let Some(end) = t[2..].find(":]")
            {
                let name = &t[..end + 4];
                if !is_posix_class(name) {
                    return Err(self.err(Code::InvalidCharRange, name));
                }
                items.push(ClassItem::Raw(name.to_string()));
                i += name.len();
                continue;
            }
            if t.starts_with("\\p") || t.starts_with("\\P") {
                let (raw, used) = self.unicode_class(t)?;
                items.push(ClassItem::Raw(raw));
                i += used;
                continue;
            }
            if t.starts_with('\\')
                && let Some(raw) = t[1..].chars().next().and_then(perl_class)
            {
                items.push(ClassItem::Raw(raw.to_string()));
                i += 2;
                continue;
            }
            let range_start = i;
            let (lo, used) = self.class_char(t, s)?;
            i += used;
            let mut hi = lo;
            let t2 = &s[i..];
            if t2.len() >= 2 && t2.starts_with('-') && !t2[1..].starts_with(']') {
                i += 1;
                let (h, used) = self.class_char(&s[i..], s)?;
                i += used;
                hi = h;
                if hi < lo {
                    return Err(self.err(Code::InvalidCharRange, &s[range_start..i]));
                }
            }
            items.push(ClassItem::Range(lo, hi));
        }
        let mut text = String::from("[");
        if negated {
            text.push('^');
        }
        if items.is_empty() {
            // Cannot happen: the loop reads at least one item before a closing bracket.
            return Err(self.err(Code::InvalidCharClass, &s[..i]));
        }
        for item in &items {
            match item {
                ClassItem::Range(lo, hi) if lo == hi => text.push_str(&rx_char(*lo)),
                ClassItem::Range(lo, hi) => {
                    text.push_str(&rx_char(*lo));
                    text.push('-');
                    text.push_str(&rx_char(*hi));
                }
                ClassItem::Raw(raw) if raw.starts_with("[:") => {
                    text.push('[');
                    text.push_str(raw);
                    text.push(']');
                }
                ClassItem::Raw(raw) => text.push_str(raw),
            }
        }
        text.push(']');
        self.pos += i;
        self.push_folded(&text);
        Ok(())
    }

    /// One class character at the start of `t`; `whole_class` is the class's text to the end
    /// of the expression, for the missing-bracket error.
    fn class_char(&self, t: &str, whole_class: &str) -> Result<(char, usize), GoError> {
        let Some(c) = t.chars().next() else {
            return Err(self.err(Code::MissingBracket, whole_class));
        };
        if c == '\\' {
            return self.parse_escape(t);
        }
        Ok((c, c.len_utf8()))
    }
}

/// `\d \D \s \S \w \W` as ASCII classes in `regex` syntax.
fn perl_class(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        's' => "[\\t\\n\\f\\r ]",
        'S' => "[^\\t\\n\\f\\r ]",
        'w' => "[0-9A-Za-z_]",
        'W' => "[^0-9A-Za-z_]",
        _ => return None,
    })
}

fn is_posix_class(name: &str) -> bool {
    const NAMES: [&str; 14] = [
        "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
        "space", "upper", "word", "xdigit",
    ];
    let Some(inner) = name.strip_prefix("[:").and_then(|n| n.strip_suffix(":]")) else {
        return false;
    };
    let inner = inner.strip_prefix('^').unwrap_or(inner);
    NAMES.contains(&inner)
}

/// The upper bound of a counted repetition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Max {
    Of(u64),
    Unbounded,
    TooBig,
}

/// Go's `parseRepeat` at the start of `s` (`{`): `(min, max, bytes)`, `min` `None` when a
/// number is too big; `None` when it is not a repetition (then `{` is a literal).
fn parse_repeat(s: &str) -> Option<(Option<u64>, Max, usize)> {
    let b = s.as_bytes();
    let mut i = 1;
    let (min, n) = parse_int(&b[i..])?;
    i += n;
    let max = match b.get(i)? {
        b',' => {
            i += 1;
            if *b.get(i)? == b'}' {
                Max::Unbounded
            } else {
                let (max, n) = parse_int(&b[i..])?;
                i += n;
                match max {
                    Some(m) => Max::Of(m),
                    None => Max::TooBig,
                }
            }
        }
        _ => match min {
            Some(m) => Max::Of(m),
            None => Max::TooBig,
        },
    };
    if *b.get(i)? != b'}' {
        return None;
    }
    Some((min, max, i + 1))
}

/// Go's `parseInt`: digits without a leading zero; the value (`None` past 10^8) and the length.
fn parse_int(b: &[u8]) -> Option<(Option<u64>, usize)> {
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || (n >= 2 && b[0] == b'0') {
        return None;
    }
    let mut v: u64 = 0;
    for &d in &b[..n] {
        if v >= 100_000_000 {
            return Some((None, n));
        }
        v = v * 10 + u64::from(d - b'0');
    }
    Some((Some(v), n))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod stack_tests {
    #[test]
    fn deep_nesting_compiles_on_a_small_stack() {
        let t = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(|| {
                // The deepest a 10000-byte pattern Go accepts can nest: 999 capturing groups
                // around 2000 non-capturing ones.
                let p = format!(
                    "{}{}a*{}",
                    "(".repeat(999),
                    "(?:".repeat(2000),
                    ")".repeat(2999)
                );
                assert!(p.len() <= 10000);
                super::compile(&p).map(|re| re.is_match("aaa"))
            })
            .expect("thread");
        assert_eq!(t.join().expect("no overflow"), Ok(true));
    }

    #[test]
    fn capture_groups_are_kept() {
        let re = super::compile_captures(r"^(\w+)\.(?P<zone>example)\.(?:org)\.$").unwrap();
        let caps = re.captures("www.example.org.").unwrap();
        assert_eq!(&caps[1], "www");
        assert_eq!(&caps[2], "example");
        assert_eq!(&caps["zone"], "example");
        assert_eq!(re.captures_len(), 3);
    }
}

//! A cursor over one directive's tokens, with Caddy's dispenser semantics, so that setup code
//! reads arguments exactly as CoreDNS plugins do.

use ferrodns_corefile::Token;

use crate::SetupError;

/// Walks the tokens of one directive in one server block (every occurrence, in Corefile order).
///
/// The cursor starts before the first token: call [`Dispenser::next`] to load the directive name,
/// [`Dispenser::next_arg`] for arguments on the same line, [`Dispenser::next_block`] to step
/// through a `{ ... }` sub-block opened on the directive's line.
#[derive(Debug, Clone)]
pub struct Dispenser {
    filename: String,
    tokens: Vec<Token>,
    cursor: isize,
    nesting: usize,
}

impl Dispenser {
    /// A dispenser over `tokens`; `filename` names the Corefile for errors when the cursor is
    /// not on a token.
    pub fn new(filename: impl Into<String>, tokens: Vec<Token>) -> Self {
        Dispenser {
            filename: filename.into(),
            tokens,
            cursor: -1,
            nesting: 0,
        }
    }

    /// Dispense the tokens of a directive text, for tests: `Dispenser::from_text("errors stdout")`.
    pub fn from_text(text: &str) -> Self {
        let mut tokens = Vec::new();
        let file: std::sync::Arc<str> = "Testfile".into();
        for (i, line) in text.lines().enumerate() {
            for w in line.split_whitespace() {
                tokens.push(Token {
                    text: w.to_string(),
                    file: file.clone(),
                    line: i as u32 + 1,
                });
            }
        }
        Dispenser::new("Testfile", tokens)
    }

    fn token(&self, i: isize) -> Option<&Token> {
        usize::try_from(i).ok().and_then(|i| self.tokens.get(i))
    }

    fn has_more(&self) -> bool {
        self.cursor + 1 < self.tokens.len() as isize
    }

    /// Whether token `i + 1` is on the same line as token `i` (counting newlines inside a
    /// multi-line quoted token, and never across files).
    fn same_line_as_next(&self, i: isize) -> Option<bool> {
        let cur = self.token(i)?;
        let next = self.token(i + 1)?;
        let breaks = cur.text.matches('\n').count() as u32;
        Some(cur.file == next.file && cur.line + breaks == next.line)
    }

    /// Load the next token, wherever it is. False at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> bool {
        if self.has_more() {
            self.cursor += 1;
            true
        } else {
            false
        }
    }

    /// [`Dispenser::next`] for a plugin allowed once per server block: loads the directive's
    /// first occurrence, false at the end, and CoreDNS's `this plugin can only be used once per
    /// Server Block` for `name` when there is a second.
    pub fn next_once(&mut self, name: &str) -> Result<bool, SetupError> {
        if !self.next() {
            return Ok(false);
        }
        // The first occurrence starts at the first token; whatever comes after is another.
        if self.cursor > 0 {
            return Err(SetupError::once(name));
        }
        Ok(true)
    }

    /// Load the next token only if it is on the same line as the current one.
    pub fn next_arg(&mut self) -> bool {
        if self.cursor < 0 {
            self.cursor += 1;
            return !self.tokens.is_empty();
        }
        if self.same_line_as_next(self.cursor) == Some(true) {
            self.cursor += 1;
            true
        } else {
            false
        }
    }

    /// Load the next token only if it starts a new line.
    pub fn next_line(&mut self) -> bool {
        if self.cursor < 0 {
            self.cursor += 1;
            return !self.tokens.is_empty();
        }
        if self.same_line_as_next(self.cursor) == Some(false) {
            self.cursor += 1;
            true
        } else {
            false
        }
    }

    /// Step through a `{ ... }` block that opens on the current line. Returns true while the
    /// cursor is on a token inside the block (normally the first token of a line); false when
    /// there is no block, when the block is empty, or at its closing brace.
    pub fn next_block(&mut self) -> bool {
        if self.nesting > 0 {
            self.next();
            if self.val() == "}" {
                self.nesting -= 1;
                return false;
            }
            return true;
        }
        if !self.next_arg() {
            return false;
        }
        if self.val() != "{" {
            self.cursor -= 1;
            return false;
        }
        self.next();
        if self.val() == "}" {
            return false;
        }
        self.nesting += 1;
        true
    }

    /// The current token's text ("" when the cursor is not on a token).
    pub fn val(&self) -> &str {
        self.token(self.cursor)
            .map(|t| t.text.as_str())
            .unwrap_or("")
    }

    /// The current token's line (0 when the cursor is not on a token).
    pub fn line(&self) -> u32 {
        self.token(self.cursor).map(|t| t.line).unwrap_or(0)
    }

    /// The current token's file (the dispenser's file name when not on a token).
    pub fn file(&self) -> &str {
        self.token(self.cursor)
            .map(|t| &*t.file)
            .unwrap_or(&self.filename)
    }

    /// The current token, if any.
    pub fn token_here(&self) -> Option<&Token> {
        self.token(self.cursor)
    }

    /// Fill as many arguments on the line as `n`; `None` if there were fewer.
    pub fn args(&mut self, n: usize) -> Option<Vec<String>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            if !self.next_arg() {
                return None;
            }
            out.push(self.val().to_string());
        }
        Some(out)
    }

    /// All remaining arguments on the line, stopping before a `{`.
    pub fn remaining_args(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while self.next_arg() {
            if self.val() == "{" {
                self.cursor -= 1;
                break;
            }
            out.push(self.val().to_string());
        }
        out
    }

    /// How deep the cursor is inside `{ ... }` blocks opened through [`Dispenser::next_block`].
    pub fn nesting(&self) -> usize {
        self.nesting
    }

    /// `<file>:<line> - Error during parsing: <msg>`.
    pub fn err(&self, msg: impl std::fmt::Display) -> SetupError {
        SetupError::new(format!(
            "{}:{} - Error during parsing: {}",
            self.file(),
            self.line(),
            msg
        ))
    }

    /// The argument-count error CoreDNS plugins return.
    pub fn arg_err(&self) -> SetupError {
        if self.val() == "{" {
            return self.err("Unexpected token '{', expecting argument");
        }
        self.err(format_args!(
            "Wrong argument count or unexpected line ending after '{}'",
            self.val()
        ))
    }

    /// `<file>:<line> - Syntax error: Unexpected token '<val>', expecting '<expected>'`.
    pub fn syntax_err(&self, expected: &str) -> SetupError {
        SetupError::new(format!(
            "{}:{} - Syntax error: Unexpected token '{}', expecting '{}'",
            self.file(),
            self.line(),
            self.val(),
            expected
        ))
    }

    /// `Unexpected EOF` as a parsing error.
    pub fn eof_err(&self) -> SetupError {
        self.err("Unexpected EOF")
    }
}

//! Grouping of tokens into server blocks, with `import`, snippets and
//! environment substitution.
//!
//! The parser walks one flat token sequence with a cursor, exactly like
//! CoreDNS does: `import` replaces its two tokens by the imported ones in
//! place, and "same line" questions are answered by comparing a token with
//! the one right before it *in the current sequence*. Keeping that model (and
//! not, say, recursive descent over imported files) is what makes the odd
//! corner cases behave like CoreDNS.

use std::collections::HashMap;
use std::sync::Arc;

use ferrodns_go::os;
use ferrodns_go::path as filepath;

use crate::env::replace_env_vars;
use crate::error::CorefileError;
use crate::lexer::{RawToken, lex};
use crate::{DirectiveTokens, ParseOptions, ServerBlock, Token};

/// Cap on snippet expansions per parse (CoreDNS: 10000).
pub(crate) const MAX_SNIPPET_EXPANSIONS: usize = 10_000;
/// Cap on file/glob imports per parse (CoreDNS: 100000).
pub(crate) const MAX_FILE_EXPANSIONS: usize = 100_000;
/// Cap on the total number of tokens spliced in by imports. CoreDNS has no
/// such cap and runs out of memory instead; legitimate configurations are
/// orders of magnitude below it.
pub(crate) const MAX_IMPORTED_TOKENS: usize = 1_000_000;
/// Largest file `import` will read (bytes). CoreDNS reads without limit
/// (and hangs on `/dev/zero`).
pub(crate) const MAX_IMPORT_FILE_SIZE: u64 = 64 << 20;

/// A token inside the parser. `origin` is `None` for tokens of the root
/// input and the absolute path for imported tokens; "same file" means equal
/// origins, as in CoreDNS.
#[derive(Debug, Clone)]
struct Tok {
    text: String,
    line: u32,
    origin: Option<Arc<str>>,
}

impl Tok {
    fn from_raw(raw: RawToken, origin: Option<Arc<str>>) -> Tok {
        Tok {
            text: raw.text,
            line: raw.line,
            origin,
        }
    }

    fn newlines(&self) -> u64 {
        self.text.bytes().filter(|b| *b == b'\n').count() as u64
    }
}

/// A token sequence with a movable gap, so that splicing at the cursor is
/// cheap no matter how long the sequence gets.
#[derive(Default)]
struct TokenBuf {
    /// tokens `0..front.len()`
    front: Vec<Tok>,
    /// the remaining tokens, in reverse order
    back: Vec<Tok>,
}

impl TokenBuf {
    fn len(&self) -> usize {
        self.front.len() + self.back.len()
    }

    fn get(&self, i: usize) -> Option<&Tok> {
        if i < self.front.len() {
            self.front.get(i)
        } else {
            let k = i - self.front.len();
            let blen = self.back.len();
            if k < blen {
                self.back.get(blen - 1 - k)
            } else {
                None
            }
        }
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Tok> {
        if i < self.front.len() {
            self.front.get_mut(i)
        } else {
            let k = i - self.front.len();
            let blen = self.back.len();
            if k < blen {
                self.back.get_mut(blen - 1 - k)
            } else {
                None
            }
        }
    }

    /// Moves the gap so that `front.len() == at` (clamped to the length).
    fn move_gap(&mut self, at: usize) {
        while self.front.len() > at {
            match self.front.pop() {
                Some(t) => self.back.push(t),
                None => break,
            }
        }
        while self.front.len() < at {
            match self.back.pop() {
                Some(t) => self.front.push(t),
                None => break,
            }
        }
    }

    /// Replaces the two tokens at `at` and `at + 1` by `insert`.
    fn splice_two(&mut self, at: usize, insert: Vec<Tok>) {
        self.move_gap(at);
        self.back.pop();
        self.back.pop();
        self.back.extend(insert.into_iter().rev());
    }
}

pub(crate) struct Parser<'p, 'o> {
    opts: &'p ParseOptions<'o>,
    filename: Arc<str>,
    tokens: TokenBuf,
    /// index of the current token; may be -1 (before the first) or
    /// `len` (after the last) like CoreDNS's dispenser
    cursor: isize,
    eof: bool,
    snippets: HashMap<String, Vec<Tok>>,
    snippet_expansions: usize,
    file_expansions: usize,
    imported_tokens: usize,
    keys: Vec<Token>,
    directives: Vec<DirectiveTokens>,
    directive_index: HashMap<String, usize>,
}

impl<'p, 'o> Parser<'p, 'o> {
    pub(crate) fn new(filename: &str, input: &[u8], opts: &'p ParseOptions<'o>) -> Self {
        let mut tokens = TokenBuf::default();
        let mut raw: Vec<Tok> = lex(input)
            .into_iter()
            .map(|t| Tok::from_raw(t, None))
            .collect();
        raw.reverse();
        tokens.back = raw;
        Parser {
            opts,
            filename: Arc::from(filename),
            tokens,
            cursor: -1,
            eof: false,
            snippets: HashMap::new(),
            snippet_expansions: 0,
            file_expansions: 0,
            imported_tokens: 0,
            keys: Vec::new(),
            directives: Vec::new(),
            directive_index: HashMap::new(),
        }
    }

    // ---------------------------------------------------------------
    // cursor primitives

    fn len(&self) -> isize {
        isize::try_from(self.tokens.len()).unwrap_or(isize::MAX)
    }

    fn at(&self, i: isize) -> Option<&Tok> {
        usize::try_from(i).ok().and_then(|i| self.tokens.get(i))
    }

    fn current(&self) -> Option<&Tok> {
        self.at(self.cursor)
    }

    fn next(&mut self) -> bool {
        if self.cursor < self.len() - 1 {
            self.cursor += 1;
            true
        } else {
            false
        }
    }

    fn back_up(&mut self) {
        self.cursor -= 1;
    }

    fn val(&self) -> &str {
        self.current().map_or("", |t| t.text.as_str())
    }

    fn line(&self) -> u32 {
        self.current().map_or(0, |t| t.line)
    }

    /// File of the current token, falling back to the root file name.
    fn file(&self) -> Arc<str> {
        match self.current().and_then(|t| t.origin.clone()) {
            Some(f) => f,
            None => self.filename.clone(),
        }
    }

    fn env(&self, s: &str) -> String {
        replace_env_vars(s, self.opts.env)
    }

    /// Is `b` on a later line than `a` (or in another file)?
    fn later_line(a: &Tok, b: &Tok) -> bool {
        a.origin != b.origin || u64::from(a.line) + a.newlines() < u64::from(b.line)
    }

    /// Is the current token the first of its line?
    fn is_new_line(&self) -> bool {
        if self.cursor < 1 {
            return true;
        }
        if self.cursor > self.len() - 1 {
            return false;
        }
        match (self.at(self.cursor - 1), self.current()) {
            (Some(prev), Some(cur)) => Self::later_line(prev, cur),
            _ => false,
        }
    }

    /// Advances only if the next token is on the same line.
    fn next_arg(&mut self) -> bool {
        if self.cursor < 0 {
            self.cursor += 1;
            return true;
        }
        if self.cursor >= self.len() {
            return false;
        }
        let same_line = match (self.current(), self.at(self.cursor + 1)) {
            (Some(cur), Some(nxt)) => {
                cur.origin == nxt.origin
                    && u64::from(cur.line) + cur.newlines() == u64::from(nxt.line)
            }
            _ => false,
        };
        if same_line {
            self.cursor += 1;
        }
        same_line
    }

    // ---------------------------------------------------------------
    // errors

    fn err(&self, message: impl Into<String>) -> CorefileError {
        CorefileError::Parse {
            file: self.file().to_string(),
            line: self.line(),
            message: message.into(),
        }
    }

    fn syntax_err(&self, expected: &str) -> CorefileError {
        CorefileError::Syntax {
            file: self.file().to_string(),
            line: self.line(),
            found: self.val().to_owned(),
            expected: expected.to_owned(),
        }
    }

    fn eof_err(&self) -> CorefileError {
        self.err("Unexpected EOF")
    }

    fn arg_err(&self) -> CorefileError {
        if self.val() == "{" {
            self.err("Unexpected token '{', expecting argument")
        } else {
            self.err(format!(
                "Wrong argument count or unexpected line ending after '{}'",
                self.val()
            ))
        }
    }

    fn public_token(&self, t: &Tok, text: String) -> Token {
        Token {
            text,
            file: t.origin.clone().unwrap_or_else(|| self.filename.clone()),
            line: t.line,
        }
    }

    // ---------------------------------------------------------------
    // grammar

    pub(crate) fn parse_all(mut self) -> Result<Vec<ServerBlock>, CorefileError> {
        let mut blocks = Vec::new();
        while self.next() {
            self.keys.clear();
            self.directives.clear();
            self.directive_index.clear();
            self.begin()?;
            if !self.keys.is_empty() {
                blocks.push(ServerBlock {
                    keys: std::mem::take(&mut self.keys),
                    directives: std::mem::take(&mut self.directives),
                });
            }
        }
        Ok(blocks)
    }

    fn begin(&mut self) -> Result<(), CorefileError> {
        if self.tokens.len() == 0 {
            return Ok(());
        }
        self.addresses()?;
        if self.eof {
            // only keys, no body, at end of input
            return Ok(());
        }
        if let Some(name) = self.snippet_name() {
            if self.snippets.contains_key(&name) {
                return Err(self.err(format!(
                    "redeclaration of previously declared snippet {name}"
                )));
            }
            let body = self.snippet_tokens()?;
            // reject a snippet that imports itself from the start of a line
            for i in 0..body.len().saturating_sub(1) {
                if body[i].text != "import" {
                    continue;
                }
                let line_start = i == 0
                    || body[i - 1].origin != body[i].origin
                    || body[i - 1].line != body[i].line;
                if line_start && self.env(&body[i + 1].text) == name {
                    return Err(self.err(format!(
                        "maximum snippet import depth ({MAX_SNIPPET_EXPANSIONS}) exceeded"
                    )));
                }
            }
            self.snippets.insert(name, body);
            // a snippet definition is not a server block
            self.keys.clear();
            return Ok(());
        }
        self.block_contents()
    }

    fn snippet_name(&self) -> Option<String> {
        match self.keys.as_slice() {
            [only] if only.text.starts_with('(') && only.text.ends_with(')') => {
                let inner = &only.text[1..];
                Some(inner.strip_suffix(')').unwrap_or(inner).to_owned())
            }
            _ => None,
        }
    }

    fn addresses(&mut self) -> Result<(), CorefileError> {
        let mut expecting_another = false;
        loop {
            let tkn = self.env(self.val());

            if tkn == "import" && self.is_new_line() {
                self.do_import()?;
                continue;
            }

            if tkn == "{" {
                if expecting_another {
                    return Err(self.err(format!(
                        "Expected another address but had '{tkn}' - check for extra comma"
                    )));
                }
                break;
            }

            if !tkn.is_empty() {
                let key = match tkn.strip_suffix(',') {
                    Some(stripped) => {
                        expecting_another = true;
                        stripped.to_owned()
                    }
                    None => {
                        expecting_another = false;
                        tkn
                    }
                };
                if let Some(cur) = self.current() {
                    let token = self.public_token(cur, key);
                    self.keys.push(token);
                }
            }

            let has_next = self.next();
            if expecting_another && !has_next {
                return Err(self.eof_err());
            }
            if !has_next {
                self.eof = true;
                break;
            }
            if !expecting_another && self.is_new_line() {
                break;
            }
        }
        Ok(())
    }

    fn block_contents(&mut self) -> Result<(), CorefileError> {
        let braced = self.val() == "{";
        if !braced {
            // a single server block may omit its braces
            self.back_up();
        }
        self.parse_directives()?;
        if braced && self.val() != "}" {
            return Err(self.syntax_err("}"));
        }
        Ok(())
    }

    fn parse_directives(&mut self) -> Result<(), CorefileError> {
        while self.next() {
            if self.val() == "}" {
                break;
            }
            if self.val() == "import" {
                self.do_import()?;
                self.back_up();
                continue;
            }
            self.directive()?;
        }
        Ok(())
    }

    fn push_directive_token(&mut self, name: &str, token: Token) {
        match self.directive_index.get(name) {
            Some(&i) => {
                if let Some(d) = self.directives.get_mut(i) {
                    d.tokens.push(token);
                }
            }
            None => {
                self.directive_index
                    .insert(name.to_owned(), self.directives.len());
                self.directives.push(DirectiveTokens {
                    name: name.to_owned(),
                    tokens: vec![token],
                });
            }
        }
    }

    fn directive(&mut self) -> Result<(), CorefileError> {
        let name = self.env(self.val());
        if !(self.opts.is_directive)(&name) {
            return Err(self.err(format!("Unknown directive '{name}'")));
        }
        // The name token is recorded as written (CoreDNS does not substitute
        // environment references in it).
        if let Some(cur) = self.current() {
            let token = self.public_token(cur, cur.text.clone());
            self.push_directive_token(&name, token);
        }

        let mut nesting: u64 = 0;
        while self.next() {
            if self.val() == "{" {
                nesting += 1;
            } else if self.is_new_line() && nesting == 0 {
                self.back_up();
                break;
            } else if self.val() == "}" && nesting > 0 {
                nesting -= 1;
            } else if self.val() == "}" && nesting == 0 {
                return Err(self.err("Unexpected '}' because no matching opening brace"));
            } else if self.val() == "import" && self.is_new_line() {
                self.do_import()?;
                self.back_up();
                continue;
            }
            let substituted = self.env(self.val());
            let cursor = self.cursor;
            let token = match usize::try_from(cursor)
                .ok()
                .and_then(|i| self.tokens.get_mut(i))
            {
                Some(t) => {
                    t.text = substituted;
                    t.clone()
                }
                None => continue,
            };
            let token = self.public_token(&token, token.text.clone());
            self.push_directive_token(&name, token);
        }
        if nesting > 0 {
            return Err(self.eof_err());
        }
        Ok(())
    }

    fn snippet_tokens(&mut self) -> Result<Vec<Tok>, CorefileError> {
        if self.val() != "{" {
            return Err(self.syntax_err("{"));
        }
        let mut depth: u64 = 1;
        let mut body = Vec::new();
        while self.next() {
            if self.val() == "}" {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            if self.val() == "{" {
                depth += 1;
            }
            if let Some(t) = self.current() {
                body.push(t.clone());
            }
        }
        if depth != 0 {
            return Err(self.syntax_err("}"));
        }
        Ok(body)
    }

    // ---------------------------------------------------------------
    // import

    /// Replaces `import ARG` (current token is `import`) by the snippet or
    /// the tokens of the matching files; afterwards the cursor sits on the
    /// first spliced-in token.
    fn do_import(&mut self) -> Result<(), CorefileError> {
        if !self.next_arg() {
            return Err(self.arg_err());
        }
        let pattern = self.env(self.val());
        if pattern.is_empty() {
            return Err(self.err("Import requires a non-empty filepath"));
        }
        if self.next_arg() {
            return Err(self.err("Import takes only one argument (glob pattern or file)"));
        }

        let imported = if let Some(snippet) = self.snippets.get(&pattern) {
            if self.snippet_expansions >= MAX_SNIPPET_EXPANSIONS {
                return Err(self.err(format!(
                    "maximum snippet import depth ({MAX_SNIPPET_EXPANSIONS}) exceeded"
                )));
            }
            let snippet = snippet.clone();
            self.snippet_expansions += 1;
            snippet
        } else {
            if self.file_expansions >= MAX_FILE_EXPANSIONS {
                // CoreDNS prints the snippet limit here, too.
                return Err(self.err(format!(
                    "maximum file import depth ({MAX_SNIPPET_EXPANSIONS}) exceeded"
                )));
            }
            self.file_expansions += 1;
            self.import_files(&pattern)?
        };

        self.imported_tokens = self.imported_tokens.saturating_add(imported.len());
        if self.imported_tokens > MAX_IMPORTED_TOKENS {
            return Err(self.err(format!(
                "too many imported tokens (more than {MAX_IMPORTED_TOKENS})"
            )));
        }

        // the import keyword is at cursor - 1, its argument at cursor
        let at = usize::try_from(self.cursor - 1).unwrap_or(0);
        self.tokens.splice_two(at, imported);
        self.back_up();
        Ok(())
    }

    fn import_files(&mut self, pattern: &str) -> Result<Vec<Tok>, CorefileError> {
        let here = self.file();
        let glob_pattern: Vec<u8> = if filepath::is_abs(pattern.as_bytes()) {
            pattern.as_bytes().to_vec()
        } else {
            let abs_file = filepath::abs(here.as_bytes()).map_err(|e| {
                self.err(format!(
                    "Failed to get absolute path of file: {}: {}",
                    self.filename,
                    os::io_text(&e)
                ))
            })?;
            filepath::join(&filepath::dir(&abs_file), pattern.as_bytes())
        };

        let count = |b: u8| glob_pattern.iter().filter(|c| **c == b).count();
        if count(b'*') > 1 || count(b'?') > 1 || (count(b'[') > 0 && count(b']') > 0) {
            return Err(self.err(format!(
                "Glob pattern may only contain one wildcard (*), but has others: {}",
                filepath::display(&glob_pattern)
            )));
        }

        let matches = filepath::glob(&glob_pattern)
            .map_err(|e| self.err(format!("Failed to use import pattern {pattern}: {e}")))?;
        if matches.is_empty() {
            if glob_pattern
                .iter()
                .any(|b| matches!(b, b'*' | b'?' | b'[' | b']'))
            {
                tracing::warn!(target: "corefile", "No files matching import glob pattern: {pattern}");
            } else {
                return Err(self.err(format!("File to import not found: {pattern}")));
            }
        }

        let mut imported = Vec::new();
        for path in matches {
            imported.extend(self.import_one_file(&path)?);
            if self.imported_tokens.saturating_add(imported.len()) > MAX_IMPORTED_TOKENS {
                return Err(self.err(format!(
                    "too many imported tokens (more than {MAX_IMPORTED_TOKENS})"
                )));
            }
        }
        Ok(imported)
    }

    fn import_one_file(&self, path: &[u8]) -> Result<Vec<Tok>, CorefileError> {
        use std::io::Read;

        let shown = filepath::display(path);
        let file = std::fs::File::open(filepath::to_path(path)).map_err(|e| {
            self.err(format!(
                "Could not import {shown}: {}",
                filepath::path_error("open", path, &e)
            ))
        })?;
        let meta = file.metadata().map_err(|e| {
            self.err(format!(
                "Could not import {shown}: {}",
                filepath::path_error("stat", path, &e)
            ))
        })?;
        if meta.is_dir() {
            return Err(self.err(format!("Could not import {shown}: is a directory")));
        }
        let mut contents = Vec::new();
        file.take(MAX_IMPORT_FILE_SIZE + 1)
            .read_to_end(&mut contents)
            .map_err(|e| {
                self.err(format!(
                    "Could not read tokens while importing {shown}: {}",
                    filepath::path_error("read", path, &e)
                ))
            })?;
        if contents.len() as u64 > MAX_IMPORT_FILE_SIZE {
            return Err(self.err(format!(
                "Could not read tokens while importing {shown}: file is larger than {MAX_IMPORT_FILE_SIZE} bytes"
            )));
        }
        let abs = filepath::abs(path).map_err(|e| {
            self.err(format!(
                "Failed to get absolute path of file: {}: {}",
                self.filename,
                os::io_text(&e)
            ))
        })?;
        let origin: Arc<str> = Arc::from(filepath::display(&abs));
        Ok(lex(&contents)
            .into_iter()
            .map(|t| Tok::from_raw(t, Some(origin.clone())))
            .collect())
    }
}

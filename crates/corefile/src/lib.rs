//! Corefile parser for ferrodns, accepting exactly what CoreDNS v1.14.7 accepts.
//!
//! # Grammar in brief
//!
//! A Corefile is a sequence of **server blocks**:
//!
//! ```text
//! KEY [KEY | KEY, ...] [{
//!     DIRECTIVE [ARGS...] [{
//!         ...nested lines...
//!     }]
//!     ...
//! }]
//! ```
//!
//! * **Lexing** ([`tokenize`]): tokens are separated by white space; `#`
//!   starts a comment (even inside a word: `foo#bar` is `foo`); a token that
//!   starts with `"` is quoted, may span lines, and only knows the `\"`
//!   escape; `\r` is dropped; a leading byte order mark is ignored; braces are
//!   only special as stand-alone tokens.
//! * **Keys** are the tokens of the block's first line; a key ending in `,`
//!   continues the key list (possibly on the next line). The `{` may be on the
//!   key line or the next one; without it the block is "braceless" and runs
//!   to the end of the input.
//! * **Directives** start at the beginning of a line and end at the end of it,
//!   unless a `{` opens a nested block, which then runs to its matching `}`.
//!   A `}` without an open brace on a directive line is an error (so
//!   `. { whoami }` on one line is rejected, as in CoreDNS). Directive names
//!   must be known ([`ParseOptions::is_directive`]). The tokens of all
//!   occurrences of one directive in a block are concatenated
//!   ([`DirectiveTokens`]).
//! * **Environment references** `{%NAME%}` and `{$NAME}` are substituted in
//!   keys, directive arguments and `import` arguments, per token, after
//!   lexing ([`replace_env_vars`]).
//! * **`import PATTERN`** at the start of a line splices in a snippet or the
//!   tokens of the files matching a path/glob (relative to the importing
//!   file's directory). **Snippets** are blocks whose single key is `(name)`.
//!
//! Server block keys (`[SCHEME://]ZONE[:PORT]`) are checked and normalised
//! separately by [`inspect_keys`], as CoreDNS does at startup.
//!
//! Every error's `Display` is the exact text CoreDNS prints, see
//! [`CorefileError`].
//!
//! # Example
//!
//! ```
//! use ferrodns_corefile::{inspect_keys, parse, ParseOptions};
//!
//! let is_directive = |name: &str| matches!(name, "whoami" | "log" | "forward");
//! let env = |_: &str| None;
//! let opts = ParseOptions { is_directive: &is_directive, env: &env };
//! let blocks = parse("Corefile", b"example.org:1053 {\n  whoami\n  log\n}\n", &opts).unwrap();
//! assert_eq!(blocks[0].keys[0].text, "example.org:1053");
//! assert_eq!(blocks[0].directives[0].name, "whoami");
//! let zones = inspect_keys(&blocks[0], "53").unwrap();
//! assert_eq!(zones[0].to_string(), "dns://example.org.:1053");
//! ```

#![warn(missing_docs)]

mod env;
mod error;
mod keys;
mod lexer;
mod parser;

use std::fmt;
use std::sync::Arc;

pub use env::replace_env_vars;
pub use error::CorefileError;
pub use keys::{
    Transport, ZoneAddr, fqdn, inspect_keys, is_domain_name, is_fqdn, normalize_exact,
    normalize_name, split_host_port,
};

/// One lexical token with its position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Token {
    /// The token text (quotes removed, `\"` unescaped; after environment
    /// substitution where CoreDNS applies it).
    pub text: String,
    /// The file name given to [`parse`] for tokens of the root input, or the
    /// absolute path of the imported file the token came from.
    pub file: Arc<str>,
    /// 1-based line on which the token starts.
    pub line: u32,
}

/// One server block: its keys and its directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBlock {
    /// Keys after environment substitution, with a trailing comma stripped.
    /// Tokens that are empty after substitution (e.g. `""`) are skipped.
    pub keys: Vec<Token>,
    /// Directives grouped by name, in order of each name's first appearance.
    pub directives: Vec<DirectiveTokens>,
}

impl ServerBlock {
    /// The tokens of directive `name`, if it appears in this block.
    pub fn directive(&self, name: &str) -> Option<&DirectiveTokens> {
        self.directives.iter().find(|d| d.name == name)
    }
}

/// All tokens of every occurrence of one directive in one server block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectiveTokens {
    /// Directive name (after environment substitution).
    pub name: String,
    /// The tokens of each occurrence concatenated in order. Each occurrence
    /// starts with the directive-name token (text exactly as written; CoreDNS
    /// does not substitute environment references in that token), followed
    /// by its arguments and nested-block tokens including the braces.
    pub tokens: Vec<Token>,
}

/// Parser configuration.
pub struct ParseOptions<'a> {
    /// Is this a known directive? Unknown names fail with
    /// `Unknown directive '<name>'`.
    pub is_directive: &'a dyn Fn(&str) -> bool,
    /// Environment lookup for `{$NAME}` / `{%NAME%}`; `None` substitutes "".
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> ParseOptions<'a> {
    /// Options with the given directive check and the process environment.
    pub fn process_env(is_directive: &'a dyn Fn(&str) -> bool) -> ParseOptions<'a> {
        ParseOptions {
            is_directive,
            env: &env::process_env_lookup,
        }
    }
}

impl fmt::Debug for ParseOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParseOptions").finish_non_exhaustive()
    }
}

/// Parses a Corefile into server blocks.
///
/// `filename` is used in error messages and token positions, and its
/// directory is the base for relative `import` paths (the current directory
/// when it has none, e.g. `"Corefile"` or `"stdin"`). Imported tokens carry
/// the absolute path of their file.
///
/// Blocks without keys and snippet definitions are not returned; an input
/// without server blocks yields an empty vector (CoreDNS then falls back to
/// its default configuration; that is the caller's job).
///
/// A glob `import` that matches nothing logs the warning
/// `No files matching import glob pattern: <pattern>` through `tracing` (CoreDNS logs it as
/// `[WARNING] ...` on stdout, which the server's log format reproduces).
pub fn parse(
    filename: &str,
    input: &[u8],
    opts: &ParseOptions<'_>,
) -> Result<Vec<ServerBlock>, CorefileError> {
    parser::Parser::new(filename, input, opts).parse_all()
}

/// Splits `input` into tokens without parsing (no imports, no environment
/// substitution). Every token gets `filename` as its file.
pub fn tokenize(filename: &str, input: &[u8]) -> Vec<Token> {
    let file: Arc<str> = Arc::from(filename);
    lexer::lex(input)
        .into_iter()
        .map(|t| Token {
            text: t.text,
            file: file.clone(),
            line: t.line,
        })
        .collect()
}

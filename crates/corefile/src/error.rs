//! Error type. `Display` renders exactly the text CoreDNS v1.14.7 prints.

/// Everything that can go wrong while parsing a Corefile or inspecting the
/// keys of its server blocks.
///
/// The `Display` output is byte-for-byte what CoreDNS prints before exiting
/// (without the process name or log prefix), e.g.
/// `Corefile:3 - Error during parsing: Unknown directive 'foo'`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorefileError {
    /// A parse-time error: `<file>:<line> - Error during parsing: <message>`.
    ///
    /// `line` is `0` when the error refers to a position past the last token
    /// (for example after an `import` that produced nothing at end of input).
    #[error("{file}:{line} - Error during parsing: {message}")]
    Parse {
        /// The file name as given to [`crate::parse`], or the absolute path
        /// of an imported file.
        file: String,
        /// 1-based line of the offending token.
        line: u32,
        /// The message after `Error during parsing: `.
        message: String,
    },
    /// A syntax error:
    /// `<file>:<line> - Syntax error: Unexpected token '<found>', expecting '<expected>'`.
    #[error("{file}:{line} - Syntax error: Unexpected token '{found}', expecting '{expected}'")]
    Syntax {
        /// File of the offending token (see [`CorefileError::Parse::file`]).
        file: String,
        /// Line of the offending token.
        line: u32,
        /// Text of the token that was found.
        found: String,
        /// What was expected instead (`{` or `}`).
        expected: String,
    },
    /// A server-block key that CoreDNS rejects at startup:
    /// `error inspecting server blocks: <message>`.
    #[error("error inspecting server blocks: {message}")]
    Key {
        /// File holding the key (not part of the message).
        file: String,
        /// Line of the key (not part of the message).
        line: u32,
        /// The key text as written (after env substitution).
        key: String,
        /// CoreDNS's message, e.g. `zone is not a valid domain name: a..b`.
        message: String,
    },
}

impl CorefileError {
    /// The file the error points at.
    pub fn file(&self) -> Option<&str> {
        match self {
            CorefileError::Parse { file, .. }
            | CorefileError::Syntax { file, .. }
            | CorefileError::Key { file, .. } => Some(file),
        }
    }

    /// The line the error points at (`0` means "after the last token").
    pub fn line(&self) -> Option<u32> {
        match self {
            CorefileError::Parse { line, .. }
            | CorefileError::Syntax { line, .. }
            | CorefileError::Key { line, .. } => Some(*line),
        }
    }

    /// The bare message without the `file:line - ...` decoration.
    pub fn message(&self) -> String {
        match self {
            CorefileError::Parse { message, .. } | CorefileError::Key { message, .. } => {
                message.clone()
            }
            CorefileError::Syntax {
                found, expected, ..
            } => format!("Unexpected token '{found}', expecting '{expected}'"),
        }
    }
}

//! # The Go behaviour ferrodns reproduces
//!
//! ferrodns stands in for Go programs (CoreDNS, node-cache), so wherever they let Go's standard
//! library decide what is accepted or how something reads, ferrodns must decide the same way:
//! which patterns compile, how a template runs, how flags and durations parse, what an error
//! says. Each module is named after the Go package it mimics and holds only that behaviour;
//! nothing here knows about DNS or about the rest of ferrodns.
//!
//! - [`regexp`] — Go regular expressions (RE2 as Go reads it) on the `regex` crate;
//! - [`template`] — the part of `text/template` CoreDNS's `template` plugin uses;
//! - [`flag`] — command lines as Go's `flag` package parses them;
//! - [`path`] — `path/filepath` on Unix (`Clean`, `Abs`, `Glob`) for `import`;
//! - [`strconv`] — `Quote` (`%q`), `ParseUint` and `Atoi`;
//! - [`net`] — `SplitHostPort` and `JoinHostPort`;
//! - [`time`] — `ParseDuration` and `Duration.String`, negative durations included;
//! - [`os`] — the texts of failed file operations;
//! - [`fmt`] — `%q` of a string list.

#![warn(missing_docs)]

pub mod flag;
pub mod fmt;
pub mod http;
pub mod net;
pub mod os;
pub mod path;
pub mod regexp;
pub mod strconv;
pub mod template;
pub mod time;
pub mod url;

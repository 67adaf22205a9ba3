//! Go's `os` (and `syscall`) error texts: what Go prints for a failed file operation
//! (`open FILE: no such file or directory`).
//!
//! An OS error reads as Go's `syscall.Errno` does: the message with its first letter lowercased
//! (`remote I/O error`, not `remote i/o error`), and an error without an OS code named by the
//! errno Go would have got (`invalid argument` for a path with a NUL byte).

use std::io;

/// An I/O error as Go prints a `syscall.Errno`: the OS message with its first letter
/// lowercased, without Rust's `(os error N)`; an error without an OS code is named by its kind
/// (`invalid argument`, `no such file or directory`, `permission denied`) when it has one of
/// those, else kept as it is.
pub fn io_text(e: &io::Error) -> String {
    if e.raw_os_error().is_none() {
        return match e.kind() {
            io::ErrorKind::InvalidInput => "invalid argument".to_owned(),
            io::ErrorKind::NotFound => "no such file or directory".to_owned(),
            io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => e.to_string(),
        };
    }
    let full = e.to_string();
    let text = match full.rfind(" (os error ") {
        Some(i) => &full[..i],
        None => full.as_str(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A failed file operation as Go's `*PathError` prints it (`open FILE: no such file or
/// directory`), the error read by [`io_text`].
pub fn io_error(op: &str, path: impl std::fmt::Display, e: &io::Error) -> String {
    format!("{op} {path}: {}", io_text(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings() {
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(io_text(&e), "no such file or directory");
        assert_eq!(
            io_error("open", "/x", &e),
            "open /x: no such file or directory"
        );
        let e = io::Error::new(io::ErrorKind::InvalidInput, "nul byte");
        // Go's open of such a path fails with EINVAL.
        assert_eq!(io_text(&e), "invalid argument");
        // Go's errno table keeps the capitals inside a message.
        let e = io::Error::from_raw_os_error(121);
        assert_eq!(io_text(&e), "remote I/O error");
    }
}

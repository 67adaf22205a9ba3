//! Go's `os` (and `syscall`) error texts: what Go prints for a failed file operation
//! (`open FILE: no such file or directory`).
//!
//! Two readings of an I/O error are in use, and they differ only on rare messages:
//! [`errno_text`] (used by `import` in Corefiles) lowercases the first letter of the OS message,
//! as Go's own messages read (`remote I/O error`), and names the kind of an error that carries
//! no OS code as Go's errno would; [`io_text`] (used by plugins and the binaries) lowercases the
//! whole OS message and keeps any other error's text as it is.

use std::io;

/// An I/O error as Go prints a `syscall.Errno`: the OS message with its first letter
/// lowercased, without Rust's `(os error N)`; an error without an OS code is named by its kind
/// (`invalid argument`, `no such file or directory`, `permission denied`) when it has one of
/// those, else kept as it is.
pub fn errno_text(e: &io::Error) -> String {
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

/// An I/O error as Go prints it (`no such file or directory`): the OS message, lowercased and
/// without Rust's `(os error N)`; other errors' text unchanged.
pub fn io_text(e: &io::Error) -> String {
    let s = e.to_string();
    match s.split_once(" (os error") {
        Some((a, _)) => a.to_lowercase(),
        None => s,
    }
}

/// A failed file operation as Go's `*PathError` prints it (`open FILE: no such file or
/// directory`), the error read by [`io_text`].
pub fn io_error(op: &str, path: &str, e: &io::Error) -> String {
    format!("{op} {path}: {}", io_text(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings() {
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(errno_text(&e), "no such file or directory");
        assert_eq!(io_text(&e), "no such file or directory");
        assert_eq!(
            io_error("open", "/x", &e),
            "open /x: no such file or directory"
        );
        let e = io::Error::new(io::ErrorKind::InvalidInput, "nul byte");
        assert_eq!(errno_text(&e), "invalid argument");
        assert_eq!(io_text(&e), "nul byte");
    }
}

//! The search list of a resolv.conf file, read as miekg/dns's `ClientConfigFromFile` reads it
//! for CoreDNS: `search` replaces the list with its arguments, `domain` with its one argument
//! (or nothing), the last such line wins, nothing else matters. There are no comments: a `#`
//! after `search` is a domain like any other word.

use std::io::Read;

/// The longest line the Go scanner reads; reading stops, without an error, at a longer one.
const MAX_LINE: usize = 64 * 1024;

/// Why a resolv.conf could not be read.
#[derive(Debug)]
pub struct ReadError(pub String);

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReadError {}

/// The search domains of the file at `path`, as written (not yet normalised). Only opening the
/// file can fail: a read error (a directory) ends the reading quietly, as the Go scanner's
/// loop does.
pub fn search_from_file(path: &str) -> Result<Vec<String>, ReadError> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| ReadError(ferrodns_go::os::io_error("open", path, &e)))?;
    let mut data = Vec::new();
    let _ = file.read_to_end(&mut data);
    Ok(search_from_bytes(&data))
}

/// The search domains of resolv.conf content.
pub fn search_from_bytes(data: &[u8]) -> Vec<String> {
    let mut search = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        if line.len() >= MAX_LINE {
            break;
        }
        rest = next;
        let text = String::from_utf8_lossy(line);
        let mut fields = text.split_whitespace();
        match fields.next() {
            Some("search") => search = fields.map(str::to_string).collect(),
            Some("domain") => search = fields.next().map(str::to_string).into_iter().collect(),
            _ => {}
        }
    }
    search
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_search_or_domain_line_wins() {
        let conf = b"nameserver 10.0.0.1\nsearch a.example b.example\r\noptions ndots:5\n";
        assert_eq!(search_from_bytes(conf), ["a.example", "b.example"]);
        let conf = b"search a.example\ndomain d.example extra\n";
        assert_eq!(search_from_bytes(conf), ["d.example"]);
        let conf = b"search a.example\ndomain\n";
        assert!(search_from_bytes(conf).is_empty());
        assert!(search_from_bytes(b"search\n").is_empty());
        // No comment syntax: the words after `#` are domains too.
        assert_eq!(search_from_bytes(b"search a # note"), ["a", "#", "note"]);
        assert!(search_from_bytes(b"# search a\n").is_empty());
    }

    #[test]
    fn an_overlong_line_ends_the_reading() {
        let mut conf = b"search a.example\n".to_vec();
        conf.extend(std::iter::repeat_n(b'x', MAX_LINE));
        conf.extend_from_slice(b"\nsearch b.example\n");
        assert_eq!(search_from_bytes(&conf), ["a.example"]);
    }
}

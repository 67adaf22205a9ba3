//! Go's `net`: `SplitHostPort` and `JoinHostPort`, with Go's error texts (`address x: missing port in address`).

/// Why an address did not split (Go's `*net.AddrError`). Prints as Go does,
/// `address ADDR: REASON`, or only the reason for an empty address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrError {
    /// Go's reason (`missing port in address`, `too many colons in address`, ...).
    pub reason: &'static str,
    /// The address as given.
    pub addr: String,
}

impl std::error::Error for AddrError {}

impl std::fmt::Display for AddrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.addr.is_empty() {
            f.write_str(self.reason)
        } else {
            write!(f, "address {}: {}", self.addr, self.reason)
        }
    }
}

/// Go's `net.JoinHostPort`: `host:port`, with the host in brackets when it has a colon (IPv6).
pub fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Go's `net.SplitHostPort`: `host:port`, `[host]:port` or `[host%zone]:port` into host and
/// port (either may be empty). The port is not checked (Go only finds a bad one when it
/// dials or listens).
pub fn split_host_port(addr: &str) -> Result<(&str, &str), AddrError> {
    let fail = |reason| {
        Err(AddrError {
            reason,
            addr: addr.to_string(),
        })
    };
    let Some(colon) = addr.rfind(':') else {
        return fail("missing port in address");
    };
    let (host, j, k) = if addr.starts_with('[') {
        let Some(end) = addr.find(']') else {
            return fail("missing ']' in address");
        };
        if end + 1 != colon {
            return if end + 1 < addr.len() && addr.as_bytes()[end + 1] == b':' {
                fail("too many colons in address")
            } else {
                fail("missing port in address")
            };
        }
        (&addr[1..end], 1, end + 1)
    } else {
        let host = &addr[..colon];
        if host.contains(':') {
            return fail("too many colons in address");
        }
        (host, 0, 0)
    };
    if addr[j..].contains('[') {
        return fail("unexpected '[' in address");
    }
    if addr[k..].contains(']') {
        return fail("unexpected ']' in address");
    }
    Ok((host, &addr[colon + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_brackets_ipv6_hosts() {
        assert_eq!(join_host_port("127.0.0.1", "53"), "127.0.0.1:53");
        assert_eq!(join_host_port("::1", "53"), "[::1]:53");
        assert_eq!(join_host_port("", "53"), ":53");
    }

    fn reason(addr: &str) -> Result<(&str, &str), &'static str> {
        split_host_port(addr).map_err(|e| e.reason)
    }

    #[test]
    fn splits_as_go() {
        assert_eq!(reason("1.2.3.4:53"), Ok(("1.2.3.4", "53")));
        assert_eq!(reason("[::1]:53"), Ok(("::1", "53")));
        assert_eq!(reason("[fe80::1%eth0]:53"), Ok(("fe80::1%eth0", "53")));
        assert_eq!(reason(":53"), Ok(("", "53")));
        assert_eq!(reason("host:"), Ok(("host", "")));
        assert_eq!(reason("[::1]"), Err("missing port in address"));
        assert_eq!(reason("[::1]x:53"), Err("missing port in address"));
        assert_eq!(reason("[::1]::53"), Err("too many colons in address"));
        assert_eq!(reason("::1:53"), Err("too many colons in address"));
        assert_eq!(reason("[::1:53"), Err("missing ']' in address"));
        assert_eq!(reason("a]:53"), Err("unexpected ']' in address"));
        assert_eq!(reason("a[:53"), Err("unexpected '[' in address"));
        assert_eq!(reason("[::1]:5]3"), Err("unexpected ']' in address"));
        assert_eq!(
            split_host_port("x").unwrap_err().to_string(),
            "address x: missing port in address"
        );
        assert_eq!(
            split_host_port("").unwrap_err().to_string(),
            "missing port in address"
        );
    }
}

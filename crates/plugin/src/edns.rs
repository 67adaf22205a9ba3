//! EDNS options the server echoes back to clients.
//!
//! When a reply has no OPT record of its own, the server gives it the client's, keeping only the
//! options it "supports": CoreDNS's fixed list (NSID, EXPIRE, COOKIE, TCP-KEEPALIVE, PADDING)
//! plus any a plugin registers, as CoreDNS's `rewrite` does for the options it sets. The set is
//! process-wide, as in CoreDNS.

use std::collections::BTreeSet;
use std::sync::RwLock;

/// Options CoreDNS echoes without any plugin asking.
pub const ALWAYS_SUPPORTED: [u16; 5] = [3, 9, 10, 11, 12];

static REGISTERED: RwLock<BTreeSet<u16>> = RwLock::new(BTreeSet::new());

/// Echo option `code` from now on.
pub fn support_option(code: u16) {
    let mut set = match REGISTERED.write() {
        Ok(s) => s,
        Err(p) => p.into_inner(),
    };
    set.insert(code);
}

/// Whether option `code` is echoed.
pub fn is_supported(code: u16) -> bool {
    if ALWAYS_SUPPORTED.contains(&code) {
        return true;
    }
    match REGISTERED.read() {
        Ok(s) => s.contains(&code),
        Err(p) => p.into_inner().contains(&code),
    }
}

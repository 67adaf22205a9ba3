//! IDs and times shared by the exporters.

use std::time::{SystemTime, UNIX_EPOCH};

/// A non-zero random 64-bit ID.
pub fn new_id() -> u64 {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

/// Nanoseconds since the epoch now.
pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

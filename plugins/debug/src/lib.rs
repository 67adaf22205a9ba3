//! # debug
//!
//! CoreDNS's *debug* directive: the listeners of a block that uses it stop recovering from
//! panics in the plugin chain (a panic then takes the process down with its stack trace), and,
//! process-wide, `[DEBUG]` log lines are printed while the loaded Corefile has a `debug` block.
//!
//! The directive adds no handler. It sets the block's `debug` flag; the server reads that flag
//! when it groups blocks into listeners (panic recovery) and when a Corefile is loaded (the
//! `[DEBUG]` switch, turned off again by a reload to a Corefile without `debug`).

mod setup;

use ferrodns_plugin::Descriptor;

/// The directive name.
pub const NAME: &str = "debug";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// The prefix of each line of a message dump (CoreDNS's `debug.Hexdump`), so the bytes can be
/// picked out of a log and read back with `text2pcap -i 17 -u 53,53`.
pub const HEXDUMP_PREFIX: &str = "debug: ";

/// Format `data` as CoreDNS's debug hex dump: lines of 16 bytes, each starting with
/// [`HEXDUMP_PREFIX`] and the 6-digit hex offset, then a last line with the length.
pub fn hexdump(data: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(data.len() * 3 + data.len() / 16 * 14 + 16);
    for (i, b) in data.iter().enumerate() {
        if i % 16 == 0 {
            if i > 0 {
                out.push('\n');
            }
            let _ = write!(out, "{HEXDUMP_PREFIX}{i:06x}");
        }
        let _ = write!(out, " {b:02x}");
    }
    if !data.is_empty() {
        out.push('\n');
    }
    let _ = write!(out, "{HEXDUMP_PREFIX}{:06x}", data.len());
    out
}

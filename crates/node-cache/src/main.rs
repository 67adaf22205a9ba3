//! `node-cache` (being written).

fn main() {}

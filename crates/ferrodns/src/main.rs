//! `ferrodns`: serve DNS from a CoreDNS Corefile, with CoreDNS's command line.

use std::process::ExitCode;

/// jemalloc, with heap profiling compiled in but inactive until a `pprof` listener starts
/// (plugins/pprof/README.md).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    ferrodns::app::main(ferrodns::registry())
}

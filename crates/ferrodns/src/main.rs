//! `ferrodns`: serve DNS from a CoreDNS Corefile, with CoreDNS's command line.

use std::process::ExitCode;

use ferrodns::app::{self, Hooks};
use ferrodns::cli;
use ferrodns_server::config;
use ferrodns_server::logging;

/// jemalloc, with heap profiling compiled in but inactive until a `pprof` listener starts
/// (plugins/pprof/README.md).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let program = args
        .first()
        .cloned()
        .unwrap_or_else(|| "ferrodns".to_string());
    let flags = match cli::parse(args.get(1..).unwrap_or(&[])) {
        Ok(f) => f,
        Err(e) => return app::flag_exit(e, &cli::usage(&program)),
    };
    let registry = ferrodns::registry();
    if let Some(code) = app::early_exit(&flags, &registry) {
        return code;
    }
    logging::init(false);
    let src = match app::source(&flags) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    if flags.validate {
        let errors = config::validate(&src, &registry);
        if errors.is_empty() {
            println!("{}: valid", src.filename);
            return ExitCode::SUCCESS;
        }
        for e in errors {
            eprintln!("{e}");
        }
        return ExitCode::FAILURE;
    }

    app::block_on(app::serve(
        src,
        flags,
        registry,
        ferrodns_plugin::Metrics::new(),
        Hooks::default(),
    ))
}

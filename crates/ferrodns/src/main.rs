//! `ferrodns`: serve DNS from a CoreDNS Corefile, with CoreDNS's command line.

use std::process::ExitCode;

use ferrodns::app::{self, Hooks};
use ferrodns::cli;
use ferrodns_server::config;
use ferrodns_server::logging;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let program = args
        .first()
        .cloned()
        .unwrap_or_else(|| "ferrodns".to_string());
    let flags = match cli::parse(args.get(1..).unwrap_or(&[])) {
        Ok(f) => f,
        Err(cli::FlagError::Help) => {
            eprint!("{}", cli::usage(&program));
            return ExitCode::SUCCESS;
        }
        Err(cli::FlagError::Bad(msg)) => {
            eprintln!("{msg}");
            eprint!("{}", cli::usage(&program));
            return ExitCode::from(2);
        }
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

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(ferrodns_server::run::workers())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("starting runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(app::serve(
        src,
        flags,
        registry,
        ferrodns_plugin::Metrics::new(),
        Hooks::default(),
    ))
}

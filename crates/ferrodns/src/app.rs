//! Serving a Corefile as CoreDNS's `coremain.Run` does: find the Corefile, load it, bind, print
//! the banner, write the pidfile, then handle signals (SIGUSR1 and the `reload` plugin reload,
//! SIGTERM/SIGINT/SIGQUIT stop) until the end. `node-cache` runs the same loop with its own
//! process-exit hooks (its network teardown), as upstream adds its teardown to Caddy's.

use crate::cli;
use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

use ferrodns_plugin::{Control, CorefileInput};
use tokio::sync::{mpsc, oneshot};

use ferrodns_server::config::{self, Instance, Source};
use ferrodns_server::handoff::{self, Inherited, NoHandoff, Rendezvous, Successor};
use ferrodns_server::{Server, handoff::Listener};

/// How a Go program ends on a command line its flag set refused: `-h` prints the usage and
/// exits 0; anything else prints the error and the usage and exits 2.
pub fn flag_exit(err: cli::FlagError, usage: &str) -> ExitCode {
    match err {
        cli::FlagError::Help => {
            eprint!("{usage}");
            ExitCode::SUCCESS
        }
        cli::FlagError::Bad(msg) => {
            eprintln!("{msg}");
            eprint!("{usage}");
            ExitCode::from(2)
        }
    }
}

/// Run `main` to its exit status on the server's runtime: one worker per CPU.
pub fn block_on(main: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(ferrodns_server::run::workers())
        .enable_all()
        .build()
    {
        Ok(rt) => {
            rt.spawn(ferrodns_server::run::keep_timers_armed());
            rt.block_on(main)
        }
        Err(e) => {
            eprintln!("starting runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What CoreDNS's `Run` does before loading a Corefile, in its order: refuse arguments after
/// the flags, answer `-plugins`, answer `-version`. `Some` is the exit status when the process
/// is done.
pub fn early_exit(flags: &cli::Flags, registry: &ferrodns_plugin::Registry) -> Option<ExitCode> {
    if !flags.rest.is_empty() {
        eprintln!("extra command line arguments: [{}]", flags.rest.join(" "));
        return Some(ExitCode::FAILURE);
    }
    if flags.plugins {
        let mut names: Vec<&str> = registry.descriptors().iter().map(|d| d.name).collect();
        names.sort_unstable();
        for n in names {
            println!("{n}");
        }
        return Some(ExitCode::SUCCESS);
    }
    if flags.version {
        print!("{}", version_lines());
        return Some(ExitCode::SUCCESS);
    }
    None
}

/// The `-version` lines.
pub fn version_lines() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!(
        "ferrodns-{}\n{}/{}, rust\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        arch
    )
}

/// Find the Corefile as CoreDNS does: `-conf` (or `stdin`), else `Corefile` in the working
/// directory, else the built-in default.
pub fn source(flags: &cli::Flags) -> Result<Source, String> {
    let port = flags.port.clone();
    match flags.conf.as_deref() {
        Some("stdin") => {
            let mut text = Vec::new();
            std::io::stdin()
                .read_to_end(&mut text)
                .map_err(|e| format!("loading Caddyfile via flag: read stdin: {e}"))?;
            Ok(Source {
                filename: "stdin".to_string(),
                text,
                default_port: port,
            })
        }
        Some(path) => {
            let text = std::fs::read(path).map_err(|e| {
                format!(
                    "loading Caddyfile via flag: open {path}: {}",
                    ferrodns_go::os::io_text(&e)
                )
            })?;
            Ok(Source {
                filename: path.to_string(),
                text,
                default_port: port,
            })
        }
        None => match std::fs::read("Corefile") {
            Ok(text) => Ok(Source {
                filename: "Corefile".to_string(),
                text,
                default_port: port,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Source::default_for(&port)),
            Err(e) => Err(format!("open Corefile: {}", ferrodns_go::os::io_text(&e))),
        },
    }
}

/// A reload asked for by a plugin (`reload`), carried to the loop that owns the server.
struct RestartRequest {
    input: CorefileInput,
    done: oneshot::Sender<Result<(), String>>,
}

/// The binary's reload entry point, handed to every instance.
struct Process {
    flags: cli::Flags,
    /// A Corefile read from stdin cannot be read again: a reload reuses its text.
    stdin: Option<Source>,
    requests: mpsc::Sender<RestartRequest>,
}

#[ferrodns_plugin::async_trait]
impl Control for Process {
    fn load(&self) -> Result<CorefileInput, String> {
        let src = match &self.stdin {
            Some(s) => s.clone(),
            None => source(&self.flags)?,
        };
        Ok(CorefileInput {
            filename: src.filename,
            text: src.text,
        })
    }

    async fn restart(&self, input: CorefileInput) -> Result<(), String> {
        let (done, result) = oneshot::channel();
        self.requests
            .send(RestartRequest { input, done })
            .await
            .map_err(|_| "server is stopping".to_string())?;
        result
            .await
            .unwrap_or_else(|_| Err("server is stopping".to_string()))
    }
}

/// CoreDNS's restart: build an instance from `src` and swap it in, or keep the running one.
async fn restart(
    server: &mut Server,
    src: Source,
    registry: &ferrodns_plugin::Registry,
    metrics: &ferrodns_plugin::Metrics,
    control: &Arc<Process>,
) -> Result<(), String> {
    tracing::info!(target: "server", "Reloading");
    let control: Arc<dyn Control> = control.clone();
    let result = match config::load(src, registry, metrics, Some(control)) {
        Ok(instance) => server.reload(instance).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            tracing::info!(target: "server", "Reloading complete");
            Ok(())
        }
        Err(e) => {
            let msg = format!("starting with listener file descriptors: {e}");
            tracing::error!(target: "server", "Restart failed: {msg}");
            Err(msg)
        }
    }
}

/// Ask the process at `at` for its sockets; `None` (logged) when there is none to take.
async fn take_over(at: &Rendezvous, instance: &Instance) -> Option<Inherited> {
    let addresses = instance.dns_addresses();
    let at2 = at.clone();
    let got = match tokio::task::spawn_blocking(move || handoff::take_over(&at2, &addresses)).await
    {
        Ok(r) => r,
        Err(e) => Err(NoHandoff::Failed(std::io::Error::other(e.to_string()))),
    };
    match got {
        Ok(i) => {
            let n = handoff::import_states(instance, &i.states);
            tracing::info!(
                target: "server",
                "handoff: taking over the sockets of process {} at {at} ({n} plugin states)",
                i.pid
            );
            Some(i)
        }
        Err(NoHandoff::Nobody) => None,
        Err(NoHandoff::Mismatch { pid, version }) => {
            tracing::warn!(
                target: "server",
                "handoff: process {pid} at {at} speaks hand-off version {version}, this one {}: serving beside it (SO_REUSEPORT); what sits in its sockets is lost when it stops",
                handoff::VERSION
            );
            None
        }
        Err(NoHandoff::Unrelated { pid }) => {
            tracing::debug!(
                target: "server",
                "handoff: process {pid} at {at} serves none of these addresses: not taking over"
            );
            None
        }
        Err(NoHandoff::Busy { pid }) => {
            tracing::debug!(
                target: "server",
                "handoff: process {pid} at {at} is handing off to another process: binding beside it"
            );
            None
        }
        Err(NoHandoff::Failed(e)) => {
            // A predecessor that hung up was going away (or turned many starters away at
            // once): nothing to take over, and not worth a line. Anything else is.
            use std::io::ErrorKind as K;
            if matches!(
                e.kind(),
                K::UnexpectedEof | K::ConnectionReset | K::BrokenPipe | K::ConnectionAborted
            ) {
                tracing::debug!(target: "server", "handoff: taking over from {at}: {e}; binding anew");
            } else {
                tracing::warn!(target: "server", "handoff: taking over from {at}: {e}; binding anew");
            }
            None
        }
    }
}

/// Offer this process's sockets and state to a successor; `Some` when it took them.
async fn offer(server: &Server, mut s: Successor) -> Option<Successor> {
    let pid = s.pid;
    if !server.shares_any(&s.addresses) {
        let _ = tokio::task::spawn_blocking(move || s.unrelated()).await;
        return None;
    }
    let offer = match server.handoff_offer() {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(target: "server", "handoff: cannot offer the sockets to process {pid}: {e}");
            return None;
        }
    };
    let result = tokio::task::spawn_blocking(move || s.offer(&offer).map(|o| (o, s))).await;
    match result {
        Ok(Ok((handoff::Outcome::Taken, s))) => Some(s),
        Ok(Ok((handoff::Outcome::Declined, _))) => None,
        Ok(Err(e)) => {
            tracing::warn!(target: "server", "handoff: process {pid} did not take over: {e}");
            None
        }
        Err(e) => {
            tracing::warn!(target: "server", "handoff: {e}");
            None
        }
    }
}

/// The successor serves: let go of the rendezvous, stop reading, answer what is in hand, and
/// leave everything else (the pidfile it rewrote, node-cache's interface and rules) to it.
async fn hand_over(
    server: Server,
    s: Successor,
    listener: Option<Listener>,
    pidfile: Option<&str>,
) {
    let pid = s.pid;
    tracing::info!(target: "server", "handoff: process {pid} took over; stopping");
    let released = tokio::task::spawn_blocking(move || match listener {
        Some(l) => s.release(l),
        None => Ok(()),
    })
    .await;
    if !matches!(released, Ok(Ok(()))) {
        tracing::warn!(target: "server", "handoff: could not tell process {pid} that the rendezvous is free");
    }
    server.hand_over().await;
    if let Some(p) = pidfile {
        let ours =
            std::fs::read_to_string(p).is_ok_and(|t| t.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// An action for the end of the process, whatever ends it (SIGTERM, SIGINT, SIGQUIT): Caddy's
/// `OnProcessExit`, where CoreDNS removes its pidfile and node-cache tears its network down.
#[ferrodns_plugin::async_trait]
pub trait ProcessExit: Send + Sync {
    /// Run the action.
    async fn on_process_exit(&self);
}

/// What an embedding program adds to the serving loop.
#[derive(Default, Clone)]
pub struct Hooks {
    /// Run at process exit, after the pidfile is removed, in order.
    pub process_exit: Vec<Arc<dyn ProcessExit>>,
}

/// Make the `-memory` flag the process's limit of the memory budget. Said at debug level only:
/// the startup lines stay CoreDNS's (`node-cache` says it at info).
fn apply_memory_flag(flag: ferrodns_plugin::budget::MemoryFlag) {
    let limit = flag.resolve();
    ferrodns_plugin::budget::global().set_process_limit(limit);
    tracing::debug!(target: "server", "memory budget from -memory {flag:?}: {limit:?} bytes");
}

/// Serve `src` until a signal ends the process; returns the exit status. `metrics` is the
/// process-wide registry (an embedding program may have registered families of its own);
/// every compiled plugin's start-up families are registered on it here.
pub async fn serve(
    src: Source,
    flags: cli::Flags,
    registry: ferrodns_plugin::Registry,
    metrics: ferrodns_plugin::Metrics,
    hooks: Hooks,
) -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};

    registry.register_metrics(&metrics);
    apply_memory_flag(flags.memory);
    let (requests, mut restarts) = mpsc::channel(1);
    let process = Arc::new(Process {
        flags: flags.clone(),
        stdin: (src.filename == "stdin").then(|| src.clone()),
        requests,
    });
    let control: Arc<dyn Control> = process.clone();
    let instance = match config::load(src, &registry, &metrics, Some(control)) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // Install the handlers before anything is bound so no signal kills us half-started.
    let sigs = [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::quit(),
        SignalKind::hangup(),
        SignalKind::user_defined1(),
    ];
    let mut streams = Vec::new();
    for k in sigs {
        match signal(k) {
            Ok(s) => streams.push(s),
            Err(e) => {
                eprintln!("installing signal handler: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let [mut term, mut int, mut quit, mut hup, mut usr1] = match <[_; 5]>::try_from(streams) {
        Ok(a) => a,
        Err(_) => return ExitCode::FAILURE,
    };

    // A running instance at the rendezvous hands its sockets and its plugins' state over.
    let rendezvous = (!flags.handoff.is_empty()).then(|| Rendezvous(flags.handoff.clone()));
    let mut inherited = match &rendezvous {
        Some(at) => take_over(at, &instance).await,
        None => None,
    };
    let mut server = match Server::start_with(instance, inherited.as_mut()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(p) = &flags.pidfile
        && let Err(e) = std::fs::write(p, format!("{}\n", std::process::id()))
    {
        tracing::error!(target: "server", "Could not write pidfile: {e}");
    }
    // The banner comes last so that it tells a watcher that everything is up, pidfile included.
    // CoreDNS prints the zone lines, then runs its instance-startup hooks (reload logs the
    // configuration's hash there), then the version lines.
    if !flags.quiet {
        print!("{}", server.banner());
    }
    server.started().await;
    if !flags.quiet {
        print!("{}", version_lines());
    }
    // Serving: the predecessor may stop; then wait at the rendezvous for a successor.
    if let Some(i) = inherited {
        let pid = i.pid;
        match tokio::task::spawn_blocking(move || i.finish()).await {
            Ok(Ok(())) => {
                tracing::info!(target: "server", "handoff: took over from process {pid}");
            }
            Ok(Err(e)) => {
                tracing::warn!(target: "server", "handoff: process {pid} did not confirm the hand-off: {e}");
            }
            Err(e) => tracing::warn!(target: "server", "handoff: {e}"),
        }
    }
    let (successor_tx, mut successors) = mpsc::channel(1);
    let mut listener = rendezvous.and_then(|at| match handoff::listen(&at, successor_tx) {
        Ok(l) => Some(l),
        Err(e) => {
            // Usual when another instance (on other addresses) holds the default rendezvous;
            // not worth a line in a log that mirrors CoreDNS's.
            tracing::debug!(
                target: "server",
                "handoff: cannot wait for a successor at {at}: {e}; a successor will serve beside this process instead"
            );
            None
        }
    });
    // Caddy's OnProcessExit: the pidfile goes first, then the embedding program's actions.
    let process_exit = || async {
        if let Some(p) = &flags.pidfile {
            let _ = std::fs::remove_file(p);
        }
        for h in &hooks.process_exit {
            h.on_process_exit().await;
        }
    };
    // With nothing to listen on (every address excepted by bind) CoreDNS has no server to wait
    // for and exits at once, successfully; so do we.
    if server.listeners().is_empty() {
        server.stop().await;
        process_exit().await;
        return ExitCode::SUCCESS;
    }

    loop {
        tokio::select! {
            Some(s) = successors.recv() => {
                if let Some(s) = offer(&server, s).await {
                    hand_over(server, s, listener.take(), flags.pidfile.as_deref()).await;
                    return ExitCode::SUCCESS;
                }
            }
            _ = term.recv() => {
                // With a rendezvous, serve on for a while: a successor (the DaemonSet's next
                // pod) may come to take over, and then nothing is torn down.
                if listener.is_some() && !flags.handoff_wait.is_zero() {
                    tracing::info!(
                        target: "server",
                        "SIGTERM: waiting up to {} for a successor to hand off to",
                        ferrodns_go::time::format_duration(flags.handoff_wait)
                    );
                    let deadline = tokio::time::sleep(flags.handoff_wait);
                    tokio::pin!(deadline);
                    loop {
                        tokio::select! {
                            _ = &mut deadline => break,
                            _ = term.recv() => break,
                            Some(s) = successors.recv() => {
                                if let Some(s) = offer(&server, s).await {
                                    hand_over(server, s, listener.take(), flags.pidfile.as_deref()).await;
                                    return ExitCode::SUCCESS;
                                }
                            }
                        }
                    }
                }
                drop(listener.take());
                // Shutdown callbacks (lameduck) while serving, then the exit actions, then stop.
                tracing::info!(target: "server", "SIGTERM: Shutting down servers then terminating");
                server.shutdown_hooks().await;
                process_exit().await;
                server.close().await;
                return ExitCode::SUCCESS;
            }
            _ = int.recv() => {
                // The exit actions first; a second SIGINT forces the exit.
                tracing::info!(target: "server", "SIGINT: Shutting down");
                process_exit().await;
                tokio::select! {
                    _ = server.stop() => {}
                    _ = int.recv() => {
                        tracing::info!(target: "server", "SIGINT: Force quit");
                        process_exit().await;
                        return ExitCode::from(2);
                    }
                }
                return ExitCode::SUCCESS;
            }
            _ = quit.recv() => {
                tracing::info!(target: "server", "SIGQUIT: Quitting process immediately");
                process_exit().await;
                return ExitCode::SUCCESS;
            }
            _ = hup.recv() => {
                // CoreDNS traps SIGHUP and ignores it.
            }
            _ = usr1.recv() => {
                tracing::info!(target: "server", "SIGUSR1: Reloading");
                match process.load() {
                    Err(msg) => {
                        tracing::error!(target: "server", "SIGUSR1: loading updated Caddyfile: {msg}");
                    }
                    Ok(next) => {
                        let next = Source { filename: next.filename, text: next.text, default_port: flags.port.clone() };
                        if let Err(e) = restart(&mut server, next, &registry, &metrics, &process).await {
                            tracing::error!(target: "server", "SIGUSR1: {e}");
                        }
                    }
                }
            }
            Some(r) = restarts.recv() => {
                let next = Source { filename: r.input.filename, text: r.input.text, default_port: flags.port.clone() };
                let result = restart(&mut server, next, &registry, &metrics, &process).await;
                let _ = r.done.send(result);
            }
        }
    }
}

/// The `ferrodns` command with `registry`'s plugins: CoreDNS's flags, `-conf`, `-validate`,
/// serving until a signal. The `ferrodns` binary calls it with [`crate::registry`]; a binary
/// built with other plugins (`cargo xtask build --plugin-cfg`) with its own registry.
pub fn main(registry: ferrodns_plugin::Registry) -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let program = args
        .first()
        .cloned()
        .unwrap_or_else(|| "ferrodns".to_string());
    let flags = match cli::parse(args.get(1..).unwrap_or(&[])) {
        Ok(f) => f,
        Err(e) => return flag_exit(e, &cli::usage(&program)),
    };
    if let Some(code) = early_exit(&flags, &registry) {
        return code;
    }
    ferrodns_server::logging::init(false);
    let src = match source(&flags) {
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

    block_on(serve(
        src,
        flags,
        registry,
        ferrodns_plugin::Metrics::new(),
        Hooks::default(),
    ))
}

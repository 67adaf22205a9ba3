//! `node-cache`: Kubernetes' NodeLocal DNSCache agent on ferrodns, taking the DaemonSet's
//! arguments unchanged. The start follows upstream's order (reference node-cache.md §1.1):
//! flags, the upstream ClusterIP, the interface and iptables plans, node-cache's metrics, the
//! Corefile and its ConfigMap watchers, the interface (no rules yet), then the DNS server, with
//! the rules installed once the pidfile shows the server is up and the network torn down when a
//! signal ends the process.

use std::process::ExitCode;
use std::sync::Arc;

use ferrodns::app::{self, Hooks};
use ferrodns_node_cache::corefile::{self, ConfigOptions, ConfigSync, RenderParams};
use ferrodns_node_cache::flags::{self, Params, ParamsError};
use ferrodns_node_cache::setup::{self, Network, NetworkOptions};
use ferrodns_plugin::Metrics;
use ferrodns_server::logging;
use tokio::sync::watch;

/// jemalloc, with heap profiling compiled in but inactive until a `pprof` listener starts
/// (plugins/pprof/README.md).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let program = args
        .first()
        .cloned()
        .unwrap_or_else(|| "node-cache".to_string());
    logging::init(false);
    tracing::info!(target: "node-cache", "Starting node-cache image: {}", env!("CARGO_PKG_VERSION"));
    let params = match flags::parse(args.get(1..).unwrap_or(&[])) {
        Ok(p) => p,
        Err(ParamsError::Flag(e)) => return app::flag_exit(e, &flags::usage(&program)),
        Err(ParamsError::Invalid(msg)) => {
            tracing::error!(target: logging::FATAL_PREFIX, "Error parsing flags - {msg}, Exiting");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(target: "node-cache", "Using Corefile {}", params.corefile);
    tracing::info!(
        target: "node-cache",
        "Using Pidfile {}",
        params.coredns.pidfile.as_deref().unwrap_or("")
    );
    app::block_on(run(params))
}

async fn run(params: Params) -> ExitCode {
    let metrics = Metrics::new();
    // Upstream registers its counter only when its metrics listener comes up.
    let setup_metrics = setup::init_metrics(&params.metrics_listen_address, &metrics).await;

    // The Corefile, then its watchers: the kube-dns one rewrites it at once.
    let cluster_dns = corefile::cluster_dns_from_env(&params.upstream_svc);
    let mut opts = ConfigOptions::new(
        &params.corefile,
        RenderParams {
            cluster_dns,
            local_ip: params.local_ip_str.clone(),
            port: params.coredns.port.clone(),
            prometheus_listen_address: Some(params.prometheus_listen_address.clone()),
        },
    );
    opts.base_corefile = params.base_corefile.clone().into();
    opts.kubedns_dir = (!params.kubedns_cm.is_empty()).then(|| params.kubedns_cm.clone().into());
    opts.reload_with_signal = params.reload_with_signal;
    let (stop_tx, stop_rx) = watch::channel(false);
    let sink = {
        let m = setup_metrics.clone();
        Arc::new(move |kind: &str| m.error(kind))
    };
    let _sync = ConfigSync::start(opts, sink, stop_rx.clone());

    // The interface now; the rules once the server is up.
    let network = Arc::new(Network::new(
        NetworkOptions::from_params(&params),
        setup_metrics.clone(),
    ));
    network.init().await;
    let mut hooks = Hooks::default();
    if !params.skip_teardown {
        hooks.process_exit.push(network.clone());
    }
    network.spawn_periodic(stop_rx);

    let flags = params.coredns.clone();
    match flags.memory.resolve() {
        Some(l) => tracing::info!(
            target: "node-cache",
            "Memory budget {} MiB (-memory {}): {}% for cache entries, {}% for queries in flight",
            l >> 20,
            match flags.memory {
                ferrodns_plugin::budget::MemoryFlag::Auto => "auto, of the cgroup memory limit",
                _ => "set",
            },
            ferrodns_plugin::budget::CACHE_PERCENT,
            ferrodns_plugin::budget::INFLIGHT_PERCENT
        ),
        None => {
            tracing::info!(target: "node-cache", "No memory budget (no -memory, no cgroup memory limit)")
        }
    }
    let registry = ferrodns::registry();
    // Upstream answers these only after its set-up has run, as here.
    if let Some(code) = app::early_exit(&flags, &registry) {
        return code;
    }
    let src = match app::source(&flags) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    let code = app::serve(src, flags, registry, metrics, hooks).await;
    let _ = stop_tx.send(true);
    code
}

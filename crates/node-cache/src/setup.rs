//! Network setup as upstream's `CacheApp` runs it: the interface-only pass at start, the
//! periodic pass (iptables rules in list order, or the nftables table, then the interface)
//! gated by the CoreDNS pidfile, the teardown at exit, the
//! `coredns_nodecache_setup_errors_total` counter and the metrics listener of
//! `-metrics-listen-address`. Reference: `node-cache.md` sections 1.1, 4.4, 4.5 and 5.2.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use ferrodns_plugin::{HttpHandler, HttpResponse, Metrics};

use crate::iptables::{self, Ensured as RuleEnsured, ErrorKind, Iptables, Rule};
use crate::netif::{self, Ensured as LinkEnsured, Netif};
use crate::nftables::{self, Nftables};

/// The log target of node-cache's own lines (printed `[INFO] message`, no plugin prefix).
const LOG: &str = "node-cache";

/// The counter family's name as registered (prometheus-client appends `_total`).
pub const SETUP_ERRORS_NAME: &str = "coredns_nodecache_setup_errors";
/// Its help text.
pub const SETUP_ERRORS_HELP: &str =
    "The number of errors during periodic network setup for node-cache";

/// The `errortype` label values of `coredns_nodecache_setup_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// An iptables check, insert or delete failed.
    Iptables,
    /// The same, because another process held the xtables lock.
    IptablesLock,
    /// The interface was missing and could not be created.
    InterfaceAdd,
    /// Ensuring the interface failed (also counted with `InterfaceAdd`, as upstream does).
    InterfaceCheck,
    /// Rendering or writing the Corefile failed.
    Configmap,
}

impl ErrorType {
    /// Every value, in upstream's pre-initialisation order.
    pub const ALL: [ErrorType; 5] = [
        ErrorType::Iptables,
        ErrorType::IptablesLock,
        ErrorType::InterfaceAdd,
        ErrorType::InterfaceCheck,
        ErrorType::Configmap,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Iptables => "iptables",
            ErrorType::IptablesLock => "iptables_lock",
            ErrorType::InterfaceAdd => "interface_add",
            ErrorType::InterfaceCheck => "interface_check",
            ErrorType::Configmap => "configmap",
        }
    }
}

type Labels = Vec<(&'static str, String)>;

/// The `coredns_nodecache_setup_errors_total{errortype}` counter. Cheap to clone; every clone
/// counts into the same series.
#[derive(Clone, Default)]
pub struct SetupMetrics {
    family: Family<Labels, Counter>,
}

impl std::fmt::Debug for SetupMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetupMetrics")
    }
}

impl SetupMetrics {
    /// The family registered on the process registry, its five series shown at 0.
    pub fn register(metrics: &Metrics) -> Self {
        let family = metrics.register(SETUP_ERRORS_NAME, SETUP_ERRORS_HELP, Family::default);
        let m = SetupMetrics { family };
        for t in ErrorType::ALL {
            m.series(t);
        }
        m
    }

    /// A counter that is exported nowhere: upstream's when its metrics listener could not
    /// start (it still counts, nobody sees it).
    pub fn unregistered() -> Self {
        SetupMetrics::default()
    }

    fn series(&self, t: ErrorType) -> Counter {
        self.family
            .get_or_create(&vec![("errortype", t.as_str().to_string())])
            .clone()
    }

    /// Count one error of type `t`.
    pub fn inc(&self, t: ErrorType) {
        self.series(t).inc();
    }

    /// Count one error by its label value (`iptables`, `iptables_lock`, `interface_add`,
    /// `interface_check`, `configmap`); another value gets a series of its own, as Go's
    /// `WithLabelValues` would.
    pub fn error(&self, kind: &str) {
        match ErrorType::ALL.iter().find(|t| t.as_str() == kind) {
            Some(t) => self.inc(*t),
            None => {
                self.family
                    .get_or_create(&vec![("errortype", kind.to_string())])
                    .inc();
            }
        }
    }

    /// Count one Corefile (ConfigMap) error: the hook for the configuration side.
    pub fn configmap_error(&self) {
        self.inc(ErrorType::Configmap);
    }

    /// The current count of type `t`.
    pub fn get(&self, t: ErrorType) -> u64 {
        self.series(t).get()
    }
}

/// `/metrics`: the whole process registry, in the classic text format that upstream's
/// `promhttp.Handler()` serves.
struct MetricsPage(Metrics);

impl HttpHandler for MetricsPage {
    fn handle(&self) -> HttpResponse {
        HttpResponse {
            status: 200,
            content_type: Metrics::CLASSIC_CONTENT_TYPE,
            body: self.0.encode_classic().into_bytes(),
        }
    }
}

/// Listen on `addr` (Go's `host:port`; `:9353` is every address) and serve `/metrics` with the
/// whole registry, for the life of the process (the task ends with the runtime). Returns the
/// bound address; the error reads as Go's (`listen tcp 0.0.0.0:9353: bind: address already in
/// use`). Unlike the DNS listeners this one does not share its port (no `SO_REUSEPORT`), as
/// Go's listener does not.
pub async fn serve_metrics(addr: &str, metrics: Metrics) -> Result<SocketAddr, String> {
    let sa = ferrodns_server::http::listen_addr(addr).map_err(|e| {
        let e = e.to_string();
        if e.starts_with("listen tcp") {
            e
        } else {
            format!("listen tcp: {e}")
        }
    })?;
    // SO_REUSEPORT, so that a successor taking over in a hand-off (or a surging pod,
    // kubernetes/dns#667) listens beside this process instead of failing.
    let std_listener = ferrodns_server::tcp::bind(sa)
        .map_err(|e| format!("listen tcp {addr}: bind: {}", netif::go_error_text(&e)))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| format!("listen tcp {addr}: {}", netif::go_error_text(&e)))?;
    let local = std_listener
        .local_addr()
        .map_err(|e| format!("listen tcp {addr}: {}", netif::go_error_text(&e)))?;
    let listener = tokio::net::TcpListener::from_std(std_listener)
        .map_err(|e| format!("listen tcp {addr}: {}", netif::go_error_text(&e)))?;
    // Upstream's default registry carries Go's process collector (dashboards chart
    // process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds).
    metrics.register_process_collector();
    let mut paths: BTreeMap<String, Arc<dyn HttpHandler>> = BTreeMap::new();
    paths.insert("/metrics".to_string(), Arc::new(MetricsPage(metrics)));
    let (keep, stop) = watch::channel(false);
    tokio::spawn(async move {
        // The sender lives as long as the server: dropping it would stop the loop.
        let _keep = keep;
        ferrodns_server::http::serve(listener, paths, stop).await;
    });
    Ok(local)
}

/// Upstream's `initMetrics`: start the metrics listener on `addr`; if that works, register
/// the setup-error counter (five series at 0) on `metrics` and return it; if not, log
/// `Failed to start metrics handler: <why>` and return an unregistered counter (startup goes
/// on; the family is then exported nowhere, as upstream).
pub async fn init_metrics(addr: &str, metrics: &Metrics) -> SetupMetrics {
    match serve_metrics(addr, metrics.clone()).await {
        Ok(_) => SetupMetrics::register(metrics),
        Err(e) => {
            tracing::error!(target: LOG, "Failed to start metrics handler: {e}");
            SetupMetrics::unregistered()
        }
    }
}

/// Why a `-syncinterval` value gives no period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncIntervalError {
    /// Not a Go duration (Go's flag package rejects it: usage, exit 2).
    #[error("{0}")]
    Parse(ferrodns_go::time::DurationError),
    /// Zero or negative once scaled (upstream's ticker panics when the loop starts).
    #[error("non-positive interval for NewTicker")]
    NonPositive,
}

/// The period of the check loop for a `-syncinterval` value, with upstream's quirk: the Go
/// duration's nanosecond count times one second, in Go's wrapping 64-bit arithmetic. So the
/// default `60` is not accepted (no unit) but `60ns` means 60 s, and `60s` wraps to about 147
/// years.
pub fn sync_period(value: &str) -> Result<Duration, SyncIntervalError> {
    use ferrodns_go::time::{DurationError, parse_duration};
    let d = match parse_duration(value) {
        Ok(d) => d,
        Err(DurationError::Negative(_)) => return Err(SyncIntervalError::NonPositive),
        Err(e) => return Err(SyncIntervalError::Parse(e)),
    };
    // The parser caps durations at i64::MAX nanoseconds, as Go's.
    let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let scaled = nanos.wrapping_mul(1_000_000_000);
    if scaled <= 0 {
        return Err(SyncIntervalError::NonPositive);
    }
    Ok(Duration::from_nanos(scaled.unsigned_abs()))
}

/// The period of the flag's default (`60`, read as 60 ns by upstream): 60 s.
pub const DEFAULT_SYNC_PERIOD: Duration = Duration::from_secs(60);

/// What the network side needs from the flags.
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    /// `-localip` as given: its comma-separated pieces go into the rules as written.
    pub local_ip_str: String,
    /// The same addresses parsed; IPv4 ones get iptables rules, IPv6 ones ip6tables rules.
    pub local_ips: Vec<IpAddr>,
    /// `-dns.port` (CoreDNS's), for the rules: `53`.
    pub local_port: String,
    /// `-health-port`, for the two NOTRACK rules of the liveness probe: `8080`.
    pub health_port: String,
    /// `-interfacename`: `nodelocaldns`.
    pub interface_name: String,
    /// `-setupinterface`: true.
    pub setup_interface: bool,
    /// `-setupiptables`: true.
    pub setup_iptables: bool,
    /// `-nftables`: false. The rules as the nftables table `inet nodelocaldns` instead.
    pub nftables: bool,
    /// The check period, from [`sync_period`]: 60 s.
    pub sync_period: Duration,
    /// CoreDNS's `-pidfile`: when set, the first full setup runs as soon as it exists.
    pub pidfile: Option<PathBuf>,
    /// The program and leading arguments for IPv4 rules; `None` is `iptables`.
    pub iptables_command: Option<Vec<String>>,
    /// The same for IPv6 rules; `None` is `ip6tables`.
    pub ip6tables_command: Option<Vec<String>>,
}

impl NetworkOptions {
    /// The options from the parsed flags. A `-syncinterval` that gives no period (zero or
    /// negative; upstream's ticker panics on it) leaves [`NetworkOptions::sync_period`] at
    /// zero: the periodic check is then off (see [`Network::run_periodic`]).
    pub fn from_params(p: &crate::flags::Params) -> Self {
        NetworkOptions {
            local_ip_str: p.local_ip_str.clone(),
            local_ips: p.local_ips.clone(),
            local_port: p.coredns.port.clone(),
            health_port: p.health_port.clone(),
            interface_name: p.interface_name.clone(),
            setup_interface: p.setup_interface,
            setup_iptables: p.setup_iptables,
            nftables: p.nftables,
            sync_period: sync_period(&p.sync_interval).unwrap_or(Duration::ZERO),
            pidfile: p.coredns.pidfile.as_ref().map(PathBuf::from),
            iptables_command: None,
            ip6tables_command: None,
        }
    }

    /// The options for `-localip` with every other flag at its default.
    pub fn new(local_ip_str: impl Into<String>, local_ips: Vec<IpAddr>) -> Self {
        NetworkOptions {
            local_ip_str: local_ip_str.into(),
            local_ips,
            local_port: "53".to_string(),
            health_port: "8080".to_string(),
            interface_name: "nodelocaldns".to_string(),
            setup_interface: true,
            setup_iptables: true,
            nftables: false,
            sync_period: DEFAULT_SYNC_PERIOD,
            pidfile: None,
            iptables_command: None,
            ip6tables_command: None,
        }
    }
}

/// The network side: the link, the rules, the loop keeping them and their teardown.
pub struct Network {
    opts: NetworkOptions,
    rules: Vec<Rule>,
    iptables: Iptables,
    ip6tables: Iptables,
    /// The table of `-nftables`; an error when the ports do not fit it.
    nftables: Result<Nftables, String>,
    netif: Netif,
    metrics: SetupMetrics,
    /// Held by a setup pass and by teardown, so that they never interleave.
    pass_lock: tokio::sync::Mutex<()>,
    torn_down: AtomicBool,
    stop_tx: watch::Sender<bool>,
    periodic: Mutex<Option<JoinHandle<()>>>,
    /// The type of the pre-existing link last announced at INFO (announced once, not on
    /// every pass).
    announced: Mutex<Option<Option<String>>>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("opts", &self.opts).finish()
    }
}

/// Whether the pidfile is there: a file (not a directory) at `path`.
fn file_exists(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_dir())
}

impl Network {
    /// The network side for `opts`, counting errors into `metrics`.
    pub fn new(opts: NetworkOptions, metrics: SetupMetrics) -> Network {
        let rules = iptables::rules(&opts.local_ip_str, &opts.local_port, &opts.health_port);
        let tool = |command: &Option<Vec<String>>, ipv6| match command {
            Some(c) => Iptables::with_command(c.clone()),
            None => Iptables::new(ipv6),
        };
        let iptables = tool(&opts.iptables_command, false);
        let ip6tables = tool(&opts.ip6tables_command, true);
        let nftables = match (opts.local_port.parse(), opts.health_port.parse()) {
            (Ok(dns), Ok(health)) => Ok(Nftables::new(&opts.local_ips, dns, health)),
            _ => Err(format!(
                "ports {} and {} do not fit an nftables rule",
                opts.local_port, opts.health_port
            )),
        };
        let netif = Netif::new(opts.interface_name.clone(), opts.local_ips.clone());
        let (stop_tx, _) = watch::channel(false);
        Network {
            opts,
            rules,
            iptables,
            ip6tables,
            nftables,
            netif,
            metrics,
            pass_lock: tokio::sync::Mutex::new(()),
            torn_down: AtomicBool::new(false),
            stop_tx,
            periodic: Mutex::new(None),
            announced: Mutex::new(None),
        }
    }

    /// The options.
    pub fn options(&self) -> &NetworkOptions {
        &self.opts
    }

    /// The rules, in the order they are ensured.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The error counter.
    pub fn metrics(&self) -> &SetupMetrics {
        &self.metrics
    }

    /// The start-up pass (upstream `Init`'s last step): the interface and its addresses only,
    /// so that no traffic is redirected before the server is up. Nothing if
    /// `-setupinterface=false`.
    pub async fn init(&self) {
        if self.opts.setup_iptables && !self.opts.nftables {
            self.tell_about_nftables_kube_proxy().await;
        }
        self.pass(false).await;
    }

    /// In iptables mode on a node whose kube-proxy runs in nftables mode, say so once.
    async fn tell_about_nftables_kube_proxy(&self) {
        match nftables::kube_proxy_tables().await {
            Ok(families) if !families.is_empty() => {
                let tables: Vec<String> = families
                    .iter()
                    .map(|f| format!("{f} {}", nftables::KUBE_PROXY_TABLE))
                    .collect();
                tracing::info!(target: LOG, "kube-proxy runs in nftables mode on this node (table {}); node-cache keeps iptables rules: -nftables keeps them as the nftables table inet {} instead", tables.join(", table "), nftables::TABLE);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(target: LOG, "looking for kube-proxy's nftables tables: {e}"),
        }
    }

    /// One full pass: every iptables rule in list order, or with `-nftables` the table (if
    /// `-setupiptables`), then the interface (if `-setupinterface`). Errors are logged and
    /// counted, never returned.
    pub async fn setup(&self) {
        self.pass(true).await;
    }

    async fn pass(&self, with_iptables: bool) {
        let _guard = self.pass_lock.lock().await;
        if self.torn_down.load(Ordering::SeqCst) {
            return;
        }
        if with_iptables && self.opts.setup_iptables {
            self.ensure_rules().await;
        }
        if self.opts.setup_interface {
            self.ensure_interface().await;
        }
    }

    /// The tool of `rule`'s family.
    fn tool(&self, rule: &Rule) -> &Iptables {
        if rule.ipv6 {
            &self.ip6tables
        } else {
            &self.iptables
        }
    }

    fn count_iptables(&self, e: &iptables::IptablesError) {
        self.metrics.inc(match e.kind() {
            ErrorKind::Lock => ErrorType::IptablesLock,
            ErrorKind::Other => ErrorType::Iptables,
        });
    }

    async fn ensure_rules(&self) {
        if self.opts.nftables {
            self.ensure_table().await;
            return;
        }
        for rule in &self.rules {
            match self.tool(rule).ensure(rule).await {
                Ok(RuleEnsured::Present) => {
                    tracing::debug!(target: LOG, "iptables rule {rule} for nodelocaldns already exists");
                }
                Ok(RuleEnsured::Inserted) => {
                    tracing::info!(target: LOG, "Added back nodelocaldns rule - {rule}");
                }
                Err(e) => {
                    tracing::error!(target: LOG, "Error checking/adding iptables rule {rule}, error - {e}");
                    self.count_iptables(&e);
                }
            }
        }
    }

    /// `-nftables`: the table instead of the iptables rules. Its failures count as
    /// `iptables` errors (the rules' label), so existing alerts keep seeing them.
    async fn ensure_table(&self) {
        let table = format!("inet {}", nftables::TABLE);
        let result = match &self.nftables {
            Ok(t) => t.ensure().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        };
        match result {
            Ok(nftables::Ensured::Present) => {
                tracing::debug!(target: LOG, "nftables table {table} for nodelocaldns already exists");
            }
            Ok(nftables::Ensured::Written) => {
                let n = self.nftables.as_ref().map(|t| t.rules().len()).unwrap_or(0);
                tracing::info!(target: LOG, "Added back nodelocaldns nftables table - {table} ({n} rules)");
            }
            Err(e) => {
                tracing::error!(target: LOG, "Error checking/adding nftables table {table}, error - {e}");
                self.metrics.inc(ErrorType::Iptables);
            }
        }
    }

    async fn ensure_interface(&self) {
        let name = self.netif.name();
        match self.netif.ensure().await {
            Ok(LinkEnsured::Created) => {
                tracing::info!(target: LOG, "Added interface - {name}");
            }
            Ok(LinkEnsured::Found { kind }) => {
                let mut announced = match self.announced.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                let shown = kind.as_deref().unwrap_or("none");
                if announced.as_ref() != Some(&kind) {
                    tracing::info!(target: LOG, "Found existing interface {name} of type {shown}, using it");
                    *announced = Some(kind);
                } else {
                    tracing::debug!(target: LOG, "Interface {name} of type {shown} already exists");
                }
            }
            Err(e) => {
                if !e.found {
                    // Upstream's accounting: the add failure, the "Added" line all the same,
                    // then the check failure too.
                    tracing::error!(target: LOG, "Failed to add non-existent interface {name}: {e}");
                    self.metrics.inc(ErrorType::InterfaceAdd);
                    tracing::info!(target: LOG, "Added interface - {name}");
                }
                tracing::error!(target: LOG, "Error checking dummy device {name} - {e}");
                self.metrics.inc(ErrorType::InterfaceCheck);
            }
        }
    }

    /// The check loop (upstream `runPeriodic`): with a pidfile, poll for it every second
    /// (`waiting for coredns pidfile '<path>'`) and run a full pass as soon as it exists; then
    /// a full pass every sync period, until [`Network::stop_periodic`] or
    /// [`Network::teardown`] (`[WARNING] Exiting iptables/interface check goroutine`).
    pub async fn run_periodic(&self) {
        let mut stop = self.stop_tx.subscribe();
        let exit = || tracing::warn!(target: LOG, "Exiting iptables/interface check goroutine");
        if let Some(pidfile) = &self.opts.pidfile {
            loop {
                if *stop.borrow_and_update() {
                    exit();
                    return;
                }
                if file_exists(pidfile) {
                    break;
                }
                tracing::info!(target: LOG, "waiting for coredns pidfile '{}'", pidfile.display());
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
            }
            self.setup().await;
        }
        let period = self.opts.sync_period;
        if period.is_zero() {
            tracing::error!(target: LOG, "non-positive interval for NewTicker: the periodic interface/iptables check is off");
        }
        let mut ticker = tokio::time::Instant::now()
            .checked_add(period)
            .filter(|_| !period.is_zero())
            .map(|first| tokio::time::interval_at(first, period));
        if let Some(t) = &mut ticker {
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        }
        loop {
            if *stop.borrow_and_update() {
                exit();
                return;
            }
            let tick = async {
                match &mut ticker {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tick => self.setup().await,
                _ = stop.changed() => {}
            }
        }
    }

    /// Run [`Network::run_periodic`] on a task of the current tokio runtime; it also ends
    /// when `stop` turns true (a dropped sender does not stop it).
    pub fn spawn_periodic(self: &Arc<Self>, mut stop: watch::Receiver<bool>) {
        let this = self.clone();
        let handle = tokio::spawn(async move { this.run_periodic().await });
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if *stop.borrow_and_update() {
                    this.stop_periodic();
                    return;
                }
                if stop.changed().await.is_err() {
                    return;
                }
            }
        });
        let mut slot = match self.periodic.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(old) = slot.replace(handle) {
            old.abort();
        }
    }

    /// Ask the check loop to end (it finishes a pass in progress first).
    pub fn stop_periodic(&self) {
        self.stop_tx.send_replace(true);
    }

    /// Upstream `TeardownNetworking`: log `Tearing down`, stop the check loop, delete every
    /// rule with all its duplicates (if `-setupiptables`), then the link (if
    /// `-setupinterface`). Errors are logged (and iptables ones counted); the next steps run
    /// regardless. After it no pass runs any more.
    pub async fn teardown(&self) {
        tracing::info!(target: LOG, "Tearing down");
        self.stop_periodic();
        let handle = match self.periodic.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(h) = handle {
            // Let a pass in progress finish and the loop say goodbye; never wait long.
            if tokio::time::timeout(Duration::from_secs(2), h)
                .await
                .is_err()
            {
                tracing::debug!(target: LOG, "check loop still busy; tearing down anyway");
            }
        }
        let _guard = self.pass_lock.lock().await;
        self.torn_down.store(true, Ordering::SeqCst);
        if self.opts.setup_iptables && self.opts.nftables {
            if let Ok(t) = &self.nftables {
                match t.delete().await {
                    Ok(true) => {
                        tracing::debug!(target: LOG, "Deleted nftables table inet {}", nftables::TABLE);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(target: LOG, "Failed deleting nftables table inet {}, error - {e}", nftables::TABLE);
                        self.metrics.inc(ErrorType::Iptables);
                    }
                }
            }
        } else if self.opts.setup_iptables {
            for rule in &self.rules {
                match self.tool(rule).delete_all(rule).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::debug!(target: LOG, "Deleted {n} copies of iptables rule {rule}");
                    }
                    Err(e) => {
                        tracing::error!(target: LOG, "Failed deleting iptables rule {rule}, error - {e}");
                        self.count_iptables(&e);
                    }
                }
            }
        }
        if self.opts.setup_interface
            && let Err(e) = self.netif.remove().await
        {
            // Upstream drops this error; a link that is not there is no news.
            let name = self.netif.name();
            if e.errno == Some(netif::ENODEV) {
                tracing::debug!(target: LOG, "Interface {name} to delete is not there");
            } else {
                tracing::error!(target: LOG, "Failed to delete interface {name}: {e}");
            }
        }
    }
}

/// Teardown as one of the serving loop's exit actions (Caddy's `OnProcessExit`).
#[ferrodns_plugin::async_trait]
impl ferrodns::app::ProcessExit for Network {
    async fn on_process_exit(&self) {
        self.teardown().await;
    }
}

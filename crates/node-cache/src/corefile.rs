//! Generating `/etc/Corefile` (§3.3, §3.4) and keeping it in step with the two ConfigMap
//! directories (§1.1 steps 4.4 and 4.5, §3.5).
//!
//! * [`render`] is the pure substitution: template bytes + kube-dns config + the upstream
//!   ClusterIP text + `-localip` + `-dns.port` → Corefile bytes, as upstream's
//!   `updateCorefile` builds them.
//! * [`CorefileWriter`] validates, reads the template, renders, writes the file in place
//!   (truncate and write, not atomic, mode 0666 before umask, as upstream), logs upstream's
//!   lines and, with `-reloadwithsignal`, sends SIGUSR1 to this process.
//! * [`ConfigSync::start`] does the startup writes and then polls both directories.
//!
//! Differences from upstream, on purpose: see [`ConfigSync::start`] (a kube-dns directory
//! whose first content is invalid stays watched) and below (stub-domain order).
//!
//! Stub-domain blocks are appended in **sorted** domain order. Upstream ranges over a Go map,
//! i.e. a random order that changes from one rewrite to the next; any fixed order is one of
//! upstream's possible outputs, and sorted keeps the file stable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::kubedns::{self, KubeDnsConfig};
use crate::syncdir::{self, DirSnapshot, DirWatcher};
use ferrodns_go::os::io_error;

/// Placeholder for the upstream servers of the `.` block.
pub const UPSTREAM_SERVERS_VAR: &str = "__PILLAR__UPSTREAM__SERVERS__";
/// Placeholder for the kube-dns (upstream Service) ClusterIP.
pub const CLUSTER_DNS_VAR: &str = "__PILLAR__CLUSTER__DNS__";
/// Placeholder for the listen IPs.
pub const LOCAL_DNS_VAR: &str = "__PILLAR__LOCAL__DNS__";
/// Placeholder left in `bind` lines by the IPVS-mode install; blanked.
pub const DNS_SERVER_VAR: &str = "__PILLAR__DNS__SERVER__";
/// Placeholder of the successor repo's master for the `prometheus` listen address (substituted
/// only when present, with `-prometheus-listen-address`).
pub const PROMETHEUS_ENDPOINT_VAR: &str = "__PILLAR__PROMETHEUS__ENDPOINT__";
/// The upstream text used when `upstreamNameservers` is empty.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// The default `-kubednscm` directory, used when the flag is empty and it exists.
pub const DEFAULT_KUBEDNS_DIR: &str = "/etc/kube-dns";
/// The default `-prometheus-listen-address` of the successor repo's master.
pub const DEFAULT_PROMETHEUS_LISTEN_ADDRESS: &str = ":9253";
/// The metric label counted for every failure here.
pub const CONFIGMAP_ERROR: &str = "configmap";

const TCP_BLOCK: &str =
    "\n    forward . __PILLAR__UPSTREAM__SERVERS__ {\n            force_tcp\n    }\n";
const UDP_BLOCK_HEAD: &str = "\n    forward . ";
const STUB_CACHE_TTL: u32 = 30;

/// Where failures are counted: the caller bumps
/// `coredns_nodecache_setup_errors_total{errortype=<kind>}`. The kind is always
/// [`CONFIGMAP_ERROR`] here. Any `Fn(&str) + Send + Sync` closure is a sink.
pub trait ErrorSink: Send + Sync {
    /// One error of this kind happened.
    fn error(&self, kind: &str);
}

impl<F: Fn(&str) + Send + Sync> ErrorSink for F {
    fn error(&self, kind: &str) {
        self(kind)
    }
}

/// The Corefile text for `__PILLAR__CLUSTER__DNS__`, from the environment as upstream: the
/// variable named after `-upstreamsvc` (`-` → `_`, upper-cased, `_SERVICE_HOST`; upstream DS:
/// `KUBE_DNS_UPSTREAM_SERVICE_HOST`), parsed as an IP and printed as Go prints IPs. When it is
/// missing or not an IP, logs upstream's warning and returns Go's text for a nil IP, `<nil>`.
/// Read once at startup.
pub fn cluster_dns_from_env(upstream_svc: &str) -> String {
    cluster_dns_from(upstream_svc, |name| std::env::var(name).ok())
}

/// [`cluster_dns_from_env`] with the environment given as a lookup function.
pub fn cluster_dns_from(upstream_svc: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let reference = format!(
        "${}_SERVICE_HOST",
        upstream_svc.replace('-', "_").to_uppercase()
    );
    let value = go_expand_env(&reference, &lookup);
    match kubedns::parse_ip(&value) {
        Some(ip) => go_ip_string(ip),
        None => {
            warn!(target: "node-cache",
                "Unable to lookup IP address of Upstream service {}, env {} `{}`",
                upstream_svc, reference, value
            );
            "<nil>".to_string()
        }
    }
}

/// Go's `os.ExpandEnv` for `$NAME` / `${NAME}` references (unset → empty).
fn go_expand_env(s: &str, lookup: &impl Fn(&str) -> Option<String>) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            out.push_str(&s[last..i]);
            let rest = &s[i + 1..];
            let (name, width) = if let Some(inner) = rest.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) if end > 0 => (&inner[..end], end + 2),
                    // Go drops a bad `${...` syntax.
                    Some(_) => ("", 2),
                    None => ("", 1),
                }
            } else if rest
                .bytes()
                .next()
                .is_some_and(|c| b"*#$@!?-".contains(&c) || c.is_ascii_digit())
            {
                (&rest[..1], 1)
            } else {
                let n = rest
                    .bytes()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    .count();
                (&rest[..n], n)
            };
            if name.is_empty() && width > 0 {
                // `${}`-style bad syntax: nothing substituted.
            } else if name.is_empty() {
                // A lone `$` followed by something that is not a name is kept.
                out.push('$');
            } else {
                out.push_str(&lookup(name).unwrap_or_default());
            }
            i += 1 + width;
            last = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[last.min(s.len())..]);
    out
}

/// Go's `net.IP.String()`: IPv4-mapped IPv6 addresses print as IPv4.
fn go_ip_string(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        v4 => v4.to_string(),
    }
}

/// What [`render`] needs besides the template and the kube-dns config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderParams {
    /// Text for `__PILLAR__CLUSTER__DNS__` (see [`cluster_dns_from_env`]).
    pub cluster_dns: String,
    /// The raw `-localip` value (comma-separated).
    pub local_ip: String,
    /// The raw `-dns.port` value.
    pub port: String,
    /// `-prometheus-listen-address`: substituted for [`PROMETHEUS_ENDPOINT_VAR`] when `Some`
    /// and the template has it (1.26.8 has no such flag: `None` leaves the text alone).
    pub prometheus_listen_address: Option<String>,
}

/// The result of [`render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The Corefile bytes.
    pub corefile: Vec<u8>,
    /// The upstream servers text put in (`/etc/resolv.conf` or the space-joined list).
    pub upstream_servers: String,
    /// Custom upstreams were given but the exact TCP block was absent, so the placeholder was
    /// replaced where it stood (upstream logs a warning then).
    pub tcp_block_missing: bool,
}

fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return hay.to_vec();
    }
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Dual-stack `-localip` (addresses of both families, which upstream refuses): every one-line
/// `bind` that names one of the listen addresses gets the ones it lacks appended, so that the
/// upstream ConfigMap (`bind 169.254.20.10 10.96.0.10` after the install substitution) also
/// listens on the IPv6 addresses. Single-family values, and `bind` lines with a block or a
/// comment, are left exactly as written.
fn bind_both_families(corefile: Vec<u8>, local_ip: &str) -> Vec<u8> {
    let ips: Vec<&str> = local_ip.split(',').filter(|p| !p.is_empty()).collect();
    let v6 = ips.iter().filter(|p| p.contains(':')).count();
    if v6 == 0 || v6 == ips.len() {
        return corefile;
    }
    let Ok(text) = std::str::from_utf8(&corefile) else {
        return corefile;
    };
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let mut words = body.split_whitespace();
        let plain = !body.contains(['{', '}', '#']);
        if plain && words.next() == Some("bind") {
            let listed: Vec<&str> = words.collect();
            if listed.iter().any(|w| ips.contains(w)) {
                out.push_str(body);
                for ip in ips.iter().filter(|ip| !listed.contains(ip)) {
                    out.push(' ');
                    out.push_str(ip);
                }
                out.push_str(&line[body.len()..]);
                continue;
            }
        }
        out.push_str(line);
    }
    out.into_bytes()
}

/// The stub-domain blocks (§3.4), one per domain in sorted order.
pub fn stub_domain_blocks(config: &KubeDnsConfig, local_ip: &str, port: &str) -> String {
    let bind = local_ip.replace(',', " ");
    let mut out = String::new();
    for (domain, servers) in &config.stub_domains {
        out.push_str(&format!(
            "\n{domain}:{port} {{\n    errors\n    cache {STUB_CACHE_TTL}\n    bind {bind}\n    forward . {}\n}}\n",
            servers.join(" ")
        ));
    }
    out
}

/// The Corefile for this template and config (§3.3 steps 3–9, without validation and I/O).
pub fn render(template: &[u8], config: &KubeDnsConfig, params: &RenderParams) -> Rendered {
    let stubs = stub_domain_blocks(config, &params.local_ip, &params.port);
    let mut base = template.to_vec();
    let mut upstream = config.upstream_nameservers.join(" ");
    let mut tcp_block_missing = false;
    if upstream.is_empty() {
        upstream = RESOLV_CONF.to_string();
        base = replace_all(&base, UPSTREAM_SERVERS_VAR.as_bytes(), upstream.as_bytes());
    } else {
        let udp = format!("{UDP_BLOCK_HEAD}{upstream}\n");
        base = replace_all(&base, TCP_BLOCK.as_bytes(), udp.as_bytes());
        if contains(&base, UPSTREAM_SERVERS_VAR.as_bytes()) {
            tcp_block_missing = true;
            base = replace_all(&base, UPSTREAM_SERVERS_VAR.as_bytes(), upstream.as_bytes());
        }
    }
    base = replace_all(
        &base,
        CLUSTER_DNS_VAR.as_bytes(),
        params.cluster_dns.as_bytes(),
    );
    base = replace_all(
        &base,
        LOCAL_DNS_VAR.as_bytes(),
        params.local_ip.replace(',', " ").as_bytes(),
    );
    base = replace_all(&base, DNS_SERVER_VAR.as_bytes(), b"");
    base = bind_both_families(base, &params.local_ip);
    if let Some(prom) = &params.prometheus_listen_address {
        base = replace_all(&base, PROMETHEUS_ENDPOINT_VAR.as_bytes(), prom.as_bytes());
    }
    base.extend_from_slice(stubs.as_bytes());
    Rendered {
        corefile: base,
        upstream_servers: upstream,
        tcp_block_missing,
    }
}

/// Why one rewrite did not happen (each is logged and counted as `configmap`).
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// §3.3 step 1 failed; logged as `Invalid config: ...`.
    #[error("Invalid config: {0}")]
    Invalid(#[from] kubedns::ForwardError),
    /// The template could not be read.
    #[error("Failed to read node-cache coreFile {path} - {message}")]
    ReadTemplate {
        /// The template path.
        path: PathBuf,
        /// Go's wording of the OS error.
        message: String,
    },
    /// The Corefile could not be written.
    #[error("Failed to write config file {path} - err {message}")]
    Write {
        /// The output path.
        path: PathBuf,
        /// Go's wording of the OS error.
        message: String,
    },
}

/// Writes the Corefile from the template (upstream's `updateCorefile`).
pub struct CorefileWriter {
    /// `-basecorefile`.
    pub base_corefile: PathBuf,
    /// The output path (CoreDNS's `-conf`).
    pub corefile: PathBuf,
    /// Substitution values.
    pub params: RenderParams,
    /// `-reloadwithsignal`: SIGUSR1 to this process after each write.
    pub reload_with_signal: bool,
    /// Where failures are counted.
    pub sink: Arc<dyn ErrorSink>,
}

impl CorefileWriter {
    /// Validate, render and write; log as upstream (`Updated Corefile with ...`, `Using config
    /// file:` + text, the TCP-block warning, errors) and count failures on the sink.
    pub fn update(&self, config: &KubeDnsConfig) -> Result<(), UpdateError> {
        let result = self.try_update(config);
        if let Err(e) = &result {
            error!(target: "node-cache", "{e}");
            self.sink.error(CONFIGMAP_ERROR);
        }
        result
    }

    fn try_update(&self, config: &KubeDnsConfig) -> Result<(), UpdateError> {
        config.validate_forward()?;
        let template =
            read_file(&self.base_corefile).map_err(|message| UpdateError::ReadTemplate {
                path: self.base_corefile.clone(),
                message,
            })?;
        let rendered = render(&template, config, &self.params);
        if rendered.tcp_block_missing {
            warn!(target: "node-cache", "Did not find TCP upstream block to replace, assuming upstreams already use UDP.");
        }
        write_file(&self.corefile, &rendered.corefile).map_err(|message| UpdateError::Write {
            path: self.corefile.clone(),
            message,
        })?;
        info!(target: "node-cache",
            "Updated Corefile with {} custom stubdomains and upstream servers {}",
            config.stub_domains.len(),
            rendered.upstream_servers
        );
        info!(target: "node-cache", "Using config file:\n{}", String::from_utf8_lossy(&rendered.corefile));
        if self.reload_with_signal {
            let pid = nix::unistd::Pid::this();
            info!(target: "node-cache", "Sending reload signal to PID {pid}");
            if let Err(e) = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1) {
                error!(target: "node-cache", "Failed to trigger CoreDNS reload: {e}");
            }
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| io_error("open", path.display(), &e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| io_error("read", path.display(), &e))?;
    Ok(bytes)
}

/// Go's `os.WriteFile(path, data, 0666)`: create or truncate in place, then write.
fn write_file(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o666)
        .open(path)
        .map_err(|e| io_error("open", path.display(), &e))?;
    file.write_all(data)
        .map_err(|e| io_error("write", path.display(), &e))
}

/// Everything [`ConfigSync::start`] needs; every path is a parameter.
#[derive(Debug, Clone)]
pub struct ConfigOptions {
    /// `-basecorefile` (default `/etc/coredns/Corefile.base`); its directory is watched.
    pub base_corefile: PathBuf,
    /// The output Corefile (CoreDNS's `-conf`, `/etc/Corefile` in the DS).
    pub corefile: PathBuf,
    /// `-kubednscm`; `None` (the flag empty) means [`ConfigOptions::default_kubedns_dir`] if
    /// it exists, else no kube-dns sync.
    pub kubedns_dir: Option<PathBuf>,
    /// The fallback kube-dns directory ([`DEFAULT_KUBEDNS_DIR`]).
    pub default_kubedns_dir: PathBuf,
    /// Substitution values.
    pub params: RenderParams,
    /// `-reloadwithsignal`.
    pub reload_with_signal: bool,
    /// Poll period of the kube-dns directory ([`syncdir::DEFAULT_PERIOD`]).
    pub kubedns_period: Duration,
    /// Poll period of the template's directory ([`syncdir::DEFAULT_PERIOD`]).
    pub base_period: Duration,
}

impl ConfigOptions {
    /// Options with upstream's defaults for the paths and periods.
    pub fn new(corefile: impl Into<PathBuf>, params: RenderParams) -> ConfigOptions {
        ConfigOptions {
            base_corefile: PathBuf::from("/etc/coredns/Corefile.base"),
            corefile: corefile.into(),
            kubedns_dir: None,
            default_kubedns_dir: PathBuf::from(DEFAULT_KUBEDNS_DIR),
            params,
            reload_with_signal: false,
            kubedns_period: syncdir::DEFAULT_PERIOD,
            base_period: syncdir::DEFAULT_PERIOD,
        }
    }
}

/// The Corefile keeper: startup writes, then a Tokio task re-rendering on directory changes.
pub struct ConfigSync {
    task: tokio::task::JoinHandle<()>,
}

struct Watched {
    watcher: DirWatcher,
    period: Duration,
    /// Its file-system events, watched from before its first read so that no change after that
    /// read goes unseen.
    events: Option<syncdir::DirEvents>,
}

/// A watched directory while the task runs: checked on every tick and as soon as an event
/// shows a change.
struct Running {
    watched: Watched,
    ticker: tokio::time::Interval,
}

impl ConfigSync {
    /// §1.1 steps 4.4 and 4.5. Synchronously: write the Corefile with an empty kube-dns config;
    /// pick the kube-dns directory (`-kubednscm`, else the default if it exists, else log
    /// `Skipping kube-dns configmap sync as no directory was specified`); read it once and
    /// rewrite with its config; read the template's directory once. A directory whose first
    /// read fails logs `Failed to sync <kube-dns|node-local-dns> config directory <dir>, err:
    /// ...` and is not watched. Content that fails to parse or validate at the first read is
    /// logged the same way (after upstream's `Invalid ...` lines), but the directory stays
    /// watched, so a corrected ConfigMap is applied; upstream stops watching it until a
    /// restart. Then spawn the task: a kube-dns change that parses and
    /// validates rewrites with it (an invalid one is logged and the old config kept); a
    /// template-directory change rewrites with the latest kube-dns config. The task ends when
    /// `stop` turns true or its sender is dropped.
    ///
    /// With `reload_with_signal`, a SIGUSR1 handler is installed first (through Tokio), so the
    /// signals sent before the server listens for SIGUSR1 are ignored, as Go ignores them,
    /// instead of killing the process.
    ///
    /// Must be called within a Tokio runtime (it spawns a task).
    pub fn start(
        opts: ConfigOptions,
        sink: Arc<dyn ErrorSink>,
        stop: watch::Receiver<bool>,
    ) -> ConfigSync {
        if opts.reload_with_signal
            && let Err(e) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        {
            error!(target: "node-cache", "Failed to install the SIGUSR1 handler: {e}");
        }
        let writer = CorefileWriter {
            base_corefile: opts.base_corefile.clone(),
            corefile: opts.corefile.clone(),
            params: opts.params.clone(),
            reload_with_signal: opts.reload_with_signal,
            sink,
        };
        let _ = writer.update(&KubeDnsConfig::default());

        let kubedns_dir = match &opts.kubedns_dir {
            Some(dir) => Some(dir.clone()),
            None => match std::fs::metadata(&opts.default_kubedns_dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                _ => Some(opts.default_kubedns_dir.clone()),
            },
        };
        let mut current = KubeDnsConfig::default();
        let mut kube = None;
        match kubedns_dir {
            Some(dir) => {
                let events = syncdir::DirEvents::watch(&dir);
                let mut watcher = DirWatcher::new(dir);
                match watcher.once() {
                    Ok(snap) => {
                        match kubedns::parse(&snap.data) {
                            Ok(cfg) => {
                                let _ = writer.update(&cfg);
                                current = cfg;
                            }
                            Err(e) => {
                                e.log();
                                log_first_sync_failure("kube-dns", watcher.dir(), &e);
                            }
                        }
                        kube = Some(Watched {
                            watcher,
                            period: opts.kubedns_period,
                            events,
                        });
                    }
                    Err(e) => log_first_sync_failure("kube-dns", watcher.dir(), &e),
                }
            }
            None => {
                info!(target: "node-cache", "Skipping kube-dns configmap sync as no directory was specified")
            }
        }

        let base_dir = go_dir(&opts.base_corefile);
        let base_events = syncdir::DirEvents::watch(&base_dir);
        let mut base_watcher = DirWatcher::new(base_dir);
        let base = match base_watcher.once() {
            Ok(snap) => {
                if let Err(e) = kubedns::parse(&snap.data) {
                    e.log();
                    log_first_sync_failure("node-local-dns", base_watcher.dir(), &e);
                }
                Some(Watched {
                    watcher: base_watcher,
                    period: opts.base_period,
                    events: base_events,
                })
            }
            Err(e) => {
                log_first_sync_failure("node-local-dns", base_watcher.dir(), &e);
                None
            }
        };

        let task = tokio::spawn(run(writer, current, kube, base, stop));
        ConfigSync { task }
    }

    /// Wait for the task to end (after the stop signal).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

fn log_first_sync_failure(name: &str, dir: &Path, err: &dyn std::fmt::Display) {
    error!(target: "node-cache",
        "Failed to sync {} config directory {}, err: {}",
        name,
        dir.display(),
        err
    );
}

/// Go's `path.Dir`: the directory of the template (`.` for a bare name).
fn go_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => PathBuf::from("."),
        Some(p) => p.to_path_buf(),
        None => path.to_path_buf(),
    }
}

async fn tick(w: &mut Option<Running>) -> Option<DirSnapshot> {
    match w {
        Some(r) => {
            match &mut r.watched.events {
                Some(events) => tokio::select! {
                    _ = r.ticker.tick() => {}
                    _ = events.changed() => r.ticker.reset(),
                },
                None => {
                    r.ticker.tick().await;
                }
            }
            r.watched.watcher.poll()
        }
        None => std::future::pending().await,
    }
}

async fn run(
    writer: CorefileWriter,
    mut current: KubeDnsConfig,
    kube: Option<Watched>,
    base: Option<Watched>,
    mut stop: watch::Receiver<bool>,
) {
    let with_ticker = |w: Watched| Running {
        ticker: syncdir::ticker(w.period),
        watched: w,
    };
    let mut kube = kube.map(with_ticker);
    let mut base = base.map(with_ticker);
    loop {
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            snap = tick(&mut kube) => {
                let Some(snap) = snap else { continue };
                match kubedns::parse(&snap.data) {
                    Ok(cfg) => {
                        current = cfg;
                        let _ = writer.update(&current);
                    }
                    Err(e) => e.log(),
                }
            }
            snap = tick(&mut base) => {
                let Some(snap) = snap else { continue };
                // Upstream runs the template directory through the same parser and skips the
                // update when it fails; only the change matters.
                match kubedns::parse(&snap.data) {
                    Ok(_) => {
                        let _ = writer.update(&current);
                    }
                    Err(e) => e.log(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dual_stack_binds_get_every_listen_address() {
        let conf = b"cluster.local:53 {\n    bind 169.254.20.10 10.96.0.10\r\n    health 169.254.20.10:8080\n}\nx:53 {\n    bind 10.0.0.1\n    bind 169.254.20.10 { except 10.0.0.2 }\n}\n";
        let both = super::bind_both_families(conf.to_vec(), "169.254.20.10,10.96.0.10,fd00::a");
        assert_eq!(
            String::from_utf8(both).unwrap(),
            "cluster.local:53 {\n    bind 169.254.20.10 10.96.0.10 fd00::a\r\n    health 169.254.20.10:8080\n}\nx:53 {\n    bind 10.0.0.1\n    bind 169.254.20.10 { except 10.0.0.2 }\n}\n"
        );
        // One family: the file as written, whatever its binds lack.
        let one = super::bind_both_families(conf.to_vec(), "169.254.20.10,10.0.0.9");
        assert_eq!(one, conf.to_vec());
    }

    use super::*;

    #[test]
    fn expand_env_like_go() {
        let env = |n: &str| match n {
            "KUBE_DNS_UPSTREAM_SERVICE_HOST" => Some("10.0.0.10".to_string()),
            "A" => Some("x".to_string()),
            _ => None,
        };
        assert_eq!(
            go_expand_env("$KUBE_DNS_UPSTREAM_SERVICE_HOST", &env),
            "10.0.0.10"
        );
        assert_eq!(go_expand_env("$A.B", &env), "x.B");
        assert_eq!(go_expand_env("${A}b", &env), "xb");
        assert_eq!(go_expand_env("$NOPE", &env), "");
        assert_eq!(go_expand_env("a$", &env), "a$");
    }

    #[test]
    fn cluster_dns_text() {
        let env = |v: &'static str| move |_: &str| Some(v.to_string());
        assert_eq!(
            cluster_dns_from("kube-dns-upstream", env("10.96.0.10")),
            "10.96.0.10"
        );
        assert_eq!(cluster_dns_from("kube-dns", env("fd00:0:0::a")), "fd00::a");
        assert_eq!(
            cluster_dns_from("kube-dns", env("::ffff:10.0.0.1")),
            "10.0.0.1"
        );
        assert_eq!(cluster_dns_from("kube-dns", env(" 10.0.0.1")), "<nil>");
        assert_eq!(cluster_dns_from("kube-dns", |_: &str| None), "<nil>");
    }

    #[test]
    fn go_dir_of_paths() {
        assert_eq!(
            go_dir(Path::new("/etc/coredns/Corefile.base")),
            PathBuf::from("/etc/coredns")
        );
        assert_eq!(go_dir(Path::new("Corefile.base")), PathBuf::from("."));
    }
}

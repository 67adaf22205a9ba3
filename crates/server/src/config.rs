//! From Corefile text to a ready-to-serve instance: parse, inspect keys, run every plugin's setup
//! in `plugin.cfg` order, check zones and addresses as CoreDNS does, and group the zones into
//! listeners.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ferrodns_corefile::{ParseOptions, Transport, ZoneAddr};
use ferrodns_pkg::vars::{DnsMetrics, Labels};
use ferrodns_plugin::{
    BlockSettings, Chain, Control, CorefileInput, Dispenser, Metrics, Registry, Setup, Shared,
};

use crate::dispatch::{Dispatcher, Site};

/// Why a Corefile could not be loaded. The text is what CoreDNS prints for the same problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Where a Corefile came from, and the process settings that shape it.
#[derive(Clone)]
pub struct Source {
    /// The name used in error messages (`Corefile`, the `-conf` path, or `stdin`).
    pub filename: String,
    /// The text.
    pub text: Vec<u8>,
    /// The `-dns.port` value: the port of `dns://` keys without one.
    pub default_port: String,
}

impl Source {
    /// The built-in Corefile CoreDNS falls back to: `.:<port> { whoami log }`.
    pub fn default_for(port: &str) -> Source {
        Source {
            filename: "Corefile".to_string(),
            text: format!(".:{port} {{\nwhoami\nlog\n}}\n").into_bytes(),
            default_port: port.to_string(),
        }
    }
}

/// One listener to open.
pub struct ListenerSpec {
    /// The listener's label and group key (`dns://:53`, `dns://127.0.0.1:53`).
    pub label: String,
    /// The host part as configured ("" for all addresses).
    pub host: String,
    /// The port.
    pub port: u16,
    /// What it serves.
    pub dispatcher: Arc<Dispatcher>,
}

impl ListenerSpec {
    /// The socket address to bind.
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        if self.host.is_empty() {
            return Ok(SocketAddr::from(([0u8; 16], self.port)));
        }
        let (ip, scope) = match self.host.split_once('%') {
            Some((ip, iface)) => (ip, Some(iface)),
            None => (self.host.as_str(), None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| ConfigError(format!("listen tcp: address {}: invalid", self.host)))?;
        let mut addr = SocketAddr::new(ip, self.port);
        if let (SocketAddr::V6(a), Some(iface)) = (&mut addr, scope) {
            a.set_scope_id(scope_id(iface));
        }
        Ok(addr)
    }

    /// The banner lines for this listener (`example.org.:53`, `.:53 on 127.0.0.1`), each zone
    /// that does not follow RFC 1035's preferred syntax preceded by CoreDNS's warning.
    pub fn banner(&self, port: u16) -> Vec<String> {
        let mut out = Vec::new();
        for z in self.dispatcher.zone_names() {
            if !preferred_syntax(&z) {
                out.push(format!(
                    "Warning: Domain {} does not follow RFC1035 preferred syntax",
                    ferrodns_go::strconv::quote(&z)
                ));
            }
            out.push(if self.host.is_empty() {
                format!("{z}:{port}")
            } else {
                format!("{z}:{port} on {}", self.host)
            });
        }
        out
    }
}

/// CoreDNS's startup check: the root, reverse zones, and names whose labels start with a
/// letter, end with a letter or digit and hold only letters, digits and hyphens.
fn preferred_syntax(zone: &str) -> bool {
    if zone == "." || zone.ends_with(".in-addr.arpa.") || zone.ends_with(".ip6.arpa.") {
        return true;
    }
    let Some(body) = zone.strip_suffix('.') else {
        return false;
    };
    body.split('.').all(|label| {
        let b = label.as_bytes();
        match (b.first(), b.last()) {
            (Some(first), Some(last)) => {
                first.is_ascii_alphabetic()
                    && last.is_ascii_alphanumeric()
                    && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            }
            _ => false,
        }
    })
}

fn scope_id(iface: &str) -> u32 {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/ifindex"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A loaded configuration: every block set up, listeners grouped.
pub struct Instance {
    /// The source it was loaded from.
    pub source: Source,
    /// Each server block's settings after setup, in file order.
    pub blocks: Vec<BlockSettings>,
    /// Listeners, sorted by label.
    pub listeners: Vec<ListenerSpec>,
    /// What the instance's plugins share (HTTP routes, lifecycle hooks).
    pub shared: Arc<Shared>,
}

impl Instance {
    /// The addresses its DNS listeners bind (what a hand-off matches on).
    pub fn dns_addresses(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.bind_addr().ok())
            .collect()
    }

    /// Set `coredns_plugin_enabled` for this instance (when it starts serving).
    pub fn enable_plugin_metrics(&self) {
        enable_plugins(&self.blocks, &DnsMetrics::new(&self.shared.metrics));
    }
}

/// Parse only: the syntax checks CoreDNS does before any plugin runs.
pub fn parse(
    source: &Source,
    registry: &Registry,
) -> Result<Vec<ferrodns_corefile::ServerBlock>, ConfigError> {
    let is_directive = |n: &str| registry.contains(n);
    let env = |k: &str| std::env::var(k).ok();
    let opts = ParseOptions {
        is_directive: &is_directive,
        env: &env,
    };
    ferrodns_corefile::parse(&source.filename, &source.text, &opts)
        .map_err(|e| ConfigError(e.to_string()))
}

/// Load a Corefile: parse it (falling back to the default Corefile when it has no server
/// block), set up every plugin, validate and group. No socket is opened.
pub fn load(
    source: Source,
    registry: &Registry,
    metrics: &Metrics,
    control: Option<Arc<dyn Control>>,
) -> Result<Instance, ConfigError> {
    let mut source = source;
    let mut blocks = parse(&source, registry)?;
    if blocks.is_empty() {
        let port = source.default_port.clone();
        source = Source {
            text: Source::default_for(&port).text,
            ..source
        };
        blocks = parse(&source, registry)?;
    }

    let mut shared = Shared::new(metrics.clone());
    shared.corefile = CorefileInput {
        filename: source.filename.clone(),
        text: source.text.clone(),
    };
    shared.control = control;
    let shared = Arc::new(shared);
    let (settings, errors) = set_up(&source, &blocks, registry, &shared, false);
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }

    let dns_metrics = DnsMetrics::new(metrics);
    crate::logging::register_metrics(metrics);
    crate::udp::register_metrics(metrics);
    let listeners = group(&settings, &dns_metrics)?;
    // CoreDNS switches its debug log on when it builds a server with `debug`, and off when it
    // builds one without: `[DEBUG]` lines follow the Corefile loaded last.
    crate::logging::set_debug(settings.iter().any(|b| b.debug));
    Ok(Instance {
        source,
        blocks: settings,
        listeners,
        shared,
    })
}

/// Check a Corefile without binding anything: parse it, inspect every key, run every plugin's
/// setup (continuing after a failure so that every error is reported), then the zone and
/// address checks. Returns every error found, each with its `file:line` where CoreDNS gives one.
pub fn validate(source: &Source, registry: &Registry) -> Vec<ConfigError> {
    let blocks = match parse(source, registry) {
        Ok(b) if b.is_empty() => return Vec::new(),
        Ok(b) => b,
        Err(e) => return vec![e],
    };
    let shared = Shared::new(Metrics::new());
    let (settings, mut errors) = set_up(source, &blocks, registry, &shared, true);
    if errors.is_empty()
        && let Err(e) = group(&settings, &DnsMetrics::new(&Metrics::new()))
    {
        errors.push(e);
    }
    errors
}

/// Inspect every block's keys, then run every plugin's setup: directive by directive in
/// registry (`plugin.cfg`) order, and for each over the blocks in file order, as CoreDNS does.
/// Stops at the first error unless `all_errors`, which keeps going to report every one.
fn set_up(
    source: &Source,
    blocks: &[ferrodns_corefile::ServerBlock],
    registry: &Registry,
    shared: &Shared,
    all_errors: bool,
) -> (Vec<BlockSettings>, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let mut settings = Vec::with_capacity(blocks.len());
    for b in blocks {
        let zones = match ferrodns_corefile::inspect_keys(b, &source.default_port) {
            Ok(z) => z,
            Err(e) => {
                errors.push(ConfigError(e.to_string()));
                if !all_errors {
                    return (settings, errors);
                }
                Vec::new()
            }
        };
        settings.push(BlockSettings {
            zones,
            ..BlockSettings::default()
        });
    }
    for d in registry.descriptors() {
        for (i, b) in blocks.iter().enumerate() {
            let Some(tokens) = b.directive(d.name) else {
                continue;
            };
            let disp = Dispenser::new(source.filename.clone(), tokens.tokens.clone());
            let mut c = Setup::new(disp, &mut settings[i], shared);
            if let Err(e) = (d.setup)(&mut c) {
                errors.push(ConfigError(e.to_string()));
                if !all_errors {
                    return (settings, errors);
                }
            }
        }
    }
    for b in &settings {
        b.handles
            .set_plugins(b.plugins.iter().map(|p| p.name()).collect());
    }
    (settings, errors)
}

/// One (zone, port, address) a block asks for, as CoreDNS's `zoneAddr`.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ZoneKey {
    transport: &'static str,
    zone: String,
    address: String,
    port: String,
}

impl ZoneKey {
    fn unbound(&self) -> ZoneKey {
        ZoneKey {
            address: String::new(),
            ..self.clone()
        }
    }
}

impl std::fmt::Display for ZoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.transport, self.zone, self.port)?;
        if !self.address.is_empty() {
            write!(f, " on {}", self.address)?;
        }
        Ok(())
    }
}

fn hosts_of(b: &BlockSettings) -> Vec<String> {
    if b.bound {
        b.listen_hosts.clone()
    } else {
        vec![String::new()]
    }
}

/// The duplicate and overlap checks, then one listener per `transport://host:port`.
fn group(blocks: &[BlockSettings], metrics: &DnsMetrics) -> Result<Vec<ListenerSpec>, ConfigError> {
    // Validation, in block and key order, as CoreDNS's overlap checker.
    let mut registered: HashMap<ZoneKey, ZoneKey> = HashMap::new();
    let mut unbound: HashMap<ZoneKey, ZoneKey> = HashMap::new();
    for b in blocks {
        for z in &b.zones {
            for h in hosts_of(b) {
                let key = ZoneKey {
                    transport: z.transport.scheme(),
                    zone: z.zone.clone(),
                    address: h,
                    port: z.port.clone(),
                };
                if registered.contains_key(&key) {
                    return Err(ConfigError(format!(
                        "cannot serve {key} - it is already defined"
                    )));
                }
                let uk = key.unbound();
                if let Some(already) = unbound.get(&uk) {
                    let overlap = if key.address.is_empty() {
                        Some(already.clone())
                    } else if registered.contains_key(&uk) {
                        Some(uk.clone())
                    } else {
                        None
                    };
                    if let Some(o) = overlap {
                        return Err(ConfigError(format!(
                            "cannot serve {key} - zone overlap listener capacity with {o}"
                        )));
                    }
                }
                registered.insert(key.clone(), key.clone());
                unbound.insert(uk, key);
            }
        }
    }

    // Grouping.
    struct Group {
        host: String,
        port: u16,
        sites: Vec<Arc<Site>>,
        debug: bool,
        stacktrace: bool,
        limits: crate::tcp::Limits,
    }
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for b in blocks {
        let chain = Chain::new(b.plugins.clone());
        for z in &b.zones {
            check_transport(z)?;
            let port: u16 = z
                .port
                .parse()
                .map_err(|_| ConfigError(format!("invalid port {:?} in {z}", z.port)))?;
            for h in hosts_of(b) {
                let hostport = if h.contains(':') {
                    format!("[{h}]:{port}")
                } else {
                    format!("{h}:{port}")
                };
                let label = format!("{}://{hostport}", z.transport.scheme());
                let g = groups.entry(label).or_insert_with(|| Group {
                    host: h.clone(),
                    port,
                    sites: Vec::new(),
                    debug: false,
                    stacktrace: false,
                    limits: crate::tcp::Limits::default(),
                });
                g.sites.push(Arc::new(
                    Site::new(&z.zone, chain.clone()).with_udp_cap(b.udp_size_cap),
                ));
                g.debug |= b.debug;
                // CoreDNS keeps the last block's setting for the whole listener.
                g.stacktrace = b.stacktrace;
                // Timeouts: each value a block sets replaces the one before (last one wins).
                g.limits.apply(&b.timeouts);
            }
        }
    }
    Ok(groups
        .into_iter()
        .map(|(label, g)| ListenerSpec {
            dispatcher: Arc::new(
                Dispatcher::new(&label, g.sites, g.debug, g.stacktrace, metrics.clone())
                    .with_limits(g.limits),
            ),
            label,
            host: g.host,
            port: g.port,
        })
        .collect())
}

/// `coredns_plugin_enabled` = 1 for every handler of every block that has `prometheus`, per
/// listen address and zone, as CoreDNS's metrics plugin sets it when it starts (the family is
/// reset first, as on a restart).
fn enable_plugins(blocks: &[BlockSettings], metrics: &DnsMetrics) {
    metrics.plugin_enabled.clear();
    for b in blocks {
        if !b.plugins.iter().any(|p| p.name() == "prometheus") {
            continue;
        }
        for z in &b.zones {
            for h in hosts_of(b) {
                let host = if h.contains(':') { format!("[{h}]") } else { h };
                let server = format!("{}://{host}:{}", z.transport.scheme(), z.port);
                for p in &b.plugins {
                    let labels: Labels = vec![
                        ("server", server.clone()),
                        ("zone", z.zone.clone()),
                        ("view", String::new()),
                        ("name", p.name().to_string()),
                    ];
                    metrics.plugin_enabled.get_or_create(&labels).set(1);
                }
            }
        }
    }
}

fn check_transport(z: &ZoneAddr) -> Result<(), ConfigError> {
    if matches!(z.transport, Transport::Dns) {
        return Ok(());
    }
    Err(ConfigError(format!(
        "ferrodns does not serve the {}:// transport yet ({z})",
        z.transport.scheme()
    )))
}

//! Reading the `dnstap` directive from the Corefile, as CoreDNS v1.14.7 does:
//!
//! ```text
//! dnstap SOCKET [full] [writebuffer] [queue] {
//!     identity IDENTITY
//!     version VERSION
//!     extra EXTRA
//!     skipverify
//! }
//! dnstap listen SOCKET [full] {
//!     identity IDENTITY
//!     version VERSION
//!     extra EXTRA
//!     tls CERT KEY [CA]
//!     skipverify
//! }
//! ```

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ferrodns_plugin::{Lifecycle, Setup, SetupError, async_trait};

use crate::io::{
    Endpoint, ListenTls, Listener, Outgoing, QUEUE_UNIT, Transport, WRITE_BUFFER_UNIT,
};
use crate::{BlockTaps, Dnstap, NAME, Sink, TARGET, Tap};

/// The largest `writebuffer` (MiB).
pub const MAX_WRITE_BUFFER: i64 = 1024;
/// The largest `queue` (units of 10,000 messages).
pub const MAX_QUEUE: i64 = 4096;

/// One `dnstap` line as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where frames go (or, with `listen`, where receivers connect).
    pub endpoint: Endpoint,
    /// `listen`: accept receivers instead of connecting to one.
    pub listen: bool,
    /// `full`: include the DNS messages' bytes.
    pub full: bool,
    /// The TCP send buffer in MiB (1..=1024, default 1).
    pub write_buffer: i64,
    /// The queue in units of 10,000 messages (1..=4096, default 1).
    pub queue: i64,
    /// The identity sent (the hostname by default).
    pub identity: Vec<u8>,
    /// The version sent.
    pub version: Vec<u8>,
    /// The `extra` format, empty for none.
    pub extra: String,
    /// `skipverify`.
    pub skip_verify: bool,
    /// `tls CERT KEY [CA]` (listeners only).
    pub tls: Option<ListenTls>,
}

/// The host's name as Go's `os.Hostname` reads it on Linux.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim_end_matches('\n').to_string())
        .unwrap_or_default()
}

/// The version sent when none is configured: this server's name and version.
pub fn default_version() -> String {
    format!("ferrodns-{}", env!("CARGO_PKG_VERSION"))
}

/// Go's `url.Parse(s).Host` for `tcp://` and `tls://` endpoints; `None` where Go's parser
/// fails.
fn url_host(s: &str) -> Option<String> {
    let rest = s.split_once("://")?.1;
    if rest.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = match authority.rfind('@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    let port = if let Some(inner) = host.strip_prefix('[') {
        let close = inner.find(']')?;
        let after = &inner[close + 1..];
        if after.is_empty() {
            ""
        } else {
            after.strip_prefix(':')?
        }
    } else {
        match host.rfind(':') {
            Some(i) => &host[i + 1..],
            None => "",
        }
    };
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(host.to_string())
}

fn endpoint_of(s: &str) -> Option<Endpoint> {
    if s.starts_with("tls://") {
        Some(Endpoint {
            transport: Transport::Tls,
            address: url_host(s)?,
        })
    } else if s.starts_with("tcp://") {
        Some(Endpoint {
            transport: Transport::Tcp,
            address: url_host(s)?,
        })
    } else {
        Some(Endpoint {
            transport: Transport::Unix,
            address: s.strip_prefix("unix://").unwrap_or(s).to_string(),
        })
    }
}

/// Read every `dnstap` line of the block.
pub fn parse(c: &mut Setup<'_>) -> Result<Vec<Config>, SetupError> {
    let mut out = Vec::new();
    while c.next() {
        let mut args = c.remaining_args();
        if args.is_empty() {
            return Err(c.arg_err());
        }
        let listen = args[0] == "listen";
        if listen {
            if args.len() < 2 {
                return Err(c.err("dnstap listen requires an endpoint argument"));
            }
            args.remove(0);
        }
        let mut write_buffer = 1;
        let mut queue = 1;
        if let Some(arg) = args.get(2) {
            let v = ferrodns_go::strconv::atoi(arg).map_err(|e| {
                c.err(format_args!(
                    "dnstap: invalid MultipleTcpWriteBuf {}: {e}",
                    ferrodns_go::strconv::quote(arg)
                ))
            })?;
            if !(1..=MAX_WRITE_BUFFER).contains(&v) {
                return Err(c.err(format_args!(
                    "dnstap: MultipleTcpWriteBuf must be between 1 and {MAX_WRITE_BUFFER} (MiB units): {v}"
                )));
            }
            write_buffer = v;
        }
        if let Some(arg) = args.get(3) {
            let v = ferrodns_go::strconv::atoi(arg).map_err(|e| {
                c.err(format_args!(
                    "dnstap: invalid MultipleQueue {}: {e}",
                    ferrodns_go::strconv::quote(arg)
                ))
            })?;
            if !(1..=MAX_QUEUE).contains(&v) {
                return Err(c.err(format_args!(
                    "dnstap: MultipleQueue must be between 1 and {MAX_QUEUE} (x10k messages): {v}"
                )));
            }
            queue = v;
        }
        let Some(endpoint) = endpoint_of(&args[0]) else {
            return Err(c.arg_err());
        };
        let full = args.get(1).is_some_and(|a| a == "full");
        let mut cfg = Config {
            endpoint,
            listen,
            full,
            write_buffer,
            queue,
            identity: hostname().into_bytes(),
            version: default_version().into_bytes(),
            extra: String::new(),
            skip_verify: false,
            tls: None,
        };
        while c.next_block() {
            match c.val() {
                "skipverify" => cfg.skip_verify = true,
                "tls" => {
                    if !listen {
                        return Err(c.err("tls directive only valid for listeners"));
                    }
                    let a = c.remaining_args();
                    if a.len() < 2 {
                        return Err(c.err("tls requires cert and key file paths"));
                    }
                    cfg.tls = Some(ListenTls {
                        cert: a[0].clone(),
                        key: a[1].clone(),
                        ca: a.get(2).cloned(),
                    });
                }
                "identity" | "version" | "extra" => {
                    let key = c.val().to_string();
                    if !c.next_arg() {
                        return Err(c.arg_err());
                    }
                    let v = c.val().to_string();
                    match key.as_str() {
                        "identity" => cfg.identity = v.into_bytes(),
                        "version" => cfg.version = v.into_bytes(),
                        _ => cfg.extra = v,
                    }
                }
                other => {
                    let msg = format!("unknown property '{other}'");
                    return Err(c.err(msg));
                }
            }
        }
        out.push(cfg);
    }
    Ok(out)
}

struct Hooks {
    sinks: Vec<Arc<Sink>>,
}

#[async_trait]
impl Lifecycle for Hooks {
    async fn on_startup(&self) -> Result<(), SetupError> {
        for sink in &self.sinks {
            match &**sink {
                Sink::Outgoing(o) => {
                    if let Err(e) = o.connect().await {
                        tracing::error!(target: TARGET, "No connection to dnstap endpoint: {e}");
                    }
                }
                Sink::Listener(l) => {
                    if let Err(e) = l.listen().await {
                        tracing::error!(target: TARGET, "Failed to start dnstap listener: {e}");
                    }
                }
            }
        }
        Ok(())
    }

    async fn on_restart(&self) {
        self.close().await;
    }

    async fn on_final_shutdown(&self) {
        self.close().await;
    }
}

impl Hooks {
    async fn close(&self) {
        for sink in &self.sinks {
            match &**sink {
                Sink::Listener(l) => l.close_and_wait().await,
                other => other.close(),
            }
        }
    }
}

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let configs = parse(c).map_err(|e| SetupError::plugin(NAME, e))?;
    let mut taps = Vec::with_capacity(configs.len());
    let mut sinks = Vec::with_capacity(configs.len());
    for cfg in configs {
        let sink = if cfg.listen {
            let l = Listener::new(cfg.endpoint.clone());
            if let Ok(mut t) = l.tls.lock() {
                *t = cfg.tls.clone();
            }
            l.skip_verify.store(cfg.skip_verify, Ordering::Relaxed);
            Sink::Listener(l)
        } else {
            Sink::Outgoing(Outgoing::new(
                cfg.endpoint.clone(),
                cfg.queue as usize * QUEUE_UNIT,
                cfg.write_buffer as usize * WRITE_BUFFER_UNIT,
                cfg.skip_verify,
            ))
        };
        let sink = Arc::new(sink);
        sinks.push(sink.clone());
        taps.push(Arc::new(Tap::new(&cfg, sink)));
    }
    c.add_lifecycle(Arc::new(Hooks { sinks }));
    c.set_block_state(BlockTaps(taps.clone()));
    c.add_plugin(Arc::new(Dnstap { taps }));
    Ok(())
}

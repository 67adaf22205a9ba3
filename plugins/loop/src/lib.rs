//! # loop
//!
//! Detects forwarding loops that lead back to the server itself, as CoreDNS's *loop* plugin
//! does. At startup the plugin makes up a probe name, `<random>.<random>.<zone>`, and sends one
//! HINFO query for it over UDP to its own server. If that query comes back to the plugin more
//! than twice, a loop is certain: the plugin logs a fatal message and ends the process with
//! status 1. Once a probe exchange completes (whatever the reply), the plugin turns itself off
//! and every query goes straight to the next plugin.
//!
//! ```text
//! loop
//! ```
//!
//! CoreDNS sends the probe to `<first listen host>:<configured port>`; ferrodns sends it to the
//! address its listener actually bound (an unspecified address replaced by the loopback of its
//! family), and names the configured address in the message, as CoreDNS does.

mod setup;
pub use setup::parse;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrodns_go::strconv::quote as go_quote;
use ferrodns_pkg::names::zone_match;
use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, Query};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{
    Descriptor, Lifecycle, Listening, Next, Plugin, PluginError, Reply, Request, SetupError,
    async_trait,
};
use tokio::net::UdpSocket;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// The directive name.
pub const NAME: &str = "loop";

/// The plugin's descriptor, listed in `plugin.cfg`.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// The tracing target of the fatal message: the server's log format prints events of a
/// `fatal:` target as `[FATAL] plugin/loop: ...`.
pub const FATAL_TARGET: &str = "fatal:plugin/loop";

/// How many times the probe may be seen before it is a loop ("more than twice").
const MAX_SEEN: usize = 2;

/// What happens when a loop is found; gets the message. The plugin's default logs it at fatal
/// level and exits with status 1; tests put their own.
pub type OnLoop = Arc<dyn Fn(&str) + Send + Sync>;

/// The request handler and the state the probe shares with it.
pub struct Loop {
    zone: String,
    qname: String,
    /// The probe's destination as the fatal message names it.
    target: Mutex<String>,
    seen: AtomicUsize,
    off: AtomicBool,
    on_loop: OnLoop,
}

impl std::fmt::Debug for Loop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loop")
            .field("zone", &self.zone)
            .field("qname", &self.qname)
            .field("seen", &self.seen())
            .field("disabled", &self.is_disabled())
            .finish()
    }
}

impl Loop {
    /// A handler for `zone` (normalised, `example.org.`) with a fresh random probe name.
    pub fn new(zone: &str) -> Loop {
        Loop::with_probe_name(zone, &probe_name(zone))
    }

    /// A handler with a given probe name (for tests).
    pub fn with_probe_name(zone: &str, qname: &str) -> Loop {
        Loop {
            zone: zone.to_string(),
            qname: qname.to_string(),
            target: Mutex::new(String::new()),
            seen: AtomicUsize::new(0),
            off: AtomicBool::new(false),
            on_loop: Arc::new(fatal),
        }
    }

    /// Replace what happens when a loop is found (tests).
    pub fn on_loop(mut self, f: OnLoop) -> Loop {
        self.on_loop = f;
        self
    }

    /// The zone the probe is made in.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The probe's name (`<r1>.<r2>.<zone>`).
    pub fn probe_name(&self) -> &str {
        &self.qname
    }

    /// How many times the probe has been seen since the last failed exchange.
    pub fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    /// Stop looking at queries.
    pub fn disable(&self) {
        self.off.store(true, Ordering::SeqCst);
    }

    /// Whether the plugin stopped looking at queries.
    pub fn is_disabled(&self) -> bool {
        self.off.load(Ordering::SeqCst)
    }

    /// Set the probe destination the message names.
    pub fn set_target(&self, addr: &str) {
        let mut t = match self.target.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        addr.clone_into(&mut t);
    }

    fn target(&self) -> String {
        match self.target.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn reset(&self) {
        self.seen.store(0, Ordering::SeqCst);
    }

    /// The fatal message for a loop seen from `client`.
    pub fn message(&self, client: SocketAddr) -> String {
        format!(
            "Loop ({} -> {}) detected for zone {}, see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO {}\"",
            go_addr(client),
            self.target(),
            go_quote(&self.zone),
            self.qname
        )
    }
}

#[async_trait]
impl Plugin for Loop {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        if req.qtype() != RecordType::HINFO || self.is_disabled() {
            return next.serve(req).await;
        }
        let name = req.name_lower();
        if zone_match(std::slice::from_ref(&self.zone), &name).is_none() {
            return next.serve(req).await;
        }
        if name == self.qname {
            self.seen.fetch_add(1, Ordering::SeqCst);
        }
        if self.seen() > MAX_SEEN {
            (self.on_loop)(&self.message(req.src));
        }
        next.serve(req).await
    }
}

/// The default loop action: the message at fatal level, then exit with status 1. Only the first
/// caller logs; any other waits on the lock while the process ends.
fn fatal(msg: &str) {
    static EXITING: Mutex<()> = Mutex::new(());
    let _guard = EXITING.lock();
    tracing::error!(target: FATAL_TARGET, "{msg}");
    let _ = std::io::stdout().flush();
    std::process::exit(1);
}

/// A client address as Go prints it: an IPv4-mapped IPv6 address in dotted form.
fn go_addr(a: SocketAddr) -> String {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()).to_string(),
            None => a.to_string(),
        },
        SocketAddr::V4(_) => a.to_string(),
    }
}

/// `<r1>.<r2>.<zone>` with r1, r2 random below 2^62, as CoreDNS's `dnsutil.Join` writes it.
pub fn probe_name(zone: &str) -> String {
    let r1 = rand::random::<u64>() >> 2;
    let r2 = rand::random::<u64>() >> 2;
    if zone == "." {
        format!("{r1}.{r2}.")
    } else {
        format!("{r1}.{r2}.{zone}")
    }
}

/// The probe's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long after startup the probe may still be sent.
    pub deadline: Duration,
    /// The pause after a failed exchange.
    pub retry: Duration,
    /// How long one exchange waits for its reply.
    pub timeout: Duration,
}

impl Default for Timing {
    /// CoreDNS's: 30 s, 1 s, 2 s.
    fn default() -> Self {
        Timing {
            deadline: Duration::from_secs(30),
            retry: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
        }
    }
}

/// Where the probe goes and how the message names it.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The first listen host of the block ("" for every address).
    pub host: String,
    /// The block's port as configured (decimal text).
    pub port: String,
}

impl Destination {
    /// The address to send to: the listener's bound address when it is known, else the
    /// configured host and port; an unspecified address becomes the loopback of its family.
    pub fn resolve(&self, listening: &Listening) -> Option<SocketAddr> {
        let port: Option<u16> = self.port.parse().ok();
        if let Some(b) = port.and_then(|p| listening.lookup(&self.host, p)) {
            return Some(SocketAddr::new(loopback_if_unspecified(b.ip()), b.port()));
        }
        let ip: IpAddr = if self.host.is_empty() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            let bare = self.host.split('%').next().unwrap_or_default();
            bare.parse().ok()?
        };
        Some(SocketAddr::new(loopback_if_unspecified(ip), port?))
    }

    /// The address the message names: CoreDNS's `<host>:<port>` as configured; the bound port
    /// when the configured one was 0.
    pub fn shown(&self, sent_to: Option<SocketAddr>) -> String {
        match sent_to {
            Some(a) if self.port == "0" => {
                ferrodns_go::net::join_host_port(&self.host, &a.port().to_string())
            }
            _ => ferrodns_go::net::join_host_port(&self.host, &self.port),
        }
    }
}

fn loopback_if_unspecified(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// Probe the block's own server until one exchange completes or the deadline passes, then turn
/// the handler off. Waits for the listeners to be bound first (startup hooks run before they
/// are).
pub async fn probe(l: Arc<Loop>, listening: Listening, dest: Destination, timing: Timing) {
    let deadline = Instant::now() + timing.deadline;
    if tokio::time::timeout_at(deadline, listening.wait())
        .await
        .is_err()
    {
        l.disable();
        return;
    }
    while Instant::now() < deadline {
        let to = dest.resolve(&listening);
        l.set_target(&dest.shown(to));
        let done = match to {
            Some(addr) => exchange(addr, l.probe_name(), timing.timeout).await.is_ok(),
            None => false,
        };
        if done {
            break;
        }
        l.reset();
        tokio::time::sleep(timing.retry).await;
    }
    l.disable();
}

/// One plain-UDP exchange of the HINFO probe: Ok once a reply with the query's ID arrives
/// within `timeout`.
pub async fn exchange(to: SocketAddr, qname: &str, timeout: Duration) -> std::io::Result<()> {
    let local: SocketAddr = if to.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(to).await?;
    let id: u16 = rand::random();
    let name = Name::from_ascii(qname).map_err(std::io::Error::other)?;
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name, RecordType::HINFO));
    let bytes = m.to_vec().map_err(std::io::Error::other)?;
    sock.send(&bytes).await?;
    let read = async {
        let mut buf = vec![0u8; 65535];
        loop {
            let n = sock.recv(&mut buf).await?;
            let reply = buf.get(..n).unwrap_or_default();
            // Replies to someone else's ID are skipped, as miekg/dns's client does.
            if reply.len() < 2 || u16::from_be_bytes([reply[0], reply[1]]) != id {
                continue;
            }
            return Message::from_vec(reply)
                .map(|_| ())
                .map_err(std::io::Error::other);
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// The startup task that sends the probe.
pub(crate) struct Prober {
    pub(crate) l: Arc<Loop>,
    pub(crate) listening: Listening,
    pub(crate) host: String,
    pub(crate) port: String,
    pub(crate) task: Mutex<Option<AbortHandle>>,
}

#[async_trait]
impl Lifecycle for Prober {
    async fn on_startup(&self) -> Result<(), SetupError> {
        let dest = Destination {
            host: self.host.clone(),
            port: self.port.clone(),
        };
        // Startup hooks run inside the server's runtime; without one there is nothing to probe.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.l.disable();
            return Ok(());
        };
        let h = rt.spawn(probe(
            self.l.clone(),
            self.listening.clone(),
            dest,
            Timing::default(),
        ));
        if let Ok(mut t) = self.task.lock() {
            *t = Some(h.abort_handle());
        }
        Ok(())
    }

    async fn on_shutdown(&self) {
        let h = match self.task.lock() {
            Ok(mut t) => t.take(),
            Err(_) => None,
        };
        if let Some(h) = h {
            h.abort();
        }
    }
}

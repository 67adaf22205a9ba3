//! # file
//!
//! Serves zones from RFC 1035 zone files as CoreDNS's *file* plugin does: authoritative answers,
//! CNAME chasing inside the zone (names outside it are looked up through the server), wildcards,
//! DNAME, referrals with glue, NXDOMAIN and NODATA with the SOA. AXFR and IXFR are refused.
//! Zone files are checked for a new SOA serial every minute by default.
//!
//! ```text
//! file DBFILE [ZONES...] {
//!     reload DURATION
//!     reload_by_mtime
//!     fallthrough [ZONES...]
//! }
//! ```

pub mod dnssec;
pub mod lookup;
pub mod master;
mod setup;
pub mod zone;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ferrodns_go::os::io_error as go_io_error;
use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{
    Descriptor, Lifecycle, Next, Plugin, PluginError, Reply, Request, SetupError, async_trait,
};
use tokio::sync::watch;

use ferrodns_pkg::names;
pub use ferrodns_pkg::names::Fall;
pub use lookup::{Outcome, Upstream, lookup};
pub use setup::parse;
pub use zone::{ParseError, ZoneData, parse as parse_zone};

/// The directive name.
pub const NAME: &str = "file";

/// The tracing target of the lines this plugin logs.
pub const TARGET: &str = "plugin/file";

/// How often zone files are checked by default.
pub const DEFAULT_RELOAD: Duration = Duration::from_secs(60);

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// One zone served from a file, with its data swapped whole on reload.
#[derive(Debug)]
pub struct Zone {
    /// The origin as configured (`example.org.`).
    pub origin: String,
    /// The file.
    pub file: String,
    /// How often the file is checked (zero: never).
    pub reload: Duration,
    /// Reload every period whatever the serial (`reload_by_mtime`, as upstream behaves).
    pub by_mtime: bool,
    pub(crate) data: RwLock<Arc<ZoneData>>,
}

impl Zone {
    /// The current data.
    pub fn data(&self) -> Arc<ZoneData> {
        match self.data.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, d: ZoneData) {
        match self.data.write() {
            Ok(mut g) => *g = Arc::new(d),
            Err(p) => *p.into_inner() = Arc::new(d),
        }
    }

    /// One reload check (blocking I/O): read the file and take it if its SOA serial changed
    /// (any serial but 0 with `reload_by_mtime`). A broken file keeps the old data. Returns
    /// whether new data was taken.
    pub fn reload_now(&self) -> bool {
        let serial = if self.by_mtime {
            if let Err(e) = std::fs::metadata(&self.file) {
                tracing::error!(target: TARGET, "Failed to stat zone \"{}\" in \"{}\": {}", self.origin, self.file, go_io_error("stat", &self.file, &e));
                return false;
            }
            Some(0)
        } else {
            self.data().serial()
        };
        let text = match std::fs::read(&self.file) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                tracing::error!(target: TARGET, "Failed to open zone \"{}\" in \"{}\": {}", self.origin, self.file, go_io_error("open", &self.file, &e));
                return false;
            }
        };
        let Ok(origin) = Name::from_ascii(&self.origin) else {
            return false;
        };
        match zone::parse(&text, &origin, &self.file, serial) {
            Ok(z) => {
                let s = z.serial().unwrap_or(0);
                self.set(z);
                tracing::info!(target: TARGET, "Successfully reloaded zone \"{}\" in \"{}\" with {} SOA serial", self.origin, self.file, s);
                true
            }
            Err(ParseError::SameSerial(_)) => false,
            Err(ParseError::Other(e)) => {
                tracing::error!(target: TARGET, "Parsing zone \"{}\": {}", self.origin, e);
                false
            }
        }
    }
}

/// What the block's `file` lines configure.
#[derive(Debug)]
pub struct Config {
    /// The zones, in order.
    pub zones: Vec<Arc<Zone>>,
    /// `fallthrough` zones.
    pub fall: Fall,
}

/// Checks the zone files every period until shutdown.
pub struct ReloadLifecycle {
    pub(crate) zones: Vec<Arc<Zone>>,
    pub(crate) stop: watch::Sender<bool>,
}

#[async_trait]
impl Lifecycle for ReloadLifecycle {
    async fn on_startup(&self) -> Result<(), SetupError> {
        for z in &self.zones {
            if z.reload.is_zero() {
                continue;
            }
            let z = z.clone();
            ferrodns_plugin::every(z.reload, self.stop.subscribe(), move || {
                z.reload_now();
            });
        }
        Ok(())
    }

    async fn on_shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

/// The handler.
#[derive(Debug)]
pub struct File {
    zones: Vec<Arc<Zone>>,
    names: Vec<String>,
    fall: Fall,
}

impl File {
    /// A handler serving these zones.
    pub fn new(cfg: Config) -> Self {
        let names = cfg.zones.iter().map(|z| z.origin.clone()).collect();
        File {
            zones: cfg.zones,
            names,
            fall: cfg.fall,
        }
    }

    /// The zone serving `qname`, if any.
    pub fn zone_for(&self, qname: &str) -> Option<&Arc<Zone>> {
        let origin = names::zone_match(&self.names, qname)?;
        self.zones.iter().find(|z| z.origin == origin)
    }
}

fn reply_skeleton(req: &Request) -> Message {
    let md = &req.message().metadata;
    let mut msg = Message::new(md.id, MessageType::Response, md.op_code);
    if md.op_code == OpCode::Query {
        msg.metadata.recursion_desired = md.recursion_desired;
        msg.metadata.checking_disabled = md.checking_disabled;
    }
    msg.metadata.authoritative = true;
    if let Some(q) = req.message().queries.first() {
        msg.queries.push(q.clone());
    }
    msg
}

/// The request as the lookup's [`Upstream`], keeping the wildcard owner the lookup reports.
struct WildcardNote<'a> {
    req: &'a Request,
    owner: std::sync::Mutex<Option<Name>>,
}

impl Upstream for WildcardNote<'_> {
    async fn resolve(
        &self,
        name: Name,
        qtype: RecordType,
    ) -> Option<(ResponseCode, Vec<ferrodns_plugin::proto::rr::Record>)> {
        self.req.resolve(name, qtype).await
    }

    fn wildcard(&self, owner: &Name) {
        if let Ok(mut o) = self.owner.lock() {
            *o = Some(owner.clone());
        }
    }
}

#[async_trait]
impl Plugin for File {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        let qname_text = req.name_lower();
        let Some(zone) = self.zone_for(&qname_text) else {
            // Last in its chain, file is the authority that has no such zone: REFUSED (written
            // by the server), not the missing next plugin's SERVFAIL error.
            if next.is_empty() {
                return Ok(Reply::Rcode(ResponseCode::Refused));
            }
            return next.serve(req).await;
        };
        let qtype = req.qtype();
        if qtype == RecordType::AXFR || qtype == RecordType::IXFR {
            return Ok(Reply::Rcode(ResponseCode::Refused));
        }
        if req.message().metadata.op_code == OpCode::Notify {
            tracing::info!(
                target: TARGET,
                "Dropping notify from {} for {}",
                ferrodns_pkg::text::ip_text(req.src.ip()),
                zone.origin
            );
            return Ok(Reply::Rcode(ResponseCode::NoError));
        }
        let mut qname = req.qname().to_lowercase();
        qname.set_fqdn(true);
        let data = zone.data();
        let dnssec = req.do_bit();
        let up = WildcardNote {
            req: &*req,
            owner: std::sync::Mutex::new(None),
        };
        let (answer, ns, extra, outcome) = lookup(&data, &up, &qname, qtype, dnssec).await;
        let wildcard = up.owner.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(owner) = wildcard {
            // As CoreDNS: the wildcard that synthesised the answer, for metadata readers.
            req.set_metadata("zone/wildcard", ferrodns_pkg::text::presentation(&owner));
        }

        if answer.is_empty()
            && matches!(outcome, Outcome::NameError | Outcome::Success)
            && self.fall.through(&qname_text)
        {
            return next.serve(req).await;
        }

        let mut m = reply_skeleton(req);
        m.metadata.response_code = ResponseCode::NoError;
        match outcome {
            Outcome::Success | Outcome::NoData => {}
            Outcome::NameError => m.metadata.response_code = ResponseCode::NXDomain,
            Outcome::Delegation => {
                if answer.is_empty() {
                    m.metadata.authoritative = false;
                }
            }
            Outcome::ServerFailure => {
                if answer.is_empty() {
                    return Ok(Reply::Rcode(ResponseCode::ServFail));
                }
                m.metadata.response_code = ResponseCode::ServFail;
            }
        }
        m.answers = answer;
        m.authorities = ns;
        m.additionals = extra;
        Ok(Reply::message(m))
    }
}

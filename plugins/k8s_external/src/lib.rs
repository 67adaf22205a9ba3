//! # k8s_external
//!
//! Serves the external addresses of Kubernetes services under zones of their own, as CoreDNS's
//! *k8s_external* plugin does: `svc.ns.example.org.` answers with the service's external IPs
//! (and, with `headless`, the endpoints of headless services). The data comes from the
//! block's *kubernetes* plugin through the [`Externaler`] handle it publishes; this plugin
//! builds the answers: A, AAAA, SRV (with the targets' addresses in the additional section),
//! PTR and CNAME records, the zone's SOA and NS at its apex, and the name server's addresses
//! under the `dns` label (`ns1.dns.example.org.`).

mod records;
mod setup;

use std::sync::Arc;

use ferrodns_pkg::names::{count_label, is_subdomain, join, next_label, trim_zone, zone_match};
use ferrodns_pkg::text::name_from_presentation;
use ferrodns_plugin::proto::op::{Message, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::{NS, SOA};
use ferrodns_plugin::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use ferrodns_plugin::{
    BlockHandle, Descriptor, Externaler, Missing, Next, Plugin, PluginError, Reply, Request,
    async_trait, presentation,
};

pub use setup::Config;

/// The directive name.
pub const NAME: &str = "k8s_external";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// The SOA's mailbox label.
const HOSTMASTER: &str = "hostmaster";

/// Why kubernetes cannot serve this plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoExternaler {
    /// The block has no kubernetes plugin.
    NotLoaded,
    /// The block's kubernetes offers no [`Externaler`].
    NotImplemented,
}

impl std::fmt::Display for NoExternaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NoExternaler::NotLoaded => "kubernetes plugin not loaded",
            NoExternaler::NotImplemented => {
                "kubernetes plugin does not implement the Externaler interface"
            }
        })
    }
}

impl std::error::Error for NoExternaler {}

/// The block's kubernetes, found once every plugin of the block is set up.
pub type Source = BlockHandle<Arc<dyn Externaler>>;

/// Find kubernetes at startup, with CoreDNS's errors.
pub fn resolve(source: &Source) -> Result<(), NoExternaler> {
    source.resolve().map_err(NoExternaler::from)
}

impl From<Missing> for NoExternaler {
    fn from(m: Missing) -> Self {
        match m {
            Missing::NotInBlock => NoExternaler::NotLoaded,
            Missing::NoHandle => NoExternaler::NotImplemented,
        }
    }
}

/// The k8s_external handler.
#[derive(Debug)]
pub struct External {
    config: Config,
    source: Arc<Source>,
}

impl External {
    /// A handler with `config`, asking `source` for the data.
    pub fn new(config: Config, source: Arc<Source>) -> Self {
        External { config, source }
    }

    /// The handler's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn name_in(&self, label: &str, zone: &str) -> String {
        join(&[label, &self.config.apex, zone])
    }

    /// The zone's SOA: TTL and minimum the plugin's TTL, serial from kubernetes.
    fn soa(&self, k: &dyn Externaler, zone: &str) -> Option<Record> {
        let soa = SOA::new(
            name_from_presentation(&self.name_in("ns1", zone), None)?,
            name_from_presentation(&self.name_in(HOSTMASTER, zone), None)?,
            k.external_serial(zone),
            7200,
            1800,
            86400,
            self.config.ttl,
        );
        Some(record(
            name_from_presentation(zone, None)?,
            self.config.ttl,
            RData::SOA(soa),
        ))
    }

    fn with_soa(&self, mut m: Message, k: &dyn Externaler, zone: &str) -> Reply {
        m.authorities = self.soa(k, zone).into_iter().collect();
        Reply::message(m)
    }

    /// A query for a zone itself: its SOA, its NS with the name server's addresses as glue,
    /// NODATA for other types.
    fn serve_apex(&self, req: &Request, k: &dyn Externaler, zone: &str) -> Reply {
        let mut m = req.reply();
        m.metadata.authoritative = true;
        match req.qtype() {
            RecordType::SOA => {
                m.answers = self.soa(k, zone).into_iter().collect();
            }
            RecordType::NS => {
                let target = name_from_presentation(&self.name_in("ns1", zone), None);
                let owner = name_from_presentation(zone, None);
                if let (Some(target), Some(owner)) = (target, owner) {
                    m.answers = vec![record(owner, self.config.ttl, RData::NS(NS(target)))];
                }
                let glue = self.name_in("ns1", &presentation(&req.qname()));
                if let Some(glue) = name_from_presentation(&glue, None) {
                    for mut rr in k.external_address(req, zone, self.config.headless) {
                        rr.ttl = self.config.ttl;
                        rr.name = glue.clone();
                        m.additionals.push(rr);
                    }
                }
            }
            _ => return self.with_soa(m, k, zone),
        }
        Reply::message(m)
    }

    /// A query under the zone's apex label: `ns1.<apex>` has the name server's addresses,
    /// `<apex>` itself is an empty non-terminal, every other name does not exist.
    fn serve_sub_apex(&self, req: &Request, k: &dyn Externaler, zone: &str) -> Reply {
        let name = req.name_lower();
        let base = trim_zone(&name, zone).unwrap_or("");
        let mut m = req.reply();
        m.metadata.authoritative = true;
        match count_label(base) {
            1 => self.with_soa(m, k, zone),
            2 if base.get(..next_label(base, 0).0) == Some("ns1.") => {
                let qtype = req.qtype();
                for mut rr in k.external_address(req, zone, self.config.headless) {
                    let wanted = matches!(qtype, RecordType::A | RecordType::AAAA)
                        && rr.record_type() == qtype;
                    if wanted {
                        rr.ttl = self.config.ttl;
                        rr.name = req.qname();
                        m.answers.push(rr);
                    }
                }
                if m.answers.is_empty() {
                    return self.with_soa(m, k, zone);
                }
                Reply::message(m)
            }
            _ => {
                m.metadata.response_code = ResponseCode::NXDomain;
                self.with_soa(m, k, zone)
            }
        }
    }
}

/// A record of class IN.
fn record(name: Name, ttl: u32, data: RData) -> Record {
    let mut rr = Record::from_rdata(name, ttl, data);
    rr.dns_class = DNSClass::IN;
    rr
}

#[async_trait]
impl Plugin for External {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        let name = req.name_lower();
        let Some(zone) = zone_match(&self.config.zones, &name).map(str::to_string) else {
            return next.serve(req).await;
        };
        let Some(k) = self.source.get().cloned() else {
            let why = self.source.lookup().err().map(NoExternaler::from);
            let why = why.unwrap_or(NoExternaler::NotLoaded);
            return Err(PluginError::servfail(format!("plugin/{NAME}: {why}")));
        };
        for z in &self.config.zones {
            if name == *z {
                return Ok(self.serve_apex(req, k.as_ref(), &zone));
            }
            // The apex label joined to the root zone (`dns..`) is no name: nothing is under it.
            let apex = format!("{}.{z}", self.config.apex);
            if z != "." && is_subdomain(&apex, &name) {
                return Ok(self.serve_sub_apex(req, k.as_ref(), &zone));
            }
        }

        let (services, rcode) = k.external(req, &zone, self.config.headless);
        let mut m = req.reply();
        m.metadata.authoritative = true;
        if services.is_empty() {
            if rcode == ResponseCode::NXDomain && self.config.fall.through(&name) {
                return next.serve(req).await;
            }
            m.metadata.response_code = rcode;
            return Ok(self.with_soa(m, k.as_ref(), &zone));
        }
        let qname = req.qname();
        let ttl = self.config.ttl;
        match req.qtype() {
            RecordType::A | RecordType::AAAA => {
                let (answers, truncated) =
                    records::addresses(req, &services, &qname, req.qtype(), ttl).await;
                m.answers = answers;
                m.metadata.truncation = truncated;
            }
            RecordType::SRV => {
                let (answers, extra) = records::srv(req, &services, &qname, ttl).await;
                m.answers = answers;
                m.additionals = extra;
            }
            RecordType::PTR => {
                let first_zone = self.config.zones.first().map_or(".", String::as_str);
                m.answers = records::ptr(&services, &qname, first_zone, ttl);
            }
            _ => {}
        }
        if m.answers.is_empty() {
            return Ok(self.with_soa(m, k.as_ref(), &zone));
        }
        Ok(Reply::message(m))
    }
}

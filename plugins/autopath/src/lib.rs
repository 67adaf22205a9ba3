//! # autopath
//!
//! Server-side search path completion, as CoreDNS's *autopath* plugin does it. A client whose
//! resolver walks a search list asks `name.<first search domain>` first; when such a query
//! arrives (its name is, or ends in, the first element of the search path), this plugin walks
//! the rest of the list itself: it asks the rest of the chain for `name.<element>` for each
//! element in turn, the last element being `""` (the name as asked), and answers with the first
//! reply that is not NXDOMAIN, a CNAME from the asked name to the found one put in front of its
//! answer. When every element gives NXDOMAIN, the reply to the first element is sent as it is
//! and the client goes on searching.
//!
//! The search path comes from a resolv.conf file read at setup, or, with `@PLUGIN`, from that
//! plugin of the block for each query (kubernetes knows its pods' search paths), through the
//! [`AutoPather`] handle it publishes.

mod resolvconf;
mod setup;

use std::sync::Arc;

use ferrodns_pkg::names::{is_subdomain, trim_zone, zone_match};
use ferrodns_plugin::proto::op::{Message, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::CNAME;
use ferrodns_plugin::proto::rr::{DNSClass, Name, RData, Record};
use ferrodns_plugin::wire::client_write;
use ferrodns_plugin::{
    AutoPather, BlockHandle, Descriptor, Metrics, Missing, Next, Plugin, PluginError, Reply,
    Request, async_trait, presentation,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

pub use resolvconf::{search_from_bytes, search_from_file};

/// The directive name.
pub const NAME: &str = "autopath";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

type Labels = Vec<(&'static str, String)>;

/// `coredns_autopath_success_total{server}`: queries answered from a search element.
pub fn success_family(m: &Metrics) -> Family<Labels, Counter> {
    m.register(
        "coredns_autopath_success",
        "Counter of requests that did autopath.",
        Family::<Labels, Counter>::default,
    )
}

/// Where the search path of a query comes from with `@PLUGIN`: that plugin's [`AutoPather`]
/// handle (the plugin name is empty for a resolv.conf line).
pub type Source = BlockHandle<Arc<dyn AutoPather>>;

/// Why the plugin named by `@PLUGIN` cannot give search paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAnAutoPather(pub String);

impl std::fmt::Display for NotAnAutoPather {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} does not implement the AutoPather interface", self.0)
    }
}

impl std::error::Error for NotAnAutoPather {}

/// Find the `@PLUGIN` source at startup, as CoreDNS does: a plugin the block does not have is
/// no source (the resolv.conf path, if any, is used); one that offers no search paths is an
/// error.
pub fn resolve(source: &Source) -> Result<(), NotAnAutoPather> {
    match source.resolve() {
        Err(Missing::NoHandle) => Err(NotAnAutoPather(source.plugin().to_string())),
        Ok(()) | Err(Missing::NotInBlock) => Ok(()),
    }
}

/// The autopath handler.
#[derive(Debug)]
pub struct AutoPath {
    /// The zones whose queries are completed.
    pub zones: Vec<String>,
    /// The search path from resolv.conf, normalised, with the final `""`; empty without one.
    pub search: Vec<String>,
    /// The `@PLUGIN` source, which takes precedence over `search` when found.
    pub source: Arc<Source>,
    success: Family<Labels, Counter>,
}

impl AutoPath {
    /// A handler counting its successes on `metrics`.
    pub fn new(zones: Vec<String>, search: Vec<String>, source: Arc<Source>, m: &Metrics) -> Self {
        AutoPath {
            zones,
            search,
            source,
            success: success_family(m),
        }
    }
}

/// Whether `name` is the first element of the search path or below it (miekg/dns's subdomain
/// test: the empty element is the parent of nothing).
pub fn first_in_search_path(name: &str, path: &[String]) -> bool {
    match path.first() {
        Some(first) if name == first => true,
        Some(first) if first.is_empty() => false,
        Some(first) => is_subdomain(first, name),
        None => false,
    }
}

/// Put a CNAME from `original` to the owner of the first answer record not owned by
/// `original` (without regard to case) in front of the answer, with that record's TTL, and set
/// the question's name back to `original`. A reply without such a record (NODATA) only gets
/// its question back.
pub fn cnamer(m: &mut Message, original: &Name) {
    let asked = presentation(original);
    let found = m
        .answers
        .iter()
        .find(|rr| !presentation(&rr.name).eq_ignore_ascii_case(&asked))
        .map(|rr| (rr.name.clone(), rr.ttl));
    if let Some((target, ttl)) = found {
        let mut cname = Record::from_rdata(original.clone(), ttl, RData::CNAME(CNAME(target)));
        cname.dns_class = DNSClass::IN;
        m.answers.insert(0, cname);
    }
    if let Some(q) = m.queries.first_mut() {
        q.set_name(original.clone());
    }
}

#[async_trait]
impl Plugin for AutoPath {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        let name = req.name_lower();
        if zone_match(&self.zones, &name).is_none() {
            return next.serve(req).await;
        }
        let dynamic;
        let path: &[String] = match self.source.get() {
            Some(p) => {
                dynamic = p.auto_path(req).unwrap_or_default();
                &dynamic
            }
            None => &self.search,
        };
        if path.is_empty() || !first_in_search_path(&name, path) {
            return next.serve(req).await;
        }
        let original = req.qname();
        let asked = presentation(&original);
        let Some(base) = trim_zone(&asked, &path[0]) else {
            return Err(PluginError::servfail(format!(
                "trimzone: overshot qname: {asked}for zone {}",
                path[0]
            )));
        };

        let mut first: Option<Reply> = None;
        for (i, element) in path.iter().enumerate() {
            let expanded = format!("{base}.{element}");
            let mut sub = req.clone();
            match ferrodns_pkg::text::name_from_presentation(&expanded, None) {
                Some(n) => {
                    if let Some(q) = sub.message_mut().queries.first_mut() {
                        q.set_name(n);
                    }
                }
                // Not a name (`web..` from the element `.`, which kubernetes gives for the
                // root zone): CoreDNS hands it on, and no plugin finds it; skip it.
                None => continue,
            }
            let mut reply = next.clone().serve(&mut sub).await?;
            let wrote = match &reply {
                Reply::Message(_) | Reply::Wire(_) => true,
                Reply::Rcode(rc) => client_write(*rc),
                Reply::Drop => true,
            };
            if i == 0 {
                first = Some(reply.clone());
            }
            if !wrote {
                continue;
            }
            // A plugin that claims to have written but left nothing to send: CoreDNS reads
            // the missing message and its handler panics, which the server answers with
            // SERVFAIL.
            let Some(msg) = reply.decoded() else {
                return Err(PluginError::servfail(format!(
                    "plugin/{NAME}: no reply for {expanded}"
                )));
            };
            if msg.metadata.response_code == ResponseCode::NXDomain {
                continue;
            }
            cnamer(msg, &original);
            self.success
                .get_or_create(&vec![("server", req.server.to_string())])
                .inc();
            return Ok(reply);
        }
        // Every element gave NXDOMAIN (or nothing): the first reply goes out as it is.
        Ok(first.unwrap_or(Reply::Rcode(ResponseCode::ServFail)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_names_under_the_first_element_are_completed() {
        let p = path(&["a.example.", "b.example.", ""]);
        assert!(first_in_search_path("a.example.", &p));
        assert!(first_in_search_path("x.a.example.", &p));
        assert!(!first_in_search_path("x.b.example.", &p));
        assert!(!first_in_search_path("xa.example.", &p));
        assert!(!first_in_search_path("x.example.", &path(&[""])));
        assert!(first_in_search_path("x.example.", &path(&["."])));
    }
}

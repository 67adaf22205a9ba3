//! # acl
//!
//! Access control by the query's source address and type, as CoreDNS's *acl* plugin does it.
//! Each `acl` line is a rule for some zones (by default the block's); a query is judged by the
//! first rule whose zones hold its name, and within it by the first policy whose types and
//! source networks both match. `allow` (or no policy matching any rule) passes the query on,
//! `block` answers REFUSED with the extended DNS error Blocked (15), `filter` answers an empty
//! NOERROR with Filtered (17), and `drop` sends nothing at all.
//!
//! ```text
//! acl [ZONES...] {
//!     ACTION [type QTYPE...|*] [net SOURCE...|*]
//! }
//! ```

mod setup;
mod source;

use std::collections::BTreeSet;
use std::net::IpAddr;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use ferrodns_pkg::names::zone_match;
use ferrodns_plugin::proto::op::{Edns, Message, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use ferrodns_plugin::{
    Descriptor, Metrics, Next, Plugin, PluginError, Reply, Request, async_trait,
};

pub use setup::parse;
pub use source::{Network, with_length};

/// The directive name.
pub const NAME: &str = "acl";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// The query type standing for every type in a policy (miekg/dns's `TypeNone`, which `type *`
/// and `type None` both give).
pub const ANY_TYPE: u16 = 0;

/// The EDNS option code of an extended DNS error (RFC 8914).
pub const EDE_OPTION: u16 = 15;

/// The extended DNS error of a `block` reply: Blocked.
pub const EDE_BLOCKED: u16 = 15;

/// The extended DNS error of a `filter` reply: Filtered.
pub const EDE_FILTERED: u16 = 17;

/// The UDP size of the OPT record a `block` or `filter` reply carries (DO set), as CoreDNS
/// writes it before the server fits it to the client.
pub const REPLY_UDP_SIZE: u16 = 4096;

/// What a policy does with the queries it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pass the query on; no later rule is looked at.
    Allow,
    /// Answer REFUSED with the extended error Blocked.
    Block,
    /// Answer an empty NOERROR with the extended error Filtered.
    Filter,
    /// Do not answer.
    Drop,
}

/// One `ACTION [type ...] [net ...]` line of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// What to do with a match.
    pub action: Action,
    /// The query types matched; [`ANY_TYPE`] among them matches every type.
    pub qtypes: BTreeSet<u16>,
    /// The source networks matched.
    pub sources: Vec<Network>,
}

impl Policy {
    /// Every source of both families.
    pub fn every_source() -> Vec<Network> {
        vec![Network::ALL_V4, Network::ALL_V6]
    }

    /// Whether a query of type `qtype` from `ip` matches this policy.
    pub fn matches(&self, qtype: u16, ip: IpAddr) -> bool {
        (self.qtypes.contains(&ANY_TYPE) || self.qtypes.contains(&qtype))
            && self.sources.iter().any(|n| n.contains(ip))
    }
}

/// One `acl` line: its zones and its policies, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The zones the rule judges (normalised, with trailing dot).
    pub zones: Vec<String>,
    /// The policies, first match wins.
    pub policies: Vec<Policy>,
}

/// The judgement on one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Go on to the next plugin (an `allow`, or nothing matched).
    Pass,
    /// Answer REFUSED; the zone of the rule that chose it (the `zone` metric label).
    Block(&'a str),
    /// Answer an empty NOERROR; the rule's zone.
    Filter(&'a str),
    /// Send nothing; the rule's zone.
    Drop(&'a str),
}

/// A label set.
type Labels = Vec<(&'static str, String)>;

/// The `coredns_acl_*` families.
#[derive(Clone)]
pub struct Families {
    blocked: Family<Labels, Counter>,
    filtered: Family<Labels, Counter>,
    allowed: Family<Labels, Counter>,
    dropped: Family<Labels, Counter>,
}

impl Families {
    /// Register (or find) the families on the process registry.
    pub fn register(m: &Metrics) -> Self {
        Families {
            blocked: m.register(
                "coredns_acl_blocked_requests",
                "Counter of DNS requests being blocked.",
                Family::default,
            ),
            filtered: m.register(
                "coredns_acl_filtered_requests",
                "Counter of DNS requests being filtered.",
                Family::default,
            ),
            allowed: m.register(
                "coredns_acl_allowed_requests",
                "Counter of DNS requests being allowed.",
                Family::default,
            ),
            dropped: m.register(
                "coredns_acl_dropped_requests",
                "Counter of DNS requests being dropped.",
                Family::default,
            ),
        }
    }
}

/// The handler: the block's `acl` rules in Corefile order.
pub struct Acl {
    rules: Vec<Rule>,
    metrics: Families,
}

impl Acl {
    /// A handler for `rules`, counting on `metrics`.
    pub fn new(rules: Vec<Rule>, metrics: Families) -> Self {
        Acl { rules, metrics }
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Judge a query for `name` (lowercase presentation form) of type `qtype` from `ip`.
    pub fn decide(&self, name: &str, qtype: u16, ip: IpAddr) -> Verdict<'_> {
        for rule in &self.rules {
            let Some(zone) = zone_match(&rule.zones, name) else {
                continue;
            };
            match rule.policies.iter().find(|p| p.matches(qtype, ip)) {
                None => continue,
                Some(p) => match p.action {
                    Action::Allow => break,
                    Action::Block => return Verdict::Block(zone),
                    Action::Filter => return Verdict::Filter(zone),
                    Action::Drop => return Verdict::Drop(zone),
                },
            }
        }
        Verdict::Pass
    }
}

/// The reply of `block` and `filter`: the request's header as miekg/dns's `SetRcode` copies it,
/// the question, `rcode`, and an OPT record (4096, DO) holding the extended error `info`.
pub fn denial(req: &Message, rcode: ResponseCode, info: u16) -> Message {
    let mut msg = ferrodns_plugin::wire::rcode_reply(req, rcode);
    let mut edns = Edns::new();
    edns.set_max_payload(REPLY_UDP_SIZE);
    edns.set_dnssec_ok(true);
    // The option's data is the info code alone: CoreDNS sets no extra text.
    edns.options_mut().options.push((
        EdnsCode::from(EDE_OPTION),
        EdnsOption::Unknown(EDE_OPTION, info.to_be_bytes().to_vec()),
    ));
    msg.edns = Some(edns);
    msg
}

#[async_trait]
impl Plugin for Acl {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        let name = req.name_lower();
        let verdict = self.decide(&name, u16::from(req.qtype()), req.src.ip());
        let labels = |zone: Option<&str>| -> Labels {
            let mut l = vec![("server", req.server.to_string()), ("view", String::new())];
            if let Some(z) = zone {
                l.push(("zone", z.to_string()));
            }
            l
        };
        match verdict {
            Verdict::Pass => {
                self.metrics.allowed.get_or_create(&labels(None)).inc();
                next.serve(req).await
            }
            Verdict::Drop(zone) => {
                self.metrics
                    .dropped
                    .get_or_create(&labels(Some(zone)))
                    .inc();
                Ok(Reply::Drop)
            }
            Verdict::Filter(zone) => {
                let m = denial(req.message(), ResponseCode::NoError, EDE_FILTERED);
                self.metrics
                    .filtered
                    .get_or_create(&labels(Some(zone)))
                    .inc();
                Ok(Reply::message(m))
            }
            Verdict::Block(zone) => {
                let m = denial(req.message(), ResponseCode::Refused, EDE_BLOCKED);
                self.metrics
                    .blocked
                    .get_or_create(&labels(Some(zone)))
                    .inc();
                Ok(Reply::message(m))
            }
        }
    }
}

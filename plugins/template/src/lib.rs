//! # template
//!
//! Answers queries from Go text templates, as CoreDNS's *template* plugin does: each `template`
//! line matches a class, a type and zones, then the query name against regular expressions; the
//! first template that matches renders its `answer`, `additional` and `authority` records with
//! the query's data (`.Zone .Name .Class .Type .Match .Group .Message .Question .Remote .Meta`,
//! `parseInt`), sets its rcode and optional extended DNS error, and replies authoritatively.
//! CNAME answers to A/AAAA queries are chased through the server itself.
//!
//! ```text
//! template CLASS TYPE [ZONE...] {
//!     match REGEX...
//!     answer RR
//!     additional RR
//!     authority RR
//!     rcode CODE
//!     ederror EXTENDED_ERROR_CODE [EXTRA_REASON]
//!     fallthrough [ZONE...]
//! }
//! ```

mod rr;
mod setup;

use std::collections::BTreeMap;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use ferrodns_go::regexp::Regex;
use ferrodns_pkg::names::zone_match;
use ferrodns_pkg::text::{self, presentation};
use ferrodns_plugin::proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use ferrodns_plugin::proto::rr::{RData, RecordType};
use ferrodns_plugin::{
    Descriptor, Metrics, Next, Plugin, PluginError, Reply, Request, async_trait,
};

use ferrodns_go::template::{Struct, Template, Value};
pub use setup::parse;

/// The directive name.
pub const NAME: &str = "template";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// The longest regular expression accepted.
pub const MAX_REGEXP_LEN: usize = 10000;

/// A label set.
type Labels = Vec<(&'static str, String)>;

/// The `coredns_template_*` families.
#[derive(Clone)]
pub struct Families {
    matches: Family<Labels, Counter>,
    template_failures: Family<Labels, Counter>,
    rr_failures: Family<Labels, Counter>,
}

impl Families {
    /// Register (or find) the families on the process registry.
    pub fn register(m: &Metrics) -> Self {
        Families {
            matches: m.register(
                "coredns_template_matches",
                "Counter of template regex matches.",
                Family::default,
            ),
            template_failures: m.register(
                "coredns_template_template_failures",
                "Counter of go template failures.",
                Family::default,
            ),
            rr_failures: m.register(
                "coredns_template_rr_failures",
                "Counter of mis-templated RRs.",
                Family::default,
            ),
        }
    }
}

/// One `template` line.
#[derive(Debug, Clone)]
pub struct TemplateRule {
    pub(crate) zones: Vec<String>,
    pub(crate) rcode: u16,
    /// Each `match` expression, with its text as written (what `.Regex` prints).
    pub(crate) regex: Vec<(Regex, String)>,
    pub(crate) answer: Vec<Template>,
    pub(crate) additional: Vec<Template>,
    pub(crate) authority: Vec<Template>,
    pub(crate) qclass: u16,
    pub(crate) qtype: u16,
    pub(crate) ederror: Option<(u16, String)>,
    pub(crate) fall: Option<Vec<String>>,
}

/// The handler: every template of the block, tried in order.
#[derive(Clone)]
pub struct TemplateHandler {
    pub(crate) zones: Vec<String>,
    pub(crate) templates: Vec<TemplateRule>,
    pub(crate) metrics: Families,
}

/// miekg/dns `ClassToString[c]` ("" when missing).
fn class_text(c: u16) -> String {
    text::class_mnemonic(c).unwrap_or("").to_string()
}

/// miekg/dns `TypeToString[t]` ("" when missing).
fn type_text(t: u16) -> String {
    let n = text::type_name(t);
    if n.starts_with("TYPE") {
        String::new()
    } else {
        n
    }
}

/// What a matching template renders with.
struct Data {
    zone: String,
    class: String,
    qtype: String,
    value: Value,
}

fn question_value(name: &str, qtype: u16, qclass: u16) -> Value {
    Value::Struct(Box::new(Struct {
        type_name: "*dns.Question".into(),
        fields: vec![
            ("Name".into(), Value::Str(name.to_string())),
            ("Qtype".into(), Value::Uint(u64::from(qtype))),
            ("Qclass".into(), Value::Uint(u64::from(qclass))),
        ],
        display: Some(format!(
            ";{name}\t{}\t {}",
            text::class_name(qclass),
            text::type_name(qtype)
        )),
        meta: false,
    }))
}

fn message_value(m: &Message) -> Value {
    let md = &m.metadata;
    let questions = m
        .queries
        .iter()
        .map(|q| {
            question_value(
                &presentation(q.name()),
                u16::from(q.query_type()),
                u16::from(q.query_class()),
            )
        })
        .collect();
    Value::Struct(Box::new(Struct {
        type_name: "*dns.Msg".into(),
        fields: vec![
            ("Id".into(), Value::Uint(u64::from(md.id))),
            (
                "Response".into(),
                Value::Bool(md.message_type == MessageType::Response),
            ),
            ("Opcode".into(), Value::Int(i64::from(u8::from(md.op_code)))),
            ("Authoritative".into(), Value::Bool(md.authoritative)),
            ("Truncated".into(), Value::Bool(md.truncation)),
            ("RecursionDesired".into(), Value::Bool(md.recursion_desired)),
            (
                "RecursionAvailable".into(),
                Value::Bool(md.recursion_available),
            ),
            ("Zero".into(), Value::Bool(false)),
            ("AuthenticatedData".into(), Value::Bool(md.authentic_data)),
            ("CheckingDisabled".into(), Value::Bool(md.checking_disabled)),
            (
                "Rcode".into(),
                Value::Int(i64::from(u16::from(md.response_code))),
            ),
            ("Compress".into(), Value::Bool(false)),
            ("Question".into(), Value::List(questions)),
        ],
        display: None,
        meta: false,
    }))
}

enum Matched {
    /// This template answers.
    Yes(Data),
    /// Not this one; try the next.
    Next,
    /// The zone matched but no regex did, and there is no fallthrough.
    Fail,
}

impl TemplateRule {
    fn matches(&self, req: &Request) -> Matched {
        let name = req.name_lower();
        let Some(zone) = zone_match(&self.zones, &name) else {
            return Matched::Next;
        };
        let qclass = u16::from(req.qclass());
        let qtype = u16::from(req.qtype());
        if self.qclass != 255 && qclass != 255 && qclass != self.qclass {
            return Matched::Next;
        }
        if self.qtype != 255 && qtype != 255 && qtype != self.qtype {
            return Matched::Next;
        }
        for (re, source) in &self.regex {
            let Some(caps) = re.captures(&name) else {
                continue;
            };
            let class = if qclass != 255 {
                class_text(qclass)
            } else {
                class_text(self.qclass)
            };
            let ty = if qtype != 255 {
                type_text(qtype)
            } else {
                type_text(self.qtype)
            };
            let matches: Vec<Value> = (0..caps.len())
                .map(|i| Value::Str(caps.get(i).map(|m| m.as_str()).unwrap_or("").to_string()))
                .collect();
            let mut group = BTreeMap::new();
            for (i, m) in matches.iter().enumerate() {
                group.insert(i.to_string(), m.clone());
            }
            for (i, n) in re.capture_names().enumerate() {
                if let (Some(n), Some(m)) = (n, matches.get(i))
                    && !n.is_empty()
                {
                    group.insert(n.to_string(), m.clone());
                }
            }
            let q = req.question();
            let qname = q.map(|q| presentation(q.name())).unwrap_or_default();
            let value = Value::Struct(Box::new(Struct {
                type_name: "*template.templateData".into(),
                fields: vec![
                    ("Zone".into(), Value::Str(zone.to_string())),
                    ("Name".into(), Value::Str(name.clone())),
                    ("Regex".into(), Value::Str(source.clone())),
                    ("Match".into(), Value::List(matches)),
                    ("Group".into(), Value::Map(group)),
                    ("Class".into(), Value::Str(class.clone())),
                    ("Type".into(), Value::Str(ty.clone())),
                    ("Message".into(), message_value(req.message())),
                    ("Question".into(), question_value(&qname, qtype, qclass)),
                    ("Remote".into(), Value::Str(text::ip_text(req.src.ip()))),
                ],
                display: None,
                meta: true,
            }));
            return Matched::Yes(Data {
                zone: zone.to_string(),
                class,
                qtype: ty,
                value,
            });
        }
        match &self.fall {
            Some(zones) if zone_match(zones, &name).is_some() => Matched::Next,
            _ => Matched::Fail,
        }
    }
}

impl TemplateHandler {
    /// The label set of a match, names sorted as Prometheus's Go client prints them.
    fn labels(&self, req: &Request, d: &Data) -> Labels {
        vec![
            ("class", d.class.clone()),
            ("server", req.server.to_string()),
            ("type", d.qtype.clone()),
            ("view", String::new()),
            ("zone", d.zone.clone()),
        ]
    }

    fn render(
        &self,
        req: &Request,
        d: &Data,
        section: &str,
        t: &Template,
    ) -> Result<ferrodns_plugin::proto::rr::Record, PluginError> {
        let meta = |k: &str| req.metadata(k).map(|v| v.into_owned()).unwrap_or_default();
        let fail_labels = |d: &Data| -> Labels {
            vec![
                ("class", d.class.clone()),
                ("section", section.to_string()),
                ("server", req.server.to_string()),
                ("template", t.to_string()),
                ("type", d.qtype.clone()),
                ("view", String::new()),
                ("zone", d.zone.clone()),
            ]
        };
        let txt = match t.execute(&d.value, &meta) {
            Ok(s) => s,
            Err(e) => {
                self.metrics
                    .template_failures
                    .get_or_create(&fail_labels(d))
                    .inc();
                return Err(PluginError::servfail(e));
            }
        };
        match rr::parse_rr(&txt) {
            Ok(r) => Ok(r),
            Err(e) => {
                self.metrics
                    .rr_failures
                    .get_or_create(&fail_labels(d))
                    .inc();
                Err(PluginError::servfail(e))
            }
        }
    }
}

#[async_trait]
impl Plugin for TemplateHandler {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        if zone_match(&self.zones, &req.name_lower()).is_none() {
            return next.serve(req).await;
        }
        for t in &self.templates {
            let d = match t.matches(req) {
                Matched::Next => continue,
                Matched::Fail => return Ok(Reply::Rcode(ResponseCode::ServFail)),
                Matched::Yes(d) => d,
            };
            self.metrics
                .matches
                .get_or_create(&self.labels(req, &d))
                .inc();
            if t.rcode == 2 {
                return Ok(Reply::Rcode(ResponseCode::ServFail));
            }
            let rq = &req.message().metadata;
            let mut msg = Message::new(rq.id, MessageType::Response, rq.op_code);
            if rq.op_code == OpCode::Query {
                msg.metadata.recursion_desired = rq.recursion_desired;
                msg.metadata.checking_disabled = rq.checking_disabled;
            }
            if let Some(q) = req.question() {
                msg.queries.push(q.clone());
            }
            msg.metadata.authoritative = true;
            msg.metadata.response_code = <ResponseCode as From<u16>>::from(t.rcode);
            let qtype = req.qtype();
            for a in &t.answer {
                let rr = self.render(req, &d, "answer", a)?;
                let target = match (&rr.data, qtype) {
                    (RData::CNAME(c), RecordType::A | RecordType::AAAA) => Some(c.0.clone()),
                    _ => None,
                };
                msg.answers.push(rr);
                if let Some(target) = target
                    && let Ok(up) = req.lookup(target, qtype).await
                {
                    msg.metadata.truncation = up.metadata.truncation;
                    msg.answers.extend(up.answers);
                }
            }
            for a in &t.additional {
                let rr = self.render(req, &d, "additional", a)?;
                msg.additionals.push(rr);
            }
            for a in &t.authority {
                let rr = self.render(req, &d, "authority", a)?;
                msg.authorities.push(rr);
            }
            if let Some((code, reason)) = &t.ederror {
                let mut e = Edns::new();
                e.set_max_payload(4096);
                e.set_dnssec_ok(true);
                let mut data = code.to_be_bytes().to_vec();
                data.extend_from_slice(reason.as_bytes());
                e.options_mut()
                    .options
                    .push((EdnsCode::from(15), EdnsOption::Unknown(15, data)));
                msg.edns = Some(e);
            }
            return Ok(Reply::message(msg));
        }
        next.serve(req).await
    }
}

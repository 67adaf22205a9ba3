//! # rewrite
//!
//! Rewrites queries before the rest of the chain sees them, and the replies on their way back,
//! as CoreDNS's *rewrite* plugin does: the question name (exact, prefix, suffix, substring or
//! regex, with `answer auto|name|value` reply rules), type and class, EDNS0 options (local, NSID,
//! client subnet; set, append, replace, unset, with `revert`), and, by name, the TTLs, rcode and
//! CNAME targets of the reply.
//!
//! ```text
//! rewrite [continue|stop] FIELD [TYPE] [FROM TO|FROM TTL|FROM OLD NEW] [answer ...]
//! rewrite [continue|stop] {
//!     FIELD ...
//!     answer ...
//! }
//! ```
//!
//! Rules run in order; a matching `stop` rule (the default) ends the list. The reply gets the
//! original question back, then the reply rules are applied to every record, the last rule's
//! first. A rewritten name that is not a valid domain name is SERVFAIL.

mod names;
mod rules;
mod setup;

use ferrodns_pkg::text::presentation;
use ferrodns_plugin::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::{CNAME, NS, PTR};
use ferrodns_plugin::proto::rr::{Name, RData, Record, RecordType};
use ferrodns_plugin::wire::{client_write, rcode_reply};
use ferrodns_plugin::{Descriptor, Next, Plugin, PluginError, Reply, Request, async_trait, edns};

use rules::Outcome;
pub use rules::{Mode, ResponseRule, Rule, new_rule};
pub use setup::parse;

/// The directive name.
pub const NAME: &str = "rewrite";

/// The tracing target of the lines this plugin logs.
pub const TARGET: &str = "plugin/rewrite";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// The request handler: the rules of every `rewrite` line of a block, in order.
#[derive(Debug, Clone)]
pub struct Rewrite {
    rules: Vec<Rule>,
}

impl Rewrite {
    /// A handler with these rules.
    pub fn new(rules: Vec<Rule>) -> Self {
        Rewrite { rules }
    }
}

/// CoreDNS's `SizeAndDo`: give the reply the request's OPT (or align the reply's own).
fn size_and_do(req_edns: Option<&Edns>, reply: &mut Message) {
    let Some(o) = req_edns else {
        return;
    };
    match reply.edns.as_mut() {
        Some(e) => {
            e.set_version(0);
            e.set_max_payload(o.max_payload());
            e.flags_mut().z &= 0x7f00;
            if o.flags().dnssec_ok {
                e.set_dnssec_ok(true);
            }
        }
        None => {
            let mut e = Edns::new();
            e.set_version(0);
            e.set_max_payload(o.max_payload());
            e.set_dnssec_ok(o.flags().dnssec_ok);
            e.flags_mut().z = o.flags().z & 0x7f00;
            for (code, opt) in &o.options().options {
                if edns::is_supported(u16::from(*code)) {
                    e.options_mut().options.push((*code, opt.clone()));
                }
            }
            reply.edns = Some(e);
        }
    }
}

/// The name in a record's data that `answer value` rules rewrite.
fn value_of(rr: &Record) -> Option<&Name> {
    match &rr.data {
        RData::SRV(s) => Some(&s.target),
        RData::MX(m) => Some(&m.exchange),
        RData::CNAME(c) => Some(&c.0),
        RData::NS(n) => Some(&n.0),
        RData::NAPTR(n) => Some(&n.replacement),
        RData::SOA(s) => Some(&s.mname),
        RData::PTR(p) => Some(&p.0),
        _ => None,
    }
}

fn set_value(rr: &mut Record, name: Name) {
    match &mut rr.data {
        RData::SRV(s) => s.target = name,
        RData::MX(m) => m.exchange = name,
        RData::CNAME(c) => *c = CNAME(name),
        RData::NS(n) => *n = NS(name),
        RData::NAPTR(n) => n.replacement = name,
        RData::SOA(s) => s.mname = name,
        RData::PTR(p) => *p = PTR(name),
        _ => {}
    }
}

/// A name from its presentation form, as the record would carry it (any byte, as miekg/dns
/// reads names).
fn name_from(s: &str) -> Option<Name> {
    ferrodns_pkg::text::name_from_presentation(s, None)
}

/// Apply message-level parts of a rule (rcode, the reply's OPT).
fn apply_msg_rule(rule: &ResponseRule, msg: &mut Message) {
    match rule {
        ResponseRule::Rcode(old, new) if u16::from(msg.metadata.response_code) == *old => {
            msg.metadata.response_code = <ResponseCode as From<u16>>::from(*new);
        }
        ResponseRule::EdnsSet(code) => {
            if let Some(e) = msg.edns.as_mut() {
                let opts = &mut e.options_mut().options;
                if let Some(i) = opts.iter().position(|(c, _)| u16::from(*c) == *code) {
                    opts.remove(i);
                }
            }
        }
        ResponseRule::EdnsReplace(code, c, o) => {
            if let Some(e) = msg.edns.as_mut()
                && let Some(slot) = e
                    .options_mut()
                    .options
                    .iter_mut()
                    .find(|(x, _)| u16::from(*x) == *code)
            {
                *slot = (*c, o.clone());
            }
        }
        _ => {}
    }
}

/// Where a record being rewritten lives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Answer,
    Authority,
    Additional,
}

impl Rewrite {
    /// Apply the reply rules, last first, to one record of the reply.
    async fn rewrite_record(
        &self,
        rules: &[ResponseRule],
        msg: &mut Message,
        section: Section,
        index: usize,
        req: &mut Request,
    ) {
        let get = |msg: &mut Message| -> Option<Record> {
            let v = match section {
                Section::Answer => &msg.answers,
                Section::Authority => &msg.authorities,
                Section::Additional => &msg.additionals,
            };
            v.get(index).cloned()
        };
        let Some(mut rr) = get(msg) else {
            return;
        };
        // After a CNAME rule rebuilt the answer, the record lives at this index.
        let mut home = Some(index);
        for rule in rules.iter().rev() {
            match rule {
                ResponseRule::Name(rw) => {
                    let old = presentation(&rr.name);
                    let new = rw.rewrite(&old);
                    if new != old
                        && let Some(n) = name_from(&new)
                    {
                        rr.name = n;
                    }
                }
                ResponseRule::Value(rw) => {
                    if let Some(v) = value_of(&rr) {
                        let old = presentation(v);
                        let new = rw.rewrite(&old);
                        if new != old
                            && let Some(n) = name_from(&new)
                        {
                            set_value(&mut rr, n);
                        }
                    }
                }
                ResponseRule::Ttl(min, max) => {
                    if rr.ttl < *min {
                        rr.ttl = *min;
                    } else if rr.ttl > *max {
                        rr.ttl = *max;
                    }
                }
                ResponseRule::Cname(c, qtype) => {
                    if section != Section::Answer && home.is_none() {
                        continue;
                    }
                    let RData::CNAME(target) = &rr.data else {
                        continue;
                    };
                    let target = presentation(&target.0);
                    let Some((from, to)) = c.targets(&target) else {
                        continue;
                    };
                    if target != from {
                        continue;
                    }
                    let Some(to_name) = name_from(&to) else {
                        continue;
                    };
                    if let Some(q) = req.message_mut().queries.first_mut() {
                        q.set_name(to_name.clone());
                    }
                    let up = match req.lookup(to_name.clone(), RecordType::from(*qtype)).await {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::error!(target: TARGET, "upstream lookup failed: {}", e.message);
                            continue;
                        }
                    };
                    // Keep the CNAMEs up to the rewritten one, then the new target's answer.
                    if section == Section::Answer
                        && let Some(slot) = msg.answers.get_mut(index)
                    {
                        *slot = rr.clone();
                    }
                    let mut answers = Vec::new();
                    home = None;
                    for a in &msg.answers {
                        if let RData::CNAME(t) = &a.data {
                            if presentation(&t.0) == from {
                                let mut a = a.clone();
                                a.data = RData::CNAME(CNAME(to_name.clone()));
                                if section == Section::Answer && a.name == rr.name {
                                    home = Some(answers.len());
                                }
                                answers.push(a);
                                break;
                            }
                            answers.push(a.clone());
                        }
                    }
                    if let Some(a) = home.and_then(|h| answers.get(h)) {
                        rr = a.clone();
                    }
                    answers.extend(up.answers.iter().cloned());
                    msg.answers = answers;
                    msg.metadata.truncation = up.metadata.truncation;
                }
                other => apply_msg_rule(other, msg),
            }
        }
        if let Some(h) = home {
            let v = match section {
                Section::Answer => &mut msg.answers,
                Section::Authority => &mut msg.authorities,
                Section::Additional => &mut msg.additionals,
            };
            if let Some(slot) = v.get_mut(h) {
                *slot = rr;
            }
        }
    }

    /// CoreDNS's `ResponseReverter.WriteMsg` up to the write: question restored, rules applied.
    async fn revert(
        &self,
        rules: &[ResponseRule],
        original: &Query,
        msg: &mut Message,
        req: &mut Request,
    ) {
        match msg.queries.first_mut() {
            Some(q) => *q = original.clone(),
            None => msg.queries.push(original.clone()),
        }
        if rules.is_empty() {
            return;
        }
        let (ns, an, ar) = (
            msg.authorities.len(),
            msg.answers.len(),
            msg.additionals.len(),
        );
        for i in 0..ns {
            self.rewrite_record(rules, msg, Section::Authority, i, req)
                .await;
        }
        for i in 0..an {
            self.rewrite_record(rules, msg, Section::Answer, i, req)
                .await;
        }
        for i in 0..ar {
            self.rewrite_record(rules, msg, Section::Additional, i, req)
                .await;
        }
        if msg.edns.is_some() {
            // The OPT pseudo-record is one more record of the additional section.
            for rule in rules.iter().rev() {
                apply_msg_rule(rule, msg);
            }
        } else if ns + an + ar == 0 {
            for rule in rules.iter().rev() {
                if matches!(rule, ResponseRule::Rcode(..)) {
                    apply_msg_rule(rule, msg);
                }
            }
        }
    }

    /// The request's OPT as the server echoes it at write time: with the `revert` rules undone.
    fn reverted_opt(rules: &[ResponseRule], req: &Request) -> Option<Edns> {
        let mut copy = req.message().clone();
        let reverting = rules
            .iter()
            .any(|r| matches!(r, ResponseRule::EdnsSet(_) | ResponseRule::EdnsReplace(..)));
        if reverting && copy.edns.is_some() {
            let count = copy.additionals.len() + 1;
            for _ in 0..count {
                for rule in rules.iter().rev() {
                    if matches!(
                        rule,
                        ResponseRule::EdnsSet(_) | ResponseRule::EdnsReplace(..)
                    ) {
                        apply_msg_rule(rule, &mut copy);
                    }
                }
            }
        }
        copy.edns
    }
}

#[async_trait]
impl Plugin for Rewrite {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        let Some(original) = req.question().cloned() else {
            return next.serve(req).await;
        };
        let original_edns = req.message().edns.clone();
        let mut resp_rules: Vec<ResponseRule> = Vec::new();
        let mut stopped = false;
        for rule in &self.rules {
            let rules = match rule.apply(req) {
                Outcome::Ignored => continue,
                Outcome::Done(r) => r,
                Outcome::Renamed(new, r) => {
                    let name = if names::is_domain_name(&new) {
                        name_from(&new)
                    } else {
                        None
                    };
                    let Some(name) = name else {
                        if let Some(q) = req.message_mut().queries.first_mut() {
                            *q = original.clone();
                        }
                        return Err(PluginError::servfail(format!(
                            "invalid name after rewrite: {new}"
                        )));
                    };
                    if let Some(q) = req.message_mut().queries.first_mut() {
                        q.set_name(name);
                    }
                    r
                }
            };
            resp_rules.extend(rules);
            if rule.mode == Mode::Stop {
                stopped = true;
                break;
            }
        }
        let edns_changed = req.message().edns != original_edns;
        if !stopped && resp_rules.is_empty() {
            let mut reply = next.serve(req).await;
            if edns_changed && let Ok(r) = &mut reply {
                let opt = req.message().edns.clone();
                if let Some(m) = r.decoded() {
                    size_and_do(opt.as_ref(), m);
                }
            }
            return reply;
        }
        let outcome = next.serve(req).await;
        // With reply rules active, CoreDNS's rewrite writes the server's error reply itself
        // (rewritten) and still returns the error, with rcode 0, for errors to log.
        let mut failed = None;
        let mut msg = match outcome {
            Ok(Reply::Rcode(rc)) if !client_write(rc) => {
                let mut m = rcode_reply(req.message(), rc);
                size_and_do(req.message().edns.as_ref(), &mut m);
                m
            }
            Err(e) if !client_write(e.rcode) => {
                let mut m = rcode_reply(req.message(), e.rcode);
                size_and_do(req.message().edns.as_ref(), &mut m);
                failed = Some(e.message);
                m
            }
            Ok(mut r) => match r.decoded() {
                Some(m) => {
                    std::mem::replace(m, Message::new(0, MessageType::Response, OpCode::Query))
                }
                None => return Ok(r),
            },
            Err(e) => return Err(e),
        };
        self.revert(&resp_rules, &original, &mut msg, req).await;
        if edns_changed {
            let opt = Self::reverted_opt(&resp_rules, req);
            size_and_do(opt.as_ref(), &mut msg);
        }
        match failed {
            Some(text) => Err(PluginError::with_rcode(ResponseCode::NoError, text).with_reply(msg)),
            None => Ok(Reply::message(msg)),
        }
    }
}

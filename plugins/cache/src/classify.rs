//! What kind of reply this is (CoreDNS's `response.Typify` plus the cache's NODATA rule), whether
//! it may be cached, and for how long.

use std::time::Duration;

use ferrodns_plugin::proto::op::{Message, ResponseCode};
use ferrodns_plugin::proto::rr::{DNSClass, Name, RData, RecordType};

use crate::config::{Config, MIN_TTL};

pub use ferrodns_pkg::response::Type;

fn has_soa(m: &Message) -> bool {
    m.authorities
        .iter()
        .any(|r| r.record_type() == RecordType::SOA)
}

/// `Typify` followed by the cache's NODATA rule; `now` is the Unix time for RRSIG validity.
pub fn cache_type(m: &Message, now: i64) -> Type {
    let t = ferrodns_pkg::response::typify(Some(m), now);
    if t == Type::NoError && has_soa(m) && is_nodata(m) {
        return Type::NoData;
    }
    t
}

fn class_matches(rr: DNSClass, q: DNSClass) -> bool {
    q == DNSClass::ANY || rr == q
}

fn eq_names(a: &Name, b: &Name) -> bool {
    // hickory compares names without regard to case.
    a == b
}

/// The single CNAME target of `owner` in `answer` (`Some(None)`: none; `None`: conflicting).
fn unique_cname_target(
    answer: &[ferrodns_plugin::proto::rr::Record],
    owner: &Name,
    qclass: DNSClass,
) -> Option<Option<Name>> {
    let mut target: Option<Name> = None;
    for r in answer {
        let RData::CNAME(c) = &r.data else { continue };
        if !class_matches(r.dns_class, qclass) || !eq_names(&r.name, owner) {
            continue;
        }
        if let Some(t) = &target
            && !eq_names(t, &c.0)
        {
            return None;
        }
        target = Some(c.0.clone());
    }
    Some(target)
}

/// Whether a NOERROR reply's answer ends, after its CNAME chain, in a record of the asked type.
pub fn answers_question(m: &Message) -> bool {
    if m.metadata.response_code != ResponseCode::NoError || m.answers.is_empty() {
        return false;
    }
    let Some(q) = m.queries.first() else {
        return false;
    };
    let (qtype, qclass) = (q.query_type(), q.query_class());
    let answer = &m.answers;
    if qtype == RecordType::ANY {
        return answer
            .iter()
            .any(|r| class_matches(r.dns_class, qclass) && eq_names(&r.name, q.name()));
    }
    if qtype == RecordType::CNAME {
        return matches!(unique_cname_target(answer, q.name(), qclass), Some(Some(_)));
    }
    let mut name = q.name().clone();
    let mut visited: Vec<Name> = Vec::new();
    loop {
        if visited.iter().any(|v| eq_names(v, &name)) {
            return false;
        }
        visited.push(name.clone());
        match unique_cname_target(answer, &name, qclass) {
            None => return false,
            Some(None) => break,
            Some(Some(t)) => name = t,
        }
    }
    answer.iter().any(|r| {
        r.record_type() == qtype && class_matches(r.dns_class, qclass) && eq_names(&r.name, &name)
    })
}

fn is_nodata(m: &Message) -> bool {
    !m.answers.is_empty() && !answers_question(m)
}

/// Whether the reply may be stored at all (CoreDNS's `key` without the hash).
pub fn cacheable(m: &Message, t: Type) -> bool {
    if m.metadata.truncation || m.queries.is_empty() {
        return false;
    }
    match t {
        Type::OtherError | Type::Meta | Type::Update => false,
        Type::NameError => has_soa(m),
        Type::NoError => has_soa(m) || !is_nodata(m),
        _ => true,
    }
}

/// The smallest TTL of the reply's records, capped at `max`; 5s for replies without records
/// and for types other than NOERROR, NXDOMAIN and NODATA.
fn minimal_ttl(m: &Message, t: Type, max: Duration) -> Duration {
    if !matches!(t, Type::NoError | Type::NameError | Type::NoData) {
        return MIN_TTL;
    }
    if m.answers.is_empty() && m.authorities.is_empty() && m.additionals.is_empty() {
        return MIN_TTL;
    }
    let mut min = max;
    for r in m.answers.iter().chain(&m.authorities).chain(&m.additionals) {
        if u64::from(r.ttl) < min.as_secs() {
            min = Duration::from_secs(u64::from(r.ttl));
        }
    }
    min
}

/// How long a reply of type `t` is cached (and the TTL every record of it gets).
pub fn duration(cfg: &Config, m: &Message, t: Type) -> Duration {
    match t {
        Type::NameError | Type::NoData => {
            minimal_ttl(m, t, cfg.nttl).max(cfg.minnttl).min(cfg.nttl)
        }
        Type::ServerError => cfg.failttl,
        _ => minimal_ttl(m, t, cfg.pttl).max(cfg.minpttl).min(cfg.pttl),
    }
}

//! What kind of reply this is (CoreDNS's `response.Typify` plus the cache's NODATA rule), whether
//! it may be cached, and for how long.

use std::time::Duration;

use ferrodns_plugin::proto::op::{Message, OpCode, ResponseCode};
use ferrodns_plugin::proto::rr::{DNSClass, Name, RData, RecordType};

use crate::config::{Config, MIN_TTL};

/// A reply's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// A positive answer (or an empty NOERROR).
    NoError,
    /// NXDOMAIN.
    NameError,
    /// SERVFAIL or NOTIMP.
    ServerError,
    /// NOERROR without the asked type, with an SOA.
    NoData,
    /// A referral.
    Delegation,
    /// NOTIFY, AXFR, IXFR.
    Meta,
    /// UPDATE.
    Update,
    /// Anything else (REFUSED, FORMERR, expired signatures ...).
    OtherError,
}

fn has_soa(m: &Message) -> bool {
    m.authorities
        .iter()
        .any(|r| r.record_type() == RecordType::SOA)
}

/// `Typify` followed by the cache's NODATA rule; `now` is the Unix time for RRSIG validity.
pub fn cache_type(m: &Message, now: i64) -> Type {
    let t = typify(m, now);
    if t == Type::NoError && has_soa(m) && is_nodata(m) {
        return Type::NoData;
    }
    t
}

fn typify(m: &Message, now: i64) -> Type {
    let op = m.metadata.op_code;
    if op == OpCode::Update {
        return Type::Update;
    }
    if op == OpCode::Notify {
        return Type::Meta;
    }
    if let Some(q) = m.queries.first()
        && matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR)
    {
        return Type::Meta;
    }
    let do_bit = m.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
    if do_bit && any_expired_rrsig(m, now) {
        return Type::OtherError;
    }
    let rcode = m.metadata.response_code;
    if !m.answers.is_empty() && rcode == ResponseCode::NoError {
        return Type::NoError;
    }
    if !m.answers.is_empty() && rcode == ResponseCode::NXDomain {
        return Type::OtherError;
    }
    let soa = has_soa(m);
    let ns = m
        .authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::NS)
        .count();
    if soa && rcode == ResponseCode::NoError {
        return Type::NoData;
    }
    if rcode == ResponseCode::NXDomain {
        return Type::NameError;
    }
    if rcode == ResponseCode::ServFail || rcode == ResponseCode::NotImp {
        return Type::ServerError;
    }
    if ns > 0 && rcode == ResponseCode::NoError {
        return Type::Delegation;
    }
    if rcode == ResponseCode::NoError {
        return Type::NoError;
    }
    Type::OtherError
}

fn any_expired_rrsig(m: &Message, now: i64) -> bool {
    const YEAR68: i64 = 1 << 31;
    m.answers
        .iter()
        .chain(&m.authorities)
        .chain(&m.additionals)
        .filter_map(|r| match &r.data {
            RData::Unknown { code, rdata } if *code == RecordType::RRSIG => {
                Some(rdata.anything.as_slice())
            }
            _ => None,
        })
        .any(|b| {
            let (Some(exp), Some(inc)) = (b.get(8..12), b.get(12..16)) else {
                return false;
            };
            let exp = i64::from(u32::from_be_bytes([exp[0], exp[1], exp[2], exp[3]]));
            let inc = i64::from(u32::from_be_bytes([inc[0], inc[1], inc[2], inc[3]]));
            let ti = inc + ((inc - now) / YEAR68) * YEAR68;
            let te = exp + ((exp - now) / YEAR68) * YEAR68;
            !(ti <= now && now <= te)
        })
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

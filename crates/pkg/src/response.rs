//! CoreDNS's classification of replies (`plugin/pkg/response`): a reply's type (`Typify`) and
//! the class the `class` option filters on (`Classify`).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

/// The type of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// A positive reply.
    NoError,
    /// NXDOMAIN.
    NameError,
    /// SERVFAIL or NOTIMP.
    ServerError,
    /// NOERROR with an SOA in the authority section and no answer.
    NoData,
    /// NOERROR with NS records in the authority section and no answer.
    Delegation,
    /// NOTIFY, or a transfer (AXFR/IXFR question).
    Meta,
    /// A dynamic update.
    Update,
    /// Anything else, including no reply at all.
    OtherError,
}

impl Type {
    /// The name CoreDNS gives the type (`NOERROR`, `NXDOMAIN`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Type::NoError => "NOERROR",
            Type::NameError => "NXDOMAIN",
            Type::ServerError => "SERVERERROR",
            Type::NoData => "NODATA",
            Type::Delegation => "DELEGATION",
            Type::Meta => "META",
            Type::Update => "UPDATE",
            Type::OtherError => "OTHERERROR",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A response class, as written after `class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Every reply.
    All,
    /// NOERROR with data, and delegations.
    Success,
    /// NXDOMAIN and NODATA.
    Denial,
    /// Everything else.
    Error,
}

impl Class {
    /// Parse a class name; the error text is CoreDNS's.
    pub fn parse(s: &str) -> Result<Class, String> {
        match s {
            "all" => Ok(Class::All),
            "success" => Ok(Class::Success),
            "denial" => Ok(Class::Denial),
            "error" => Ok(Class::Error),
            _ => Err(format!("invalid Class: {s}")),
        }
    }

    /// The class's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::All => "all",
            Class::Success => "success",
            Class::Denial => "denial",
            Class::Error => "error",
        }
    }

    /// The class of a reply type.
    pub fn of(t: Type) -> Class {
        match t {
            Type::NoError | Type::Delegation => Class::Success,
            Type::NameError | Type::NoData => Class::Denial,
            _ => Class::Error,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classify a reply (`None`: nothing was written) at time `now` (seconds since the epoch; only
/// used to find expired signatures when the reply's OPT has the DO bit).
pub fn typify(m: Option<&Message>, now: i64) -> Type {
    let Some(m) = m else {
        return Type::OtherError;
    };
    let dnssec_ok = m.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
    match m.metadata.op_code {
        OpCode::Update => return Type::Update,
        OpCode::Notify => return Type::Meta,
        _ => {}
    }
    if let Some(q) = m.queries.first()
        && matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR)
    {
        return Type::Meta;
    }
    if dnssec_ok
        && [&m.answers, &m.authorities, &m.additionals]
            .iter()
            .any(|rrs| rrs.iter().any(|r| rrsig_expired(r, now)))
    {
        return Type::OtherError;
    }

    let rcode = m.metadata.response_code;
    if !m.answers.is_empty() && rcode == ResponseCode::NoError {
        return Type::NoError;
    }
    if !m.answers.is_empty() && rcode == ResponseCode::NXDomain {
        return Type::OtherError;
    }
    let soa = m
        .authorities
        .iter()
        .any(|r| r.record_type() == RecordType::SOA);
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

/// Seconds since the epoch now.
pub fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Whether an RRSIG record is outside its validity period, with the inception and expiration
/// read in RFC 1982 serial arithmetic as miekg/dns's `ValidityPeriod` does.
fn rrsig_expired(r: &Record, now: i64) -> bool {
    if r.record_type() != RecordType::RRSIG {
        return false;
    }
    let mut buf = Vec::new();
    let mut enc = BinEncoder::new(&mut buf);
    if r.data.emit(&mut enc).is_err() || buf.len() < 16 {
        return false;
    }
    let word = |i: usize| {
        i64::from(u32::from_be_bytes([
            buf[i],
            buf[i + 1],
            buf[i + 2],
            buf[i + 3],
        ]))
    };
    let (expiration, inception) = (word(8), word(12));
    !validity_period(inception, expiration, now)
}

/// miekg/dns's RRSIG `ValidityPeriod`.
pub fn validity_period(inception: i64, expiration: i64, now: i64) -> bool {
    const YEAR68: i64 = 1 << 31;
    let modi = (inception - now) / YEAR68;
    let mode = (expiration - now) / YEAR68;
    let ti = inception + modi * YEAR68;
    let te = expiration + mode * YEAR68;
    ti <= now && now <= te
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, MessageType, Query};
    use hickory_proto::rr::rdata::{A, NS, NULL, SOA};
    use hickory_proto::rr::{Name, RData};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    fn reply(rcode: ResponseCode) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.add_query(Query::query(name("example.org."), RecordType::A));
        m
    }

    fn a() -> Record {
        Record::from_rdata(name("example.org."), 5, RData::A(A::new(192, 0, 2, 1)))
    }

    fn soa() -> Record {
        let soa = SOA::new(name("ns."), name("mail."), 1, 2, 3, 4, 5);
        Record::from_rdata(name("example.org."), 5, RData::SOA(soa))
    }

    fn ns() -> Record {
        Record::from_rdata(name("example.org."), 5, RData::NS(NS(name("ns."))))
    }

    /// An RRSIG with the given validity window, as raw RDATA.
    fn rrsig(inception: u32, expiration: u32) -> Record {
        let mut rdata = vec![0, 1, 8, 2, 0, 0, 0, 60];
        rdata.extend_from_slice(&expiration.to_be_bytes());
        rdata.extend_from_slice(&inception.to_be_bytes());
        rdata.extend_from_slice(&[0, 1, 0, 0xab]);
        Record::from_rdata(
            name("example.org."),
            5,
            RData::Unknown {
                code: RecordType::RRSIG,
                rdata: NULL::with(rdata),
            },
        )
    }

    #[test]
    fn typify_table() {
        let now = 1_700_000_000;
        let with = |rcode, f: &dyn Fn(&mut Message)| {
            let mut m = reply(rcode);
            f(&mut m);
            typify(Some(&m), now)
        };
        assert_eq!(typify(None, now), Type::OtherError);
        assert_eq!(
            with(ResponseCode::NoError, &|m| m.answers.push(a())),
            Type::NoError
        );
        assert_eq!(
            with(ResponseCode::NXDomain, &|m| m.answers.push(a())),
            Type::OtherError
        );
        assert_eq!(
            with(ResponseCode::NoError, &|m| m.authorities.push(soa())),
            Type::NoData
        );
        assert_eq!(
            with(ResponseCode::NXDomain, &|m| m.authorities.push(soa())),
            Type::NameError
        );
        assert_eq!(with(ResponseCode::NXDomain, &|_| {}), Type::NameError);
        assert_eq!(with(ResponseCode::ServFail, &|_| {}), Type::ServerError);
        assert_eq!(with(ResponseCode::NotImp, &|_| {}), Type::ServerError);
        assert_eq!(with(ResponseCode::Refused, &|_| {}), Type::OtherError);
        assert_eq!(
            with(ResponseCode::NoError, &|m| m.authorities.push(ns())),
            Type::Delegation
        );
        assert_eq!(with(ResponseCode::NoError, &|_| {}), Type::NoError);
        assert_eq!(
            with(ResponseCode::NoError, &|m| m.metadata.op_code =
                OpCode::Update),
            Type::Update
        );
        assert_eq!(
            with(ResponseCode::ServFail, &|m| m.metadata.op_code =
                OpCode::Notify),
            Type::Meta
        );
        assert_eq!(
            with(ResponseCode::NoError, &|m| {
                m.queries[0].set_query_type(RecordType::AXFR);
            }),
            Type::Meta
        );
    }

    #[test]
    fn expired_signatures_only_count_with_do() {
        let now: u32 = 1_700_000_000;
        let expired = rrsig(now - 200, now - 100);
        let valid = rrsig(now - 100, now + 100);
        let mut m = reply(ResponseCode::NoError);
        m.answers.push(a());
        m.answers.push(expired);
        assert_eq!(typify(Some(&m), i64::from(now)), Type::NoError);
        let mut edns = Edns::new();
        edns.set_dnssec_ok(true);
        m.edns = Some(edns);
        assert_eq!(typify(Some(&m), i64::from(now)), Type::OtherError);
        m.answers[1] = valid.clone();
        assert_eq!(typify(Some(&m), i64::from(now)), Type::NoError);
        m.answers.truncate(1);
        m.additionals.push(rrsig(now + 10, now + 100));
        assert_eq!(typify(Some(&m), i64::from(now)), Type::OtherError);
    }

    #[test]
    fn serial_arithmetic_validity() {
        // Results of miekg/dns's ValidityPeriod for the same inputs (checked with Go).
        let cases: [(u32, u32, i64, bool); 7] = [
            (20, 100, (1 << 32) + 50, false),
            (4_294_967_000, 100, (1 << 32) + 50, false),
            (0, 100, 50, true),
            (100, 200, 50, false),
            (0, 40, 50, false),
            (10, 4_000_000_000, 3_000_000_000, true),
            (3_000_000_000, 100, 1_700_000_000, false),
        ];
        for (inception, expiration, now, want) in cases {
            assert_eq!(
                validity_period(i64::from(inception), i64::from(expiration), now),
                want,
                "{inception} {expiration} {now}"
            );
        }
    }

    #[test]
    fn classes() {
        assert_eq!(Class::of(Type::NoError), Class::Success);
        assert_eq!(Class::of(Type::Delegation), Class::Success);
        assert_eq!(Class::of(Type::NameError), Class::Denial);
        assert_eq!(Class::of(Type::NoData), Class::Denial);
        for t in [
            Type::ServerError,
            Type::Meta,
            Type::Update,
            Type::OtherError,
        ] {
            assert_eq!(Class::of(t), Class::Error);
        }
        assert_eq!(Class::parse("denial"), Ok(Class::Denial));
        assert_eq!(
            Class::parse("Denial"),
            Err("invalid Class: Denial".to_string())
        );
    }
}

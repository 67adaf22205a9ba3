//! The answer records built from kubernetes' service records, as CoreDNS builds them from its
//! `msg.Service` values: address records at the plugin's TTL, CNAME and SRV records at the
//! service's own, SRV weights shared out per priority, SRV targets named from the record's key.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ferrodns_pkg::names::{fqdn, join, next_label};
use ferrodns_pkg::text::name_from_presentation;
use ferrodns_plugin::proto::rr::rdata::{A, AAAA, CNAME, PTR, SRV};
use ferrodns_plugin::proto::rr::{Name, RData, Record, RecordType};
use ferrodns_plugin::{Request, ServiceRecord};

use crate::record;

/// What a service record's host is (`msg.Service.HostType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostType {
    /// An IPv4 address (or an IPv4-mapped IPv6 one).
    A(std::net::Ipv4Addr),
    /// An IPv6 address.
    Aaaa(std::net::Ipv6Addr),
    /// A name to point at.
    Cname,
    /// A name with text: a TXT record, which none of these answers use.
    Txt,
}

/// The kind of `s.host`.
pub fn host_type(s: &ServiceRecord) -> HostType {
    match s.host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => HostType::A(v4),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => HostType::A(v4),
            None => HostType::Aaaa(v6),
        },
        Err(_) if s.text.is_empty() => HostType::Cname,
        Err(_) => HostType::Txt,
    }
}

/// The domain name a record's key stands for (`msg.Domain`): the path's elements after the
/// first, reversed (`/c/org/example/ns/svc` is `svc.ns.example.org.`).
pub fn domain(key: &str) -> String {
    let mut parts: Vec<&str> = key.split('/').collect();
    if parts.last() == Some(&"") {
        parts.pop();
    }
    if parts.len() < 2 {
        return ".".to_string();
    }
    parts[1..].reverse();
    join(&parts[1..parts.len() - 1])
}

/// `name` without its `n` leftmost labels, or whole when it has no more than `n`.
pub fn target_strip(name: &str, n: usize) -> &str {
    let (mut offset, mut end) = (0, false);
    for _ in 0..n {
        (offset, end) = next_label(name, offset);
    }
    if end { name } else { &name[offset..] }
}

/// A or AAAA answers (`qtype`): the services' addresses of that family at `ttl`, each address
/// once, and for a service whose host is a name a CNAME to it (at the service's TTL) followed
/// by the answer of looking that name up through the server. The flag is whether such a
/// lookup came back truncated.
pub async fn addresses(
    req: &Request,
    services: &[ServiceRecord],
    qname: &Name,
    qtype: RecordType,
    ttl: u32,
) -> (Vec<Record>, bool) {
    let mut out = Vec::new();
    let mut truncated = false;
    let mut seen = HashSet::new();
    for s in services {
        let data = match host_type(s) {
            HostType::Cname => {
                let Some(target) = name_from_presentation(&fqdn(&s.host), None) else {
                    continue;
                };
                out.push(record(
                    qname.clone(),
                    s.ttl,
                    RData::CNAME(CNAME(target.clone())),
                ));
                if let Ok(resp) = req.lookup(target, qtype).await {
                    out.extend(resp.answers);
                    truncated |= resp.metadata.truncation;
                }
                continue;
            }
            HostType::A(v4) if qtype == RecordType::A => RData::A(A(v4)),
            HostType::Aaaa(v6) if qtype == RecordType::AAAA => RData::AAAA(AAAA(v6)),
            _ => continue,
        };
        if seen.insert(s.host.as_str()) {
            out.push(record(qname.clone(), ttl, data));
        }
    }
    (out, truncated)
}

/// PTR answers: each host once, as a name in `zone`, at `ttl`.
pub fn ptr(services: &[ServiceRecord], qname: &Name, zone: &str, ttl: u32) -> Vec<Record> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for s in services {
        if !seen.insert(s.host.as_str()) {
            continue;
        }
        let target = fqdn(&join(&[&s.host, zone]));
        if let Some(target) = name_from_presentation(&target, None) {
            out.push(record(qname.clone(), ttl, RData::PTR(PTR(target))));
        }
    }
    out
}

/// The SRV weight of `s`: its share (out of 100) of the weights of its priority, at least 1; a
/// weight of 0 counts as 100.
fn srv_weight(s: &ServiceRecord, totals: &HashMap<u16, u32>) -> u16 {
    let own = if s.weight == 0 {
        100
    } else {
        u32::from(s.weight)
    };
    let total = totals.get(&s.priority).copied().unwrap_or(own).max(1);
    let share = (100.0 / f64::from(total) * f64::from(own)).floor();
    // `share` lies in 0..=100.
    let w = share as u16;
    w.max(1)
}

/// An SRV record for `s` pointing at `target` (the service's TTL, priority and port).
fn srv_record(qname: &Name, s: &ServiceRecord, weight: u16, target: Name) -> Record {
    record(
        qname.clone(),
        s.ttl,
        RData::SRV(SRV::new(s.priority, weight, s.port, target)),
    )
}

/// SRV answers and their additional records. A service whose host is an address gets a target
/// named from its key and that address at `ttl` in the additional section; one whose host is a
/// name points at it, and the name's addresses are looked up through the server. Services
/// without a port (0) are left out; each (target, port) and (target, address) pair is used
/// once.
pub async fn srv(
    req: &Request,
    services: &[ServiceRecord],
    qname: &Name,
    ttl: u32,
) -> (Vec<Record>, Vec<Record>) {
    let mut totals: HashMap<u16, u32> = HashMap::new();
    for s in services {
        let w = if s.weight == 0 {
            100
        } else {
            u32::from(s.weight)
        };
        *totals.entry(s.priority).or_insert(0) += w;
    }
    let mut seen: HashSet<(String, u16, String)> = HashSet::new();
    let mut answers = Vec::new();
    let mut extra = Vec::new();
    for s in services {
        if s.port == 0 {
            continue;
        }
        let weight = srv_weight(s, &totals);
        let kind = host_type(s);
        let host = match kind {
            HostType::Cname => s.host.clone(),
            HostType::A(_) | HostType::Aaaa(_) => domain(&s.key),
            HostType::Txt => continue,
        };
        let target_text = fqdn(&host);
        let target_text = target_strip(&target_text, s.target_strip).to_string();
        let Some(target) = name_from_presentation(&target_text, None) else {
            continue;
        };
        if seen.insert((target_text.clone(), s.port, String::new())) {
            answers.push(srv_record(qname, s, weight, target.clone()));
        }
        let addr_key = match kind {
            HostType::Cname => fqdn(&s.host),
            _ => s.host.clone(),
        };
        if !seen.insert((target_text, 0, addr_key.clone())) {
            continue;
        }
        match kind {
            HostType::Cname => {
                let Some(addr) = name_from_presentation(&addr_key, None) else {
                    continue;
                };
                for qtype in [RecordType::A, RecordType::AAAA] {
                    if let Ok(resp) = req.lookup(addr.clone(), qtype).await {
                        extra.extend(resp.answers);
                    }
                }
            }
            HostType::A(v4) => extra.push(record(target, ttl, RData::A(A(v4)))),
            HostType::Aaaa(v6) => extra.push(record(target, ttl, RData::AAAA(AAAA(v6)))),
            HostType::Txt => {}
        }
    }
    (answers, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(host: &str, priority: u16, weight: u16) -> ServiceRecord {
        ServiceRecord {
            host: host.into(),
            port: 80,
            priority,
            weight,
            ttl: 5,
            ..ServiceRecord::default()
        }
    }

    #[test]
    fn host_kinds() {
        assert!(matches!(host_type(&svc("1.2.3.4", 0, 0)), HostType::A(_)));
        assert!(matches!(
            host_type(&svc("::ffff:1.2.3.4", 0, 0)),
            HostType::A(_)
        ));
        assert!(matches!(
            host_type(&svc("2001:db8::1", 0, 0)),
            HostType::Aaaa(_)
        ));
        assert_eq!(host_type(&svc("example.com", 0, 0)), HostType::Cname);
        let mut t = svc("example.com", 0, 0);
        t.text = "x".into();
        assert_eq!(host_type(&t), HostType::Txt);
    }

    #[test]
    fn keys_name_targets() {
        assert_eq!(domain("/c/org/example/ns/svc"), "svc.ns.example.org.");
        assert_eq!(domain("/c/org/example/ns/svc/"), "svc.ns.example.org.");
        assert_eq!(domain("/c"), ".");
        assert_eq!(target_strip("a.b.c.", 1), "b.c.");
        assert_eq!(target_strip("a.b.c.", 3), "a.b.c.");
    }

    #[test]
    fn weights_share_a_priority() {
        let s = [
            svc("a", 1, 0),
            svc("b", 1, 0),
            svc("c", 1, 0),
            svc("d", 2, 7),
        ];
        let mut totals = HashMap::new();
        for x in &s {
            *totals.entry(x.priority).or_insert(0) += if x.weight == 0 {
                100
            } else {
                u32::from(x.weight)
            };
        }
        assert_eq!(srv_weight(&s[0], &totals), 33);
        assert_eq!(srv_weight(&s[3], &totals), 100);
        let tiny = [svc("a", 0, 1), svc("b", 0, 65535)];
        let mut totals = HashMap::new();
        totals.insert(0, 65536);
        assert_eq!(srv_weight(&tiny[0], &totals), 1);
    }
}

//! A stand-in for kubernetes' side of k8s_external: services by name, the name server's
//! addresses and a serial.

#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};

use ferrodns_plugin::proto::op::ResponseCode;
use ferrodns_plugin::proto::rr::rdata::{A, AAAA};
use ferrodns_plugin::proto::rr::{Name, RData, Record};
use ferrodns_plugin::{Externaler, Request, ServiceRecord};

pub const SERIAL: u32 = 1_499_347_823;

pub struct FakeKubernetes {
    /// (lowercased name, records) pairs.
    pub services: Vec<(&'static str, Vec<ServiceRecord>)>,
    /// Names that exist without records of their own (NODATA).
    pub empty: Vec<&'static str>,
}

pub fn svc(host: &str, port: u16, key: &str) -> ServiceRecord {
    ServiceRecord {
        host: host.into(),
        port,
        ttl: 30,
        key: key.into(),
        ..ServiceRecord::default()
    }
}

pub fn fake() -> FakeKubernetes {
    let key = "/c/org/example/ns/svc1";
    FakeKubernetes {
        services: vec![
            (
                "svc1.ns.example.org.",
                vec![
                    svc("192.0.2.10", 80, key),
                    svc("192.0.2.10", 443, key),
                    svc("2001:db8::10", 80, key),
                    svc("192.0.2.11", 80, key),
                ],
            ),
            (
                "ext.ns.example.org.",
                vec![svc("lb.example.net", 8080, "/c/org/example/ns/ext")],
            ),
            (
                "hl.ns.example.org.",
                vec![
                    ServiceRecord {
                        target_strip: 0,
                        ..svc("10.0.0.1", 80, "/c/org/example/ns/hl/pod-a")
                    },
                    svc("10.0.0.2", 80, "/c/org/example/ns/hl/pod-b"),
                    svc("10.0.0.3", 0, "/c/org/example/ns/hl/pod-c"),
                ],
            ),
            (
                "10.2.0.192.in-addr.arpa.",
                vec![
                    svc("svc1.ns", 0, ""),
                    svc("svc1.ns", 0, ""),
                    svc("other.ns", 0, ""),
                ],
            ),
        ],
        empty: vec!["ns.example.org."],
    }
}

impl Externaler for FakeKubernetes {
    fn external(
        &self,
        req: &Request,
        _zone: &str,
        _headless: bool,
    ) -> (Vec<ServiceRecord>, ResponseCode) {
        let name = req.name_lower();
        if let Some((_, s)) = self.services.iter().find(|(n, _)| *n == name) {
            return (s.clone(), ResponseCode::NoError);
        }
        if self.empty.contains(&name.as_str()) {
            return (Vec::new(), ResponseCode::NoError);
        }
        (Vec::new(), ResponseCode::NXDomain)
    }

    fn external_address(&self, _req: &Request, _zone: &str, _headless: bool) -> Vec<Record> {
        let owner = Name::from_ascii("whatever.").expect("name");
        vec![
            Record::from_rdata(
                owner.clone(),
                999,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 53))),
            ),
            Record::from_rdata(
                owner,
                999,
                RData::AAAA(AAAA("2001:db8::53".parse::<Ipv6Addr>().expect("ip"))),
            ),
        ]
    }

    fn external_serial(&self, _zone: &str) -> u32 {
        SERIAL
    }
}

//! A stand-in for the plugins after autopath: answers A queries for the names it knows,
//! NODATA for the names it knows of no A record, NXDOMAIN for the rest, and records what it
//! was asked.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use ferrodns_plugin::proto::op::ResponseCode;
use ferrodns_plugin::proto::rr::rdata::{A, SOA};
use ferrodns_plugin::proto::rr::{Name, RData, Record};
use ferrodns_plugin::{AutoPather, Next, Plugin, PluginError, Reply, Request, async_trait};

#[derive(Default)]
pub struct Answerer {
    /// (name, address, TTL) of each A record.
    pub records: Vec<(&'static str, Ipv4Addr, u32)>,
    /// Names that exist without an A record.
    pub empty: Vec<&'static str>,
    /// The names asked, lowercased, in order.
    pub asked: Mutex<Vec<String>>,
}

impl Answerer {
    pub fn new(records: Vec<(&'static str, Ipv4Addr, u32)>, empty: Vec<&'static str>) -> Arc<Self> {
        Arc::new(Answerer {
            records,
            empty,
            asked: Mutex::new(Vec::new()),
        })
    }

    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().expect("lock").clone()
    }
}

#[async_trait]
impl Plugin for Answerer {
    fn name(&self) -> &'static str {
        "answerer"
    }

    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        let name = req.name_lower();
        self.asked.lock().expect("lock").push(name.clone());
        let mut m = req.reply();
        m.metadata.authoritative = true;
        let hits: Vec<_> = self.records.iter().filter(|r| r.0 == name).collect();
        if !hits.is_empty() {
            for (_, ip, ttl) in hits {
                m.answers
                    .push(Record::from_rdata(req.qname(), *ttl, RData::A(A(*ip))));
            }
            return Ok(Reply::message(m));
        }
        let soa = Record::from_rdata(
            Name::from_ascii("example.").expect("name"),
            60,
            RData::SOA(SOA::new(
                Name::from_ascii("ns.example.").expect("name"),
                Name::from_ascii("h.example.").expect("name"),
                1,
                2,
                3,
                4,
                5,
            )),
        );
        m.authorities.push(soa);
        if !self.empty.contains(&name.as_str()) {
            m.metadata.response_code = ResponseCode::NXDomain;
        }
        Ok(Reply::message(m))
    }
}

/// A fixed search path for every client, or none for clients other than `only`.
pub struct FakeKubernetes {
    pub path: Vec<String>,
    pub only: Option<std::net::IpAddr>,
}

impl AutoPather for FakeKubernetes {
    fn auto_path(&self, req: &Request) -> Option<Vec<String>> {
        match self.only {
            Some(ip) if req.client_ip() != ip => None,
            _ => Some(self.path.clone()),
        }
    }
}

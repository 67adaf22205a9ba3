//! A scripted backend for the cache tests: answers by question name from a table, counts the
//! requests it sees, and can be slowed down; plus a counting plugin ahead of the cache.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::{A, SOA};
use ferrodns_plugin::proto::rr::{Name, RData, Record};
use ferrodns_plugin::{Next, Plugin, PluginError, Reply, Request, Shared, async_trait};
use ferrodns_plugin_test as testkit;

/// What the backend answers for a name.
#[derive(Clone)]
pub struct Script {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub flags_ad: bool,
    pub truncated: bool,
    /// Answer with this question instead of the request's.
    pub question: Option<String>,
}

pub fn a(name: &str, ttl: u32, ip: [u8; 4]) -> Record {
    Record::from_rdata(
        Name::from_ascii(name).unwrap(),
        ttl,
        RData::A(A::new(ip[0], ip[1], ip[2], ip[3])),
    )
}

pub fn soa(zone: &str, ttl: u32) -> Record {
    let z = Name::from_ascii(zone).unwrap();
    Record::from_rdata(
        z.clone(),
        ttl,
        RData::SOA(SOA::new(
            Name::from_ascii("ns.example.org.").unwrap(),
            Name::from_ascii("hostmaster.example.org.").unwrap(),
            1,
            7200,
            3600,
            1209600,
            60,
        )),
    )
}

impl Script {
    pub fn answer(records: Vec<Record>) -> Self {
        Script {
            rcode: ResponseCode::NoError,
            answers: records,
            authorities: vec![],
            flags_ad: false,
            truncated: false,
            question: None,
        }
    }
    pub fn rcode(rcode: ResponseCode, authorities: Vec<Record>) -> Self {
        Script {
            rcode,
            answers: vec![],
            authorities,
            flags_ad: false,
            truncated: false,
            question: None,
        }
    }
}

#[derive(Default)]
pub struct Backend {
    pub table: Mutex<HashMap<String, Script>>,
    pub calls: AtomicUsize,
    /// How long each answer takes (tokio time): a slow upstream, the behaviour a test sets up,
    /// not a wait.
    pub delay: Mutex<Duration>,
    /// Answer every name not in the table with an A record for it (TTL 300).
    pub echo: bool,
    /// What the last request looked like (AD bit, protocol).
    pub last: Mutex<Option<Request>>,
}

impl Backend {
    pub fn new() -> Arc<Self> {
        Arc::new(Backend::default())
    }
    pub fn echo() -> Arc<Self> {
        Arc::new(Backend {
            echo: true,
            ..Backend::default()
        })
    }
    pub fn set(&self, name: &str, s: Script) {
        self.table
            .lock()
            .unwrap()
            .insert(name.to_ascii_lowercase(), s);
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Plugin for Backend {
    fn name(&self) -> &'static str {
        "backend"
    }
    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.last.lock().unwrap() = Some(req.clone());
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let q = req.question().unwrap().clone();
        let key = q.name().to_ascii().to_ascii_lowercase();
        let script = self.table.lock().unwrap().get(&key).cloned();
        let script = match script {
            Some(s) => s,
            None if self.echo => Script::answer(vec![Record::from_rdata(
                q.name().clone(),
                300,
                RData::A(A::new(192, 0, 2, 1)),
            )]),
            None => Script::rcode(ResponseCode::Refused, vec![]),
        };
        let mut m = Message::new(req.id(), MessageType::Response, OpCode::Query);
        m.metadata.recursion_desired = req.message().metadata.recursion_desired;
        m.metadata.recursion_available = true;
        m.metadata.response_code = script.rcode;
        m.metadata.authentic_data = script.flags_ad;
        m.metadata.truncation = script.truncated;
        match &script.question {
            Some(n) => {
                m.add_query(ferrodns_plugin::proto::op::Query::query(
                    Name::from_ascii(n).unwrap(),
                    q.query_type(),
                ));
            }
            None => {
                m.add_query(q);
            }
        }
        m.answers = script.answers;
        m.authorities = script.authorities;
        Ok(Reply::message(m))
    }
}

/// A plugin ahead of the cache that counts the requests it sees and passes them on: background
/// refreshes must start at the cache, not pass through it again.
#[derive(Default)]
pub struct Front {
    pub calls: AtomicUsize,
}

impl Front {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Plugin for Front {
    fn name(&self) -> &'static str {
        "front"
    }
    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        next.serve(req).await
    }
}

/// A cache from `directives` between a counting [`Front`] and `backend`, with a shared metrics
/// registry.
pub struct Rig {
    pub plugins: Vec<Arc<dyn Plugin>>,
    pub front: Arc<Front>,
    pub backend: Arc<Backend>,
    pub shared: Shared,
    pub cache: Arc<ferrodns_plugin_cache::Cache>,
}

impl Rig {
    pub fn new(directives: &str, backend: Arc<Backend>) -> Rig {
        let shared = Shared::default();
        // The setup must accept it as the server would.
        testkit::setup_with(&ferrodns_plugin_cache::DESCRIPTOR, directives, &shared)
            .unwrap_or_else(|e| panic!("setup: {e}"));
        let mut d = testkit::dispenser("cache", directives).unwrap();
        let cfg = ferrodns_plugin_cache::config::parse(&mut d, &[".".to_string()]).unwrap();
        let families = ferrodns_plugin_cache::metrics::Families::register(&shared.metrics);
        let cache = ferrodns_plugin_cache::Cache::new(cfg, families);
        let front = Arc::new(Front::default());
        let plugins: Vec<Arc<dyn Plugin>> = vec![front.clone(), cache.clone(), backend.clone()];
        Rig {
            plugins,
            front,
            backend,
            shared,
            cache,
        }
    }

    pub async fn ask(&self, req: Request) -> Message {
        let mut r = self.ask_reply(req).await;
        r.decoded().cloned().expect("a message")
    }

    pub async fn ask_reply(&self, mut req: Request) -> Reply {
        testkit::run(&self.plugins, &mut req)
            .await
            .expect("chain error")
    }

    pub fn metrics(&self) -> String {
        self.shared.metrics.encode()
    }
}

pub fn ttls(m: &Message) -> Vec<u32> {
    m.answers
        .iter()
        .chain(&m.authorities)
        .chain(&m.additionals)
        .map(|r| r.ttl)
        .collect()
}

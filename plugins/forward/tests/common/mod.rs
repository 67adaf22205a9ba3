//! An in-process fake upstream on 127.0.0.1 (UDP and TCP on one port) whose behaviour a test
//! scripts with a closure, and helpers to build forwarders and queries.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrodns_plugin::proto::op::{Message, MessageType, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RData, Record, RecordType, rdata::A};
use ferrodns_plugin::{Metrics, Plugin, PluginError, Protocol, Reply, Request};
use ferrodns_plugin_forward::Forward;
use ferrodns_plugin_forward::config;
use ferrodns_plugin_forward::metrics::ForwardMetrics;
use ferrodns_plugin_test as testkit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// What the fake upstream does with one query.
pub enum Act {
    /// Send these bytes.
    Reply(Vec<u8>),
    /// Send these bytes after a delay: a slow upstream (the sleep is the behaviour scripted,
    /// not a wait).
    Later(Duration, Vec<u8>),
    /// Send nothing.
    Drop,
    /// Close the TCP connection (nothing on UDP).
    Close,
    /// Send the first half of these bytes, then (on TCP) close the connection mid-reply: a
    /// reset stream, or a datagram cut short.
    Torn(Vec<u8>),
}

/// The transport a query arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Udp,
    Tcp,
}

type Handler = dyn Fn(&[u8], Via) -> Act + Send + Sync;

/// Every query received, with its transport.
pub type Seen = Arc<Mutex<Vec<(Via, Vec<u8>)>>>;

/// A running fake upstream.
pub struct Fake {
    pub addr: SocketAddr,
    pub seen: Seen,
    pub tcp_accepts: Arc<AtomicUsize>,
    /// Delayed replies (`Act::Later`) sent so far.
    pub late_sent: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Fake {
    /// Start one with this behaviour.
    pub async fn start(handler: impl Fn(&[u8], Via) -> Act + Send + Sync + 'static) -> Fake {
        let handler: Arc<Handler> = Arc::new(handler);
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
            let port = udp.local_addr().expect("addr").port();
            if let Ok(t) = TcpListener::bind(("127.0.0.1", port)).await {
                break (udp, t);
            }
        };
        let addr = udp.local_addr().expect("addr");
        let seen: Seen = Arc::default();
        let tcp_accepts = Arc::new(AtomicUsize::new(0));
        let late_sent = Arc::new(AtomicUsize::new(0));
        let udp = Arc::new(udp);
        let mut tasks = Vec::new();
        {
            let (h, seen, late) = (handler.clone(), seen.clone(), late_sent.clone());
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 65535];
                loop {
                    let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                        return;
                    };
                    let q = buf[..n].to_vec();
                    seen.lock().expect("lock").push((Via::Udp, q.clone()));
                    let sock = udp.clone();
                    match h(&q, Via::Udp) {
                        Act::Reply(r) => {
                            let _ = sock.send_to(&r, from).await;
                        }
                        Act::Later(d, r) => {
                            let late = late.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(d).await;
                                let _ = sock.send_to(&r, from).await;
                                late.fetch_add(1, Ordering::SeqCst);
                            });
                        }
                        Act::Torn(r) => {
                            let _ = sock.send_to(&r[..r.len() / 2], from).await;
                        }
                        Act::Drop | Act::Close => {}
                    }
                }
            }));
        }
        {
            let (h, seen, accepts, late) = (
                handler.clone(),
                seen.clone(),
                tcp_accepts.clone(),
                late_sent.clone(),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((conn, _)) = tcp.accept().await else {
                        return;
                    };
                    accepts.fetch_add(1, Ordering::SeqCst);
                    let (h, seen, late) = (h.clone(), seen.clone(), late.clone());
                    tokio::spawn(async move {
                        let (mut rd, wr) = conn.into_split();
                        let wr = Arc::new(tokio::sync::Mutex::new(wr));
                        loop {
                            let Ok(len) = rd.read_u16().await else { return };
                            let mut q = vec![0u8; usize::from(len)];
                            if rd.read_exact(&mut q).await.is_err() {
                                return;
                            }
                            seen.lock().expect("lock").push((Via::Tcp, q.clone()));
                            let frame = |r: Vec<u8>| {
                                let mut f = (r.len() as u16).to_be_bytes().to_vec();
                                f.extend_from_slice(&r);
                                f
                            };
                            match h(&q, Via::Tcp) {
                                Act::Reply(r) => {
                                    let _ = wr.lock().await.write_all(&frame(r)).await;
                                }
                                Act::Later(d, r) => {
                                    let (wr, late) = (wr.clone(), late.clone());
                                    tokio::spawn(async move {
                                        tokio::time::sleep(d).await;
                                        let _ = wr.lock().await.write_all(&frame(r)).await;
                                        late.fetch_add(1, Ordering::SeqCst);
                                    });
                                }
                                Act::Drop => {}
                                Act::Close => return,
                                Act::Torn(r) => {
                                    let f = frame(r);
                                    let _ = wr.lock().await.write_all(&f[..f.len() / 2]).await;
                                    return;
                                }
                            }
                        }
                    });
                }
            }));
        }
        Fake {
            addr,
            seen,
            tcp_accepts,
            late_sent,
            tasks,
        }
    }

    /// Queries received so far.
    pub fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    /// Delayed replies (`Act::Later`) sent so far.
    pub fn late_sent(&self) -> usize {
        self.late_sent.load(Ordering::SeqCst)
    }

    /// Queries received so far over one transport.
    pub fn count_via(&self, via: Via) -> usize {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(v, _)| *v == via)
            .count()
    }

    /// The question names (lowercased, dotted) and types received so far.
    pub fn questions(&self) -> Vec<(String, RecordType)> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|(_, q)| Message::from_vec(q).ok())
            .filter_map(|m| {
                m.queries
                    .first()
                    .map(|q| (q.name().to_ascii().to_lowercase(), q.query_type()))
            })
            .collect()
    }
}

/// A reply to `query` with `rcode` and A records with `ips` for the question name.
pub fn answer(query: &[u8], rcode: ResponseCode, ips: &[[u8; 4]]) -> Vec<u8> {
    let q = Message::from_vec(query).expect("query decodes");
    let mut m = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.metadata.response_code = rcode;
    m.queries = q.queries.clone();
    if let Some(question) = q.queries.first() {
        for ip in ips {
            m.answers.push(Record::from_rdata(
                question.name().clone(),
                300,
                RData::A(A::from(std::net::Ipv4Addr::from(*ip))),
            ));
        }
    }
    m.to_vec().expect("encode")
}

/// A NOERROR reply with one A record 192.0.2.1.
pub fn ok(query: &[u8]) -> Vec<u8> {
    answer(query, ResponseCode::NoError, &[[192, 0, 2, 1]])
}

/// A forwarder for the stanza `forward <text>` with fresh metrics; also the metrics registry.
pub fn forwarder(text: &str) -> (Arc<Forward>, Metrics) {
    let mut d = testkit::dispenser("forward", &format!("forward {text}")).expect("corefile");
    let cfg = config::parse_all(&mut d).expect("parses").remove(0);
    let metrics = Metrics::new();
    let f = Forward::new(cfg, ForwardMetrics::register(&metrics)).expect("forwarder");
    (Arc::new(f), metrics)
}

/// Run a query for `name`/A through `plugins` over `proto`.
pub async fn query(
    plugins: &[Arc<dyn Plugin>],
    name: &str,
    proto: Protocol,
) -> (Request, Result<Reply, PluginError>) {
    let mut req = testkit::request(name, RecordType::A);
    if proto == Protocol::Tcp {
        req = testkit::from_message(req.message().clone(), Protocol::Tcp);
    }
    let r = testkit::run(plugins, &mut req).await;
    (req, r)
}

/// The wire bytes of a reply, or a panic.
pub fn wire(r: &Result<Reply, PluginError>) -> Vec<u8> {
    match r {
        Ok(Reply::Wire(b)) => b.to_vec(),
        other => panic!("expected a wire reply, got {other:?}"),
    }
}

/// The decoded reply.
pub fn decoded(r: &Result<Reply, PluginError>) -> Message {
    match r {
        Ok(Reply::Wire(b)) => Message::from_vec(b).expect("decodes"),
        Ok(Reply::Message(m)) => (**m).clone(),
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// The name as a hickory name.
pub fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("name")
}

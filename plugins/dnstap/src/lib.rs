//! # dnstap
//!
//! CoreDNS's *dnstap* plugin: every client query and response of the block is logged as a
//! dnstap message (protobuf in Frame Streams) to a receiver over a unix socket, TCP or TLS, or
//! to the receivers connected to a listener (`dnstap listen`). With `full` the messages carry
//! the DNS messages' bytes. `forward` in the same block adds FORWARDER_QUERY and
//! FORWARDER_RESPONSE messages through the taps this plugin leaves in the block's state
//! ([`BlockTaps`]).
//!
//! Sending never holds a query up: an outgoing connection has a bounded queue (10,000 messages
//! per `queue` unit) whose overflow is dropped, counted and reported every 10 seconds; a lost
//! connection is dialled again.

pub mod fstrm;
pub mod io;
pub mod proto;
mod setup;

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use ferrodns_plugin::fit;
use ferrodns_plugin::proto::op::Message as DnsMessage;
use ferrodns_plugin::{
    Descriptor, Next, Plugin, PluginError, Protocol, Reply, Request, async_trait,
};
use ferrodns_plugin_log::replacer::{self, Label, Node, Recorded};
use prost::Message as _;

pub use setup::{Config, MAX_QUEUE, MAX_WRITE_BUFFER, default_version, hostname, parse};

/// The directive name.
pub const NAME: &str = "dnstap";

/// The tracing target of this plugin's log lines.
pub const TARGET: &str = "plugin/dnstap";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// Where one tap's frames go.
#[derive(Debug)]
pub enum Sink {
    /// A connection to a receiver.
    Outgoing(io::Outgoing),
    /// A listener receivers connect to.
    Listener(io::Listener),
}

impl Sink {
    fn send(&self, frame: Bytes) {
        match self {
            Sink::Outgoing(o) => o.send(frame),
            Sink::Listener(l) => l.send(frame),
        }
    }

    fn close(&self) {
        match self {
            Sink::Outgoing(o) => o.close(),
            Sink::Listener(l) => l.close(),
        }
    }
}

/// One `dnstap` line: what it sends and where.
#[derive(Debug)]
pub struct Tap {
    full: bool,
    identity: Vec<u8>,
    version: Vec<u8>,
    extra: Option<Vec<Node>>,
    sink: Arc<Sink>,
}

/// The taps of a block, in Corefile order, left in the block's state for `forward`.
#[derive(Debug, Clone, Default)]
pub struct BlockTaps(pub Vec<Arc<Tap>>);

impl Tap {
    fn new(cfg: &Config, sink: Arc<Sink>) -> Self {
        Tap {
            full: cfg.full,
            identity: cfg.identity.clone(),
            version: cfg.version.clone(),
            extra: (!cfg.extra.is_empty()).then(|| replacer::parse_format(&cfg.extra)),
            sink,
        }
    }

    /// Whether messages carry the DNS messages' bytes (`full`).
    pub fn full(&self) -> bool {
        self.full
    }

    /// Send `msg`, with the `extra` text rendered for `req`.
    pub fn tap(&self, msg: proto::Message, req: &Request) {
        let extra = self.extra.as_ref().map(|nodes| render_extra(nodes, req));
        let frame = proto::Dnstap {
            identity: Some(self.identity.clone()),
            version: Some(self.version.clone()),
            extra: extra.map(String::into_bytes),
            message: Some(msg),
            r#type: proto::DnstapType::Message as i32,
        };
        self.sink.send(Bytes::from(frame.encode_to_vec()));
    }
}

/// The `extra` text: CoreDNS renders it with no recorded response, so the response
/// placeholders print `-`.
fn render_extra(nodes: &[Node], req: &Request) -> String {
    let rec = Recorded::default();
    let mut out = String::new();
    for node in nodes {
        match node {
            Node::Label(Label::Rcode | Label::Rsize | Label::Duration | Label::Rflags) => {
                out.push('-')
            }
            n => out.push_str(&replacer::render(std::slice::from_ref(n), req, &rec)),
        }
    }
    out
}

/// Seconds and nanoseconds since the epoch.
pub fn time_parts(t: SystemTime) -> (u64, u32) {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}

fn family_and_bytes(ip: IpAddr) -> (proto::SocketFamily, Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => (proto::SocketFamily::Inet, v4.octets().to_vec()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (proto::SocketFamily::Inet, v4.octets().to_vec()),
            None => (proto::SocketFamily::Inet6, v6.octets().to_vec()),
        },
    }
}

fn socket_protocol(p: Protocol) -> proto::SocketProtocol {
    match p {
        Protocol::Udp => proto::SocketProtocol::Udp,
        Protocol::Tcp => proto::SocketProtocol::Tcp,
    }
}

/// A message of type `t` with nothing else set.
pub fn message(t: proto::MessageType) -> proto::Message {
    proto::Message {
        r#type: t as i32,
        ..Default::default()
    }
}

/// Set the query address and port, the socket family (from that address) and the protocol.
pub fn set_query_address(m: &mut proto::Message, addr: SocketAddr, p: Protocol) {
    let (fam, bytes) = family_and_bytes(addr.ip());
    m.socket_family = Some(fam as i32);
    m.socket_protocol = Some(socket_protocol(p) as i32);
    m.query_address = Some(bytes);
    m.query_port = Some(u32::from(addr.port()));
}

/// Set the response address and port, the socket family (from that address) and the protocol.
pub fn set_response_address(m: &mut proto::Message, addr: SocketAddr, p: Protocol) {
    let (fam, bytes) = family_and_bytes(addr.ip());
    m.socket_family = Some(fam as i32);
    m.socket_protocol = Some(socket_protocol(p) as i32);
    m.response_address = Some(bytes);
    m.response_port = Some(u32::from(addr.port()));
}

/// Set the query time.
pub fn set_query_time(m: &mut proto::Message, t: SystemTime) {
    let (s, n) = time_parts(t);
    m.query_time_sec = Some(s);
    m.query_time_nsec = Some(n);
}

/// Set the response time.
pub fn set_response_time(m: &mut proto::Message, t: SystemTime) {
    let (s, n) = time_parts(t);
    m.response_time_sec = Some(s);
    m.response_time_nsec = Some(n);
}

/// The request handler: one per block, sending through each of the block's taps in order.
#[derive(Debug)]
pub struct Dnstap {
    taps: Vec<Arc<Tap>>,
}

impl Dnstap {
    /// The block's taps.
    pub fn taps(&self) -> &[Arc<Tap>] {
        &self.taps
    }
}

/// The reply as the client gets it, which is what CoreDNS taps (its writer sizes the reply to
/// the request before dnstap packs it): the client's ID, the client's OPT record given as
/// CoreDNS's `SizeAndDo` does, and the records that do not fit the client's size dropped from
/// the end with TC set, as its `Scrub` does.
fn client_bytes(reply: &Reply, req: &Request) -> Option<Vec<u8>> {
    let id = req.id();
    let size = usize::from(req.size());
    let req_edns = req.message().edns.as_ref();
    let mut m = match reply {
        Reply::Message(m) => (**m).clone(),
        Reply::Wire(b) if req_edns.is_none() && b.len() <= size && b.len() >= 2 => {
            let mut v = b.to_vec();
            v[..2].copy_from_slice(&id.to_be_bytes());
            return Some(v);
        }
        Reply::Wire(b) => DnsMessage::from_vec(b).ok()?,
        Reply::Rcode(_) | Reply::Drop => return None,
    };
    m.metadata.id = id;
    if let Some(req_edns) = req_edns {
        fit::size_and_do(req_edns, &mut m);
    }
    fit::encode_within(&m, size)
}

#[async_trait]
impl Plugin for Dnstap {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        let query_time = SystemTime::now();
        let query_bytes = self
            .taps
            .iter()
            .any(|t| t.full)
            .then(|| req.wire().into_owned());
        for tap in &self.taps {
            let mut q = message(proto::MessageType::ClientQuery);
            set_query_time(&mut q, query_time);
            set_query_address(&mut q, req.src, req.protocol);
            if tap.full {
                q.query_message = query_bytes.clone();
            }
            tap.tap(q, req);
        }
        let result = next.serve(req).await;
        // A response is logged only when a plugin wrote one: an rcode left for the server to
        // answer bypasses the plugin's writer in CoreDNS too.
        let written = match &result {
            Ok(reply @ (Reply::Message(_) | Reply::Wire(_))) => Some(Cow::Borrowed(reply)),
            // A plugin that wrote a reply and still reports an error (rewrite).
            Err(e) => e
                .reply
                .as_ref()
                .map(|m| Cow::Owned(Reply::Message(m.clone()))),
            // An rcode left for the server to answer bypasses the plugin's writer in CoreDNS
            // too: no CLIENT_RESPONSE.
            Ok(_) => None,
        };
        if let Some(reply) = written {
            let bytes = self
                .taps
                .iter()
                .any(|t| t.full)
                .then(|| client_bytes(&reply, req))
                .flatten();
            let response_time = SystemTime::now();
            for tap in &self.taps {
                let mut r = message(proto::MessageType::ClientResponse);
                set_query_time(&mut r, query_time);
                set_response_time(&mut r, response_time);
                set_query_address(&mut r, req.src, req.protocol);
                if tap.full {
                    r.response_message = bytes.clone();
                }
                tap.tap(r, req);
            }
        }
        result
    }
}

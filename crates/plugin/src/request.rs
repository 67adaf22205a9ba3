//! A decoded client request and what the server knows about where it came from.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};

use crate::{Lookup, PluginError};

/// The transport a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Plain DNS over UDP.
    Udp,
    /// Plain DNS over TCP.
    Tcp,
}

impl Protocol {
    /// `udp` or `tcp`, as CoreDNS's `{proto}` placeholder prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        }
    }
}

/// One client request as the chain sees it.
///
/// The server guarantees on entry that the message is a QUERY (or NOTIFY) with exactly one
/// question, EDNS version 0 if any, and a zone of this block matching the question.
#[derive(Clone)]
pub struct Request {
    message: Message,
    /// The message as received, kept from the first change a plugin makes (copy on write: a
    /// request no plugin changes is never copied).
    received: Option<Box<Message>>,
    /// The request's bytes as received (before any plugin changed the message).
    pub raw: Bytes,
    /// The client's address.
    pub src: SocketAddr,
    /// The local address the request arrived on.
    pub local: SocketAddr,
    /// The transport.
    pub protocol: Protocol,
    /// The server's label, as CoreDNS's `server` metric label, e.g. `dns://:53`.
    pub server: Arc<str>,
    /// The zone of the server block that was chosen for this request, e.g. `example.org.`.
    pub zone: Arc<str>,
    metadata: Option<HashMap<String, MetaValue>>,
    upstream: Option<Arc<dyn Lookup>>,
    depth: u8,
    trace: Option<Arc<dyn TraceSpan>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("message", &self.message)
            .field("modified", &self.is_modified())
            .field("src", &self.src)
            .field("protocol", &self.protocol)
            .field("server", &self.server)
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

/// How deep lookups through the server may nest (a CNAME chased by a plugin whose answer is
/// chased again ...) before they fail instead of looping.
pub const MAX_LOOKUP_DEPTH: u8 = 8;

impl Request {
    /// A request as the server builds it.
    pub fn new(
        message: Message,
        raw: Bytes,
        src: SocketAddr,
        local: SocketAddr,
        protocol: Protocol,
        server: Arc<str>,
        zone: Arc<str>,
    ) -> Self {
        Request {
            message,
            raw,
            src,
            local,
            protocol,
            server,
            zone,
            metadata: None,
            received: None,
            upstream: None,
            depth: 0,
            trace: None,
        }
    }

    /// The decoded message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The message, to change it (as `rewrite` does); from then on [`Request::wire`] encodes
    /// it instead of returning the bytes received.
    pub fn message_mut(&mut self) -> &mut Message {
        if self.received.is_none() {
            self.received = Some(Box::new(self.message.clone()));
        }
        &mut self.message
    }

    /// The client's address as the client sees it: a query that reached a dual-stack socket
    /// from an IPv4 client has `src` in IPv4-mapped form (`::ffff:192.0.2.1`); here it is the
    /// IPv4 address, as Go's `net.IP.To4` gives it to CoreDNS's plugins.
    pub fn client_ip(&self) -> IpAddr {
        self.src.ip().to_canonical()
    }

    /// [`Request::client_ip`] with the client's port.
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::new(self.client_ip(), self.src.port())
    }

    /// An empty NOERROR reply to this request, as miekg/dns's `SetReply` builds it for CoreDNS's
    /// plugins: the ID, QR set, the opcode, for a QUERY the RD and CD bits, and the first
    /// question. Add records to its sections and return it in a [`crate::Reply::message`].
    pub fn reply(&self) -> Message {
        crate::wire::rcode_reply(&self.message, ResponseCode::NoError)
    }

    /// [`Request::reply`] with another rcode and no records (miekg/dns's `SetRcode`).
    pub fn reply_rcode(&self, rcode: ResponseCode) -> Message {
        crate::wire::rcode_reply(&self.message, rcode)
    }

    /// Whether a plugin changed the message.
    pub fn is_modified(&self) -> bool {
        self.received.is_some()
    }

    /// The message as the client sent it, whatever plugins changed since (the server answers
    /// with its ID, question and OPT).
    pub fn received(&self) -> &Message {
        self.received.as_deref().unwrap_or(&self.message)
    }

    /// The request in wire form: the bytes as received when no plugin changed the message (so
    /// a forwarder passes the client's query through untouched), else the message encoded.
    pub fn wire(&self) -> Cow<'_, [u8]> {
        if self.is_modified() {
            Cow::Owned(self.message.to_vec().unwrap_or_default())
        } else {
            Cow::Borrowed(&self.raw)
        }
    }

    /// Give the request a way to look names up through the server (done by the server).
    pub fn set_upstream(&mut self, upstream: Arc<dyn Lookup>, depth: u8) {
        self.upstream = Some(upstream);
        self.depth = depth;
    }

    /// The server's lookup handle this request carries, if any.
    pub fn upstream(&self) -> Option<Arc<dyn Lookup>> {
        self.upstream.clone()
    }

    /// How many lookups deep this request is (0 for a client's query).
    pub fn depth(&self) -> u8 {
        self.depth
    }

    /// Resolve `name`/`qtype` through this server's own zones and chains, as CoreDNS's
    /// `upstream.Lookup` does (the `template` and `file` plugins chase CNAMEs this way).
    pub async fn lookup(&self, name: Name, qtype: RecordType) -> Result<Message, PluginError> {
        if self.depth >= MAX_LOOKUP_DEPTH {
            return Err(PluginError::servfail(format!(
                "lookup of {name} nested more than {MAX_LOOKUP_DEPTH} deep"
            )));
        }
        match &self.upstream {
            Some(u) => u.lookup(self, name, qtype).await,
            None => Err(PluginError::servfail(
                "no upstream to look names up through",
            )),
        }
    }

    /// The (first) question, if the message still has one.
    pub fn question(&self) -> Option<&Query> {
        self.message.queries.first()
    }

    /// The question name as sent (case kept); the root when there is no question.
    pub fn qname(&self) -> Name {
        self.question()
            .map(|q| q.name().clone())
            .unwrap_or_else(Name::root)
    }

    /// The question name lowercased and fully qualified, in presentation format as CoreDNS
    /// prints it (`example.org.`, escapes as miekg/dns writes them).
    pub fn name_lower(&self) -> String {
        let mut s = presentation(&self.qname());
        s.make_ascii_lowercase();
        s
    }

    /// The question type (`A` when there is no question).
    pub fn qtype(&self) -> RecordType {
        self.question()
            .map(|q| q.query_type())
            .unwrap_or(RecordType::A)
    }

    /// The question class (`IN` when there is no question).
    pub fn qclass(&self) -> DNSClass {
        self.question()
            .map(|q| q.query_class())
            .unwrap_or(DNSClass::IN)
    }

    /// The query ID.
    pub fn id(&self) -> u16 {
        self.message.metadata.id
    }

    /// Whether the client set the DO bit in an OPT record.
    pub fn do_bit(&self) -> bool {
        self.message
            .edns
            .as_ref()
            .is_some_and(|e| e.flags().dnssec_ok)
    }

    /// The UDP size the client advertised, normalised as CoreDNS does: at least 512 for UDP,
    /// always 65535 for TCP.
    pub fn size(&self) -> u16 {
        match self.protocol {
            Protocol::Tcp => u16::MAX,
            Protocol::Udp => self
                .message
                .edns
                .as_ref()
                .map(|e| e.max_payload())
                .unwrap_or(512)
                .max(512),
        }
    }

    /// The request's length in bytes on the wire.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// True for an empty raw request (never the case for requests built by the server).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Turn metadata on for this request, as CoreDNS's `metadata` plugin does for the requests
    /// of its server block: from then on [`Request::set_metadata`] records labels. Labels
    /// already set are kept.
    pub fn enable_metadata(&mut self) {
        self.metadata.get_or_insert_with(HashMap::new);
    }

    /// Whether metadata is on for this request (the block has the `metadata` plugin).
    pub fn metadata_enabled(&self) -> bool {
        self.metadata.is_some()
    }

    /// Set a metadata label (CoreDNS's `metadata.SetValueFunc`, e.g. `log/type`). Without
    /// metadata on ([`Request::enable_metadata`]) this does nothing and returns `false`.
    pub fn set_metadata(&mut self, label: impl Into<String>, value: impl Into<String>) -> bool {
        match &mut self.metadata {
            Some(m) => {
                m.insert(label.into(), MetaValue::Text(value.into()));
                true
            }
            None => false,
        }
    }

    /// Set a label whose value is computed only when read (for labels that are costly to
    /// work out and seldom read). Does nothing and returns `false` without metadata on.
    pub fn set_metadata_fn(
        &mut self,
        label: impl Into<String>,
        value: impl Fn() -> String + Send + Sync + 'static,
    ) -> bool {
        match &mut self.metadata {
            Some(m) => {
                m.insert(label.into(), MetaValue::Func(Arc::new(value)));
                true
            }
            None => false,
        }
    }

    /// A metadata label's value, if set (evaluated now for a lazily set label).
    pub fn metadata(&self, label: &str) -> Option<Cow<'_, str>> {
        self.metadata.as_ref()?.get(label).map(MetaValue::get)
    }

    /// The labels set on this request, in no particular order (CoreDNS's `metadata.Labels`).
    pub fn metadata_labels(&self) -> impl Iterator<Item = &str> {
        self.metadata
            .iter()
            .flat_map(|m| m.keys().map(String::as_str))
    }

    /// Copy metadata (on/off state and every label) from another request: a plugin that
    /// re-runs its chain for a request of its own (cache's refreshes) carries the client
    /// request's labels over, as CoreDNS copies the value functions into a fresh context.
    pub fn copy_metadata_from(&mut self, other: &Request) {
        self.metadata.clone_from(&other.metadata);
    }
}

/// A metadata label's value: a text, or a function evaluated when the label is read.
#[derive(Clone)]
enum MetaValue {
    Text(String),
    Func(Arc<dyn Fn() -> String + Send + Sync>),
}

impl MetaValue {
    fn get(&self) -> Cow<'_, str> {
        match self {
            MetaValue::Text(s) => Cow::Borrowed(s),
            MetaValue::Func(f) => Cow::Owned(f()),
        }
    }
}

/// Whether `label` is a metadata label as CoreDNS's `metadata.IsLabel` defines it: it has a
/// `/` that is neither its first nor its last character.
pub fn is_metadata_label(label: &str) -> bool {
    matches!(label.find('/'), Some(p) if p > 0 && p < label.len() - 1)
}

/// A span open for a request being traced (set by the `trace` plugin). While a request carries
/// one, [`crate::Next::serve`] opens a child span named after each plugin it calls, and finishes
/// it when that plugin returns, as CoreDNS's `plugin.NextOrFailure` does. Requests without one
/// pay a single `None` check.
pub trait TraceSpan: Send + Sync {
    /// Open a child span of this one, named `name` (a plugin's name).
    fn child(&self, name: &'static str) -> Arc<dyn TraceSpan>;
    /// Finish the span (its end time is now). Later calls do nothing.
    fn finish(&self);
}

impl Request {
    /// The span this request is traced under, if any.
    pub fn trace_span(&self) -> Option<&Arc<dyn TraceSpan>> {
        self.trace.as_ref()
    }

    /// Trace the request under `span` (or stop tracing it with `None`); returns the previous one.
    pub fn set_trace_span(
        &mut self,
        span: Option<Arc<dyn TraceSpan>>,
    ) -> Option<Arc<dyn TraceSpan>> {
        std::mem::replace(&mut self.trace, span)
    }
}

/// A name in presentation format as miekg/dns unpacks it: the bytes `. ' @ ; ( ) " \` and space
/// are escaped with a backslash, other bytes outside `!`..`~` as `\DDD` (decimal); fully
/// qualified; the root is `.`. [`Request::name_lower`] prints the question name so; plugins
/// reach it as `ferrodns_pkg::text::presentation`, with the other miekg/dns texts.
pub fn presentation(name: &Name) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    for label in name.iter() {
        for &b in label {
            match b {
                b'.' | b' ' | b'\'' | b'@' | b';' | b'(' | b')' | b'"' | b'\\' => {
                    out.push('\\');
                    out.push(b as char);
                }
                0x21..=0x7e => out.push(b as char),
                _ => {
                    out.push('\\');
                    out.push_str(&format!("{b:03}"));
                }
            }
        }
        out.push('.');
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode};
    use std::str::FromStr;

    fn request() -> Request {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_str("a.example.").unwrap(),
            RecordType::A,
        ));
        let raw = Bytes::from(m.to_vec().unwrap());
        let addr: SocketAddr = "127.0.0.1:53".parse().unwrap();
        Request::new(
            m,
            raw,
            addr,
            addr,
            Protocol::Udp,
            "dns://:53".into(),
            ".".into(),
        )
    }

    #[test]
    fn the_client_is_seen_as_it_sees_itself_and_replies_follow_set_reply() {
        let mut r = request();
        r.src = "[::ffff:192.0.2.7]:5353".parse().unwrap();
        assert_eq!(r.client_addr(), "192.0.2.7:5353".parse().unwrap());
        r.src = "[2001:db8::1]:53".parse().unwrap();
        assert_eq!(r.client_ip(), "2001:db8::1".parse::<IpAddr>().unwrap());

        r.message_mut().metadata.recursion_desired = true;
        let m = r.reply();
        assert_eq!(m.metadata.id, 7);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.queries, r.message().queries);
        assert!(m.answers.is_empty());
        let refused = r.reply_rcode(ResponseCode::Refused);
        assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
        assert_eq!(refused.queries, r.message().queries);
    }

    #[test]
    fn a_changed_request_keeps_what_the_client_sent() {
        let mut r = request();
        assert!(!r.is_modified());
        assert!(matches!(r.wire(), Cow::Borrowed(_)));
        r.message_mut().queries[0].set_name(Name::from_str("b.example.").unwrap());
        r.message_mut().metadata.id = 9;
        assert!(r.is_modified());
        assert_eq!(r.received().queries[0].name().to_string(), "a.example.");
        assert_eq!(r.received().metadata.id, 7);
        assert_eq!(r.message().queries[0].name().to_string(), "b.example.");
        let sent = Message::from_vec(&r.wire()).unwrap();
        assert_eq!(sent.queries[0].name().to_string(), "b.example.");
    }
}

//! A decoded client request and what the server knows about where it came from.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};

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
#[derive(Debug, Clone)]
pub struct Request {
    /// The decoded message. Plugins such as `rewrite` may change it.
    pub message: Message,
    /// The request's bytes as received (before any plugin changed `message`).
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
    metadata: HashMap<String, String>,
}

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
            metadata: HashMap::new(),
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
        crate::text::name_lower(&self.qname())
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

    /// Set a metadata value (CoreDNS's `metadata` labels, e.g. `log/type`).
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.metadata.insert(key.into(), value.into());
    }

    /// A metadata value, if set.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }
}

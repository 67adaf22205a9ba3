//! The dnstap protobuf schema (dnstap.proto, proto2) as prost messages: the fields CoreDNS sets
//! and the receivers in tests and the conformance harness read.

/// The outer dnstap frame.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dnstap {
    /// The server's identity (`identity`, the hostname by default).
    #[prost(bytes = "vec", optional, tag = "1")]
    pub identity: Option<Vec<u8>>,
    /// The server's version string.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub version: Option<Vec<u8>>,
    /// The `extra` text after placeholder replacement.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub extra: Option<Vec<u8>>,
    /// The DNS message this frame carries.
    #[prost(message, optional, tag = "14")]
    pub message: Option<Message>,
    /// The frame type (always [`DnstapType::Message`]).
    #[prost(enumeration = "DnstapType", required, tag = "15")]
    pub r#type: i32,
}

/// `Dnstap.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DnstapType {
    /// A `Message` frame.
    Message = 1,
}

/// The address family of the socket a message crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SocketFamily {
    /// IPv4.
    Inet = 1,
    /// IPv6.
    Inet6 = 2,
}

/// The transport of the socket a message crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SocketProtocol {
    /// UDP.
    Udp = 1,
    /// TCP.
    Tcp = 2,
    /// DNS over TLS.
    Dot = 3,
    /// DNS over HTTPS.
    Doh = 4,
    /// DNSCrypt over UDP.
    DnsCryptUdp = 5,
    /// DNSCrypt over TCP.
    DnsCryptTcp = 6,
    /// DNS over QUIC.
    Doq = 7,
}

/// `Message.Type`: who sent or received the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MessageType {
    /// AUTH_QUERY.
    AuthQuery = 1,
    /// AUTH_RESPONSE.
    AuthResponse = 2,
    /// RESOLVER_QUERY.
    ResolverQuery = 3,
    /// RESOLVER_RESPONSE.
    ResolverResponse = 4,
    /// CLIENT_QUERY: a query from a client, as received.
    ClientQuery = 5,
    /// CLIENT_RESPONSE: the reply sent back to a client.
    ClientResponse = 6,
    /// FORWARDER_QUERY: a query sent to an upstream.
    ForwarderQuery = 7,
    /// FORWARDER_RESPONSE: an upstream's reply.
    ForwarderResponse = 8,
    /// STUB_QUERY.
    StubQuery = 9,
    /// STUB_RESPONSE.
    StubResponse = 10,
    /// TOOL_QUERY.
    ToolQuery = 11,
    /// TOOL_RESPONSE.
    ToolResponse = 12,
    /// UPDATE_QUERY.
    UpdateQuery = 13,
    /// UPDATE_RESPONSE.
    UpdateResponse = 14,
}

/// One DNS message seen by the server.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// The message type.
    #[prost(enumeration = "MessageType", required, tag = "1")]
    pub r#type: i32,
    /// The socket's family.
    #[prost(enumeration = "SocketFamily", optional, tag = "2")]
    pub socket_family: Option<i32>,
    /// The socket's transport.
    #[prost(enumeration = "SocketProtocol", optional, tag = "3")]
    pub socket_protocol: Option<i32>,
    /// The address that sent the query (4 or 16 octets).
    #[prost(bytes = "vec", optional, tag = "4")]
    pub query_address: Option<Vec<u8>>,
    /// The address that answered (4 or 16 octets).
    #[prost(bytes = "vec", optional, tag = "5")]
    pub response_address: Option<Vec<u8>>,
    /// The querier's port.
    #[prost(uint32, optional, tag = "6")]
    pub query_port: Option<u32>,
    /// The responder's port.
    #[prost(uint32, optional, tag = "7")]
    pub response_port: Option<u32>,
    /// When the query was seen, seconds since the epoch.
    #[prost(uint64, optional, tag = "8")]
    pub query_time_sec: Option<u64>,
    /// When the query was seen, nanoseconds.
    #[prost(fixed32, optional, tag = "9")]
    pub query_time_nsec: Option<u32>,
    /// The query in wire format (with `full`).
    #[prost(bytes = "vec", optional, tag = "10")]
    pub query_message: Option<Vec<u8>>,
    /// The query's zone (unused by CoreDNS).
    #[prost(bytes = "vec", optional, tag = "11")]
    pub query_zone: Option<Vec<u8>>,
    /// When the response was seen, seconds since the epoch.
    #[prost(uint64, optional, tag = "12")]
    pub response_time_sec: Option<u64>,
    /// When the response was seen, nanoseconds.
    #[prost(fixed32, optional, tag = "13")]
    pub response_time_nsec: Option<u32>,
    /// The response in wire format (with `full`).
    #[prost(bytes = "vec", optional, tag = "14")]
    pub response_message: Option<Vec<u8>>,
}

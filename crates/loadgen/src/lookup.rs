//! Host-name lookups the way Go's pure-Go resolver makes them, over and over: the logic of the
//! `ferrodns-testdns` binary (a stand-in for the `testdns` tool of node-local-dns articles).
//!
//! One lookup of a host name follows Go's `goLookupIPCNAMEOrder`:
//!
//! - the candidate names come from resolv.conf's `search` list and `ndots` ([`candidates`]);
//! - for each candidate, an A and an AAAA query go out at the same time (one after the other
//!   with `options single-request`), each from a new socket, so from a new ephemeral port, with
//!   a random ID, RD set and no EDNS;
//! - each query tries, for each of `attempts` rounds, every nameserver in order (starting one
//!   further on each query with `options rotate`) until one gives an answer: a reply to a query
//!   is a datagram with the query's ID, QR set and the same question, awaited up to `timeout`;
//!   anything else on the socket is ignored. A truncated reply makes the same query go again
//!   over TCP. NXDOMAIN, or NOERROR without a record of the query's type (NODATA), ends that
//!   query at once: the name does not exist, no other server is asked. SERVFAIL, REFUSED, any
//!   other RCODE, a lame referral (NOERROR, no records at all, neither AA nor RA), a timeout or a
//!   socket error make it ask the next server (or go to the next round);
//! - once both replies are in, the candidate succeeded if either had a record of its type; if
//!   not, the next candidate is tried, whatever the failure was (Go's default: no strict errors).
//!
//! The lookup succeeds when a candidate did. `/etc/hosts` is not consulted (the point is to
//! load the DNS path).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::stats::Histogram;

/// Go reads at most this many bytes of a UDP reply (its `maxDNSPacketSize`).
const MAX_UDP: usize = 1232;
/// Go and glibc use at most three nameservers.
const MAX_NAMESERVERS: usize = 3;

/// Why a lookup run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The resolver configuration file could not be read.
    #[error("reading {path}: {source}")]
    ReadConf {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Neither the configuration nor an override names a nameserver.
    #[error("no nameserver to query (no usable `nameserver` line in {0}, and no -server)")]
    NoNameserver(String),
    /// The host to look up is not a valid domain name.
    #[error("invalid host name {name:?}: {reason}")]
    InvalidHost {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The run's parameters are inconsistent (no loops, zero duration, ...).
    #[error("invalid test spec: {0}")]
    InvalidSpec(String),
    /// A duration could not be parsed.
    #[error("bad duration {0:?} (use 15s, 500ms, 2m, 1m30s or a plain number of seconds)")]
    BadDuration(String),
    /// A lookup loop panicked.
    #[error("lookup loop failed: {0}")]
    Loop(String),
}

/// Parses a duration: a plain number is seconds; otherwise a Go duration (`1m30s`, `500ms`),
/// read by the project's Go `time` rules.
pub fn parse_duration(s: &str) -> Result<Duration, LookupError> {
    let bad = || LookupError::BadDuration(s.to_string());
    let t = s.trim();
    if let Ok(v) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(v).map_err(|_| bad());
    }
    ferrodns_go::time::parse_duration(t).map_err(|_| bad())
}

/// What a lookup needs from resolv.conf, with Go's defaults ([`ResolvConf::default`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines (at most three, port 53), in order.
    pub nameservers: Vec<SocketAddr>,
    /// `search` domains (or the `domain` line), absolute, in order; the last such line wins.
    pub search: Vec<String>,
    /// `options ndots:N` (0..=15). Default 1.
    pub ndots: usize,
    /// `options timeout:N`: how long each query waits for its reply (at least 1 s). Default 5 s.
    pub timeout: Duration,
    /// `options attempts:N`: rounds over the nameservers for each query (at least 1). Default 2.
    pub attempts: u32,
    /// `options rotate`: each query starts with the next nameserver. Default false.
    pub rotate: bool,
    /// `options single-request` (or `single-request-reopen`): A, then AAAA. Default false.
    pub single_request: bool,
    /// `options use-vc` (or `usevc`, `tcp`): queries go over TCP only. Default false.
    pub use_tcp: bool,
}

impl Default for ResolvConf {
    fn default() -> Self {
        ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
            rotate: false,
            single_request: false,
            use_tcp: false,
        }
    }
}

impl ResolvConf {
    /// Reads and parses `path`. With no `search` or `domain` line the search list is the
    /// domain of the host name, as Go does (nothing if the host name has no dot).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, LookupError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LookupError::ReadConf {
            path: path.display().to_string(),
            source,
        })?;
        let mut conf = Self::parse(&text);
        if conf.search.is_empty()
            && !text
                .lines()
                .any(|l| matches!(l.split_whitespace().next(), Some("search" | "domain")))
        {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            if let Some((_, domain)) = host.trim().split_once('.')
                && !domain.is_empty()
            {
                conf.search = vec![rooted(domain)];
            }
        }
        Ok(conf)
    }

    /// Parses resolv.conf text. Unknown lines and options, and values that do not parse, are
    /// ignored, as by Go and glibc.
    pub fn parse(text: &str) -> Self {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            if line.starts_with(['#', ';']) {
                continue;
            }
            let mut f = line.split_whitespace();
            match f.next() {
                Some("nameserver") => {
                    if conf.nameservers.len() < MAX_NAMESERVERS
                        && let Some(ip) = f.next().and_then(nameserver_addr)
                    {
                        conf.nameservers.push(ip);
                    }
                }
                Some("domain") => {
                    if let Some(d) = f.next() {
                        conf.search = vec![rooted(d)];
                    }
                }
                Some("search") => {
                    conf.search = f.map(rooted).filter(|d| d != ".").collect();
                }
                Some("options") => {
                    for o in f {
                        conf.option(o);
                    }
                }
                _ => {}
            }
        }
        conf
    }

    fn option(&mut self, o: &str) {
        let num = |p: &str| o.strip_prefix(p).and_then(|v| v.parse::<u64>().ok());
        if let Some(n) = num("ndots:") {
            self.ndots = n.min(15) as usize;
        } else if let Some(n) = num("timeout:") {
            self.timeout = Duration::from_secs(n.max(1));
        } else if let Some(n) = num("attempts:") {
            self.attempts = n.clamp(1, u32::MAX as u64) as u32;
        } else {
            match o {
                "rotate" => self.rotate = true,
                "single-request" | "single-request-reopen" => self.single_request = true,
                "use-vc" | "usevc" | "tcp" => self.use_tcp = true,
                _ => {}
            }
        }
    }
}

/// `d` with a trailing dot.
fn rooted(d: &str) -> String {
    if d.ends_with('.') {
        d.to_string()
    } else {
        format!("{d}.")
    }
}

/// A `nameserver` value: an IP address (IPv6 with an optional `%zone`, an interface name or
/// index), port 53.
fn nameserver_addr(v: &str) -> Option<SocketAddr> {
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    let (ip, zone) = v.split_once('%')?;
    let ip: Ipv6Addr = ip.parse().ok()?;
    let scope = zone.parse::<u32>().ok().or_else(|| {
        std::fs::read_to_string(format!("/sys/class/net/{zone}/ifindex"))
            .ok()?
            .trim()
            .parse()
            .ok()
    })?;
    Some(SocketAddr::V6(SocketAddrV6::new(ip, 53, 0, scope)))
}

/// Go's `avoidDNS`: `.onion` names never go to DNS (RFC 7686).
fn avoid_dns(name: &str) -> bool {
    let n = name.strip_suffix('.').unwrap_or(name);
    n.len() >= 6 && n[n.len() - 6..].eq_ignore_ascii_case(".onion")
}

/// The names a lookup of `host` tries, in order, as Go's `nameList`: an absolute name alone;
/// otherwise, with at least `ndots` dots, the name then the name under each search domain;
/// with fewer, the search domains first and the name last. Names longer than 254 characters
/// are left out.
pub fn candidates(host: &str, conf: &ResolvConf) -> Vec<String> {
    if host.is_empty() || host.len() > 254 || (host.len() == 254 && !host.ends_with('.')) {
        return Vec::new();
    }
    if host.ends_with('.') {
        return if avoid_dns(host) {
            Vec::new()
        } else {
            vec![host.to_string()]
        };
    }
    let enough_dots = host.matches('.').count() >= conf.ndots;
    let name = format!("{host}.");
    let mut out = Vec::with_capacity(1 + conf.search.len());
    if enough_dots && !avoid_dns(&name) {
        out.push(name.clone());
    }
    for suffix in &conf.search {
        let fqdn = format!("{name}{suffix}");
        if !avoid_dns(&fqdn) && fqdn.len() <= 254 {
            out.push(fqdn);
        }
    }
    if !enough_dots && !avoid_dns(&name) {
        out.push(name);
    }
    out
}

/// One query in wire form (ID 0), and where its question ends.
struct Wire {
    bytes: Vec<u8>,
    qtype: RecordType,
    /// End of the question (name, type, class); it starts at 12.
    question_end: usize,
}

impl Wire {
    fn build(name: &Name, qtype: RecordType) -> Option<Self> {
        let mut msg = Message::new(0, MessageType::Query, OpCode::Query);
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(name.clone(), qtype));
        let bytes = msg.to_vec().ok()?;
        let mut i = 12;
        while *bytes.get(i)? != 0 {
            i += 1 + bytes[i] as usize;
        }
        Some(Wire {
            question_end: i + 5,
            bytes,
            qtype,
        })
    }

    /// Whether `reply` answers this query sent with `id`, as Go's `checkResponse` decides: the
    /// ID, QR set, exactly one question, the same name (ASCII case ignored), type and class.
    fn answered_by(&self, id: u16, reply: &[u8]) -> bool {
        let q = self.question_end;
        let name_end = q - 4;
        reply.len() >= q
            && reply[..2] == id.to_be_bytes()
            && reply[2] & 0x80 != 0
            && reply[4..6] == [0, 1]
            && reply[12..name_end].eq_ignore_ascii_case(&self.bytes[12..name_end])
            && reply[name_end..q] == self.bytes[name_end..q]
    }
}

/// A candidate name with its two queries.
struct Candidate {
    a: Wire,
    aaaa: Wire,
}

/// Why a single query gave no usable answer from a server.
#[derive(Debug)]
enum QueryError {
    Timeout,
    Io(std::io::ErrorKind),
    /// A reply that does not parse, or a TCP reply to something else.
    Invalid,
    /// Truncated over TCP too.
    Truncated,
    Rcode(ResponseCode),
    LameReferral,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Timeout => f.write_str("i/o timeout"),
            QueryError::Io(k) => write!(f, "{k}"),
            QueryError::Invalid => f.write_str("invalid DNS response"),
            QueryError::Truncated => f.write_str("no answer from DNS server (truncated)"),
            QueryError::Rcode(r) => write!(f, "server misbehaving ({r})"),
            QueryError::LameReferral => f.write_str("lame referral"),
        }
    }
}

/// What one query (all its rounds over the servers) came to.
enum QueryOutcome {
    Found(Vec<IpAddr>),
    NoSuchHost,
    Failed(String),
}

/// Why a lookup failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupFailure {
    /// Every candidate was NXDOMAIN or NODATA.
    NoSuchHost,
    /// Some candidate met a temporary error (timeouts, SERVFAIL, REFUSED, ...): the last one.
    Temporary(String),
}

impl fmt::Display for LookupFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupFailure::NoSuchHost => f.write_str("no such host"),
            LookupFailure::Temporary(e) => f.write_str(e),
        }
    }
}

/// Looks one host name up, again and again: the candidates and their queries are built once.
pub struct HostLookup {
    conf: ResolvConf,
    names: Vec<String>,
    candidates: Vec<Candidate>,
    /// Go's `soffset`: which nameserver the next query starts with under `rotate`.
    offset: AtomicU32,
}

impl HostLookup {
    /// Prepares lookups of `host` with `conf`, which must name a nameserver.
    pub fn new(host: &str, conf: ResolvConf) -> Result<Self, LookupError> {
        let invalid = |reason: &str| LookupError::InvalidHost {
            name: host.to_string(),
            reason: reason.to_string(),
        };
        if host.parse::<IpAddr>().is_ok() {
            return Err(invalid("an IP address needs no lookup"));
        }
        Name::from_ascii(host).map_err(|e| invalid(&e.to_string()))?;
        if conf.nameservers.is_empty() {
            return Err(LookupError::NoNameserver("the configuration".into()));
        }
        let mut names = Vec::new();
        let mut prepared = Vec::new();
        for n in candidates(host, &conf) {
            // Go leaves out what is not a domain name; so does this.
            let Ok(name) = Name::from_ascii(&n) else {
                continue;
            };
            if let (Some(a), Some(aaaa)) = (
                Wire::build(&name, RecordType::A),
                Wire::build(&name, RecordType::AAAA),
            ) {
                names.push(n);
                prepared.push(Candidate { a, aaaa });
            }
        }
        if prepared.is_empty() {
            return Err(invalid("no name to query"));
        }
        Ok(HostLookup {
            conf,
            names,
            candidates: prepared,
            offset: AtomicU32::new(0),
        })
    }

    /// The names each lookup tries, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The configuration in use.
    pub fn conf(&self) -> &ResolvConf {
        &self.conf
    }

    /// One lookup: the addresses of the first candidate that has any (A then AAAA).
    pub async fn lookup(&self) -> Result<Vec<IpAddr>, LookupFailure> {
        let mut temporary = None;
        for c in &self.candidates {
            let (a, aaaa) = if self.conf.single_request {
                let a = self.query(&c.a).await;
                (a, self.query(&c.aaaa).await)
            } else {
                tokio::join!(self.query(&c.a), self.query(&c.aaaa))
            };
            let mut addrs = Vec::new();
            for r in [a, aaaa] {
                match r {
                    QueryOutcome::Found(v) => addrs.extend(v),
                    QueryOutcome::NoSuchHost => {}
                    QueryOutcome::Failed(e) => temporary = Some(e),
                }
            }
            if !addrs.is_empty() {
                return Ok(addrs);
            }
        }
        Err(temporary.map_or(LookupFailure::NoSuchHost, LookupFailure::Temporary))
    }

    /// Go's `tryOneName` for one type: rounds over the nameservers until one answers.
    async fn query(&self, wire: &Wire) -> QueryOutcome {
        let servers = &self.conf.nameservers;
        let n = servers.len();
        let start = if self.conf.rotate {
            self.offset.fetch_add(1, Ordering::Relaxed) as usize
        } else {
            0
        };
        let mut last = String::from("no nameserver");
        for _ in 0..self.conf.attempts {
            for j in 0..n {
                let server = servers[(start + j) % n];
                let result = match self.exchange(server, wire).await {
                    Ok(reply) => classify(&reply, wire.qtype),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(Some(addrs)) => return QueryOutcome::Found(addrs),
                    Ok(None) => return QueryOutcome::NoSuchHost,
                    Err(e) => last = format!("{} {} on {server}: {e}", wire_name(wire), wire.qtype),
                }
            }
        }
        QueryOutcome::Failed(last)
    }

    /// One exchange with one server: UDP from a new socket, then TCP if the reply is
    /// truncated (TCP only with `use-vc`), each within the timeout.
    async fn exchange(&self, server: SocketAddr, wire: &Wire) -> Result<Message, QueryError> {
        let id: u16 = rand::random();
        let mut query = wire.bytes.clone();
        query[..2].copy_from_slice(&id.to_be_bytes());
        let timeout = self.conf.timeout;
        if !self.conf.use_tcp {
            let reply = tokio::time::timeout(timeout, udp_round_trip(server, &query, wire, id))
                .await
                .map_err(|_| QueryError::Timeout)??;
            if reply[2] & 0x02 == 0 {
                return Message::from_vec(&reply).map_err(|_| QueryError::Invalid);
            }
        }
        let reply = tokio::time::timeout(timeout, tcp_round_trip(server, &query))
            .await
            .map_err(|_| QueryError::Timeout)??;
        if !wire.answered_by(id, &reply) {
            return Err(QueryError::Invalid);
        }
        if reply[2] & 0x02 != 0 {
            return Err(QueryError::Truncated);
        }
        Message::from_vec(&reply).map_err(|_| QueryError::Invalid)
    }
}

fn wire_name(wire: &Wire) -> String {
    Message::from_vec(&wire.bytes)
        .ok()
        .and_then(|m| m.queries.first().map(|q| q.name.to_ascii()))
        .unwrap_or_default()
}

/// Go's `checkHeader` and `skipToAnswer`: `Ok(Some(addresses))` for records of the type,
/// `Ok(None)` when the name does not exist or has none (no other server is asked), `Err` when
/// the next server should be.
fn classify(reply: &Message, qtype: RecordType) -> Result<Option<Vec<IpAddr>>, QueryError> {
    let m = &reply.metadata;
    match m.response_code {
        ResponseCode::NXDomain => return Ok(None),
        ResponseCode::NoError => {}
        other => return Err(QueryError::Rcode(other)),
    }
    if !m.authoritative
        && !m.recursion_available
        && reply.answers.is_empty()
        && reply.additionals.is_empty()
        && reply.edns.is_none()
    {
        return Err(QueryError::LameReferral);
    }
    let addrs: Vec<IpAddr> = reply
        .answers
        .iter()
        .filter(|r| r.record_type() == qtype)
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    Ok((!addrs.is_empty()).then_some(addrs))
}

/// Sends `query` from a new connected UDP socket (a new ephemeral port) and waits for its
/// reply, ignoring any datagram that is not one.
async fn udp_round_trip(
    server: SocketAddr,
    query: &[u8],
    wire: &Wire,
    id: u16,
) -> Result<Vec<u8>, QueryError> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let io = |e: std::io::Error| QueryError::Io(e.kind());
    let sock = UdpSocket::bind(local).await.map_err(io)?;
    sock.connect(server).await.map_err(io)?;
    sock.send(query).await.map_err(io)?;
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        let n = sock.recv(&mut buf).await.map_err(io)?;
        if wire.answered_by(id, &buf[..n]) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

/// Sends `query` on a new TCP connection (2-byte length framing) and reads one message back.
async fn tcp_round_trip(server: SocketAddr, query: &[u8]) -> Result<Vec<u8>, QueryError> {
    let io = |e: std::io::Error| QueryError::Io(e.kind());
    let mut s = TcpStream::connect(server).await.map_err(io)?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
    framed.extend_from_slice(query);
    s.write_all(&framed).await.map_err(io)?;
    let len = s.read_u16().await.map_err(io)? as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await.map_err(io)?;
    if len < 12 {
        return Err(QueryError::Invalid);
    }
    Ok(buf)
}

/// What to look up, how hard and for how long. [`TestDnsSpec::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct TestDnsSpec {
    /// The host name. Default `kube-dns.kube-system`.
    pub host: String,
    /// Lookup loops running at once, each one lookup after another. Default 100.
    pub concurrency: usize,
    /// How long to run. Default 15 s.
    pub duration: Duration,
    /// A lookup that took longer than this is slow. Default 5 s.
    pub slow_limit: Duration,
    /// The resolver configuration (nameservers already overridden if need be).
    pub conf: ResolvConf,
    /// Print `[INFO] testdns: running` on stderr once the first lookup succeeded. Default false.
    pub announce: bool,
    /// Print a progress line on stderr every second. Default false.
    pub progress: bool,
}

impl TestDnsSpec {
    /// The defaults listed on each field, with `conf`.
    pub fn new(conf: ResolvConf) -> Self {
        TestDnsSpec {
            host: "kube-dns.kube-system".into(),
            concurrency: 100,
            duration: Duration::from_secs(15),
            slow_limit: Duration::from_secs(5),
            conf,
            announce: false,
            progress: false,
        }
    }
}

/// What a run came to. Lookups still in flight when the duration ended are not counted.
#[derive(Clone, Debug)]
pub struct TestDnsReport {
    /// Lookups that succeeded.
    pub lookups: u64,
    /// Lookups that failed.
    pub failed: u64,
    /// Lookups (succeeded or failed) that took longer than `limit`.
    pub slow: u64,
    /// The slow-lookup limit.
    pub limit: Duration,
    /// How long the lookups ran.
    pub elapsed: Duration,
    /// Latency of all counted lookups, succeeded or failed, in microseconds: median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Maximum (exact; the percentiles are within 1.6 %).
    pub max_us: u64,
}

impl TestDnsReport {
    /// Succeeded and failed lookups.
    pub fn total(&self) -> u64 {
        self.lookups + self.failed
    }

    /// Succeeded lookups per second.
    pub fn per_second(&self) -> f64 {
        self.lookups as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The report as one JSON object on one line.
    pub fn to_json(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "{{\"lookups\":{},\"failed\":{},\"total\":{},\"per_second\":{:.3},\"slow\":{},\"limit_ms\":{},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"duration_s\":{:.3}}}",
            self.lookups,
            self.failed,
            self.total(),
            self.per_second(),
            self.slow,
            self.limit.as_millis(),
            ms(self.p50_us),
            ms(self.p90_us),
            ms(self.p99_us),
            ms(self.max_us),
            self.elapsed.as_secs_f64(),
        )
    }
}

/// `lookups 123456 (8230.4/s), failed 0, slow(>5000ms) 0, latency p50 1.20ms p90 2.30ms ...`
impl fmt::Display for TestDnsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |us: u64| us as f64 / 1000.0;
        write!(
            f,
            "lookups {} ({:.1}/s), failed {}, slow(>{}ms) {}, latency p50 {:.2}ms p90 {:.2}ms p99 {:.2}ms max {:.2}ms",
            self.lookups,
            self.per_second(),
            self.failed,
            self.limit.as_millis(),
            self.slow,
            ms(self.p50_us),
            ms(self.p90_us),
            ms(self.p99_us),
            ms(self.max_us),
        )
    }
}

/// Counters the loops share with the progress lines.
struct Progress {
    ok: AtomicU64,
    failed: AtomicU64,
    running: AtomicBool,
}

/// What one loop counted.
struct LoopStats {
    hist: Histogram,
    slow: u64,
}

/// Runs `spec.concurrency` lookup loops for `spec.duration` and reports. At the end, lookups
/// in flight are dropped (their sockets closed) and not counted. Needs a tokio runtime.
pub async fn run(spec: TestDnsSpec) -> Result<TestDnsReport, LookupError> {
    if spec.concurrency == 0 {
        return Err(LookupError::InvalidSpec("no lookup loops (-c 0)".into()));
    }
    if spec.duration.is_zero() {
        return Err(LookupError::InvalidSpec("zero duration".into()));
    }
    let lookup = Arc::new(HostLookup::new(&spec.host, spec.conf)?);
    let progress = Arc::new(Progress {
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        running: AtomicBool::new(false),
    });
    let start = Instant::now();
    let end = start + spec.duration;
    let slow_us = spec.slow_limit.as_micros() as u64;

    let loops: Vec<_> = (0..spec.concurrency)
        .map(|_| {
            let lookup = lookup.clone();
            let progress = progress.clone();
            let announce = spec.announce;
            tokio::spawn(async move {
                let mut stats = LoopStats {
                    hist: Histogram::new(),
                    slow: 0,
                };
                loop {
                    let t0 = Instant::now();
                    let result = tokio::select! {
                        biased;
                        _ = tokio::time::sleep_until(end) => break,
                        r = lookup.lookup() => r,
                    };
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    let us = (now - t0).as_micros() as u64;
                    stats.hist.record(us);
                    if us > slow_us {
                        stats.slow += 1;
                    }
                    if result.is_ok() {
                        progress.ok.fetch_add(1, Ordering::Relaxed);
                        if announce && !progress.running.swap(true, Ordering::Relaxed) {
                            eprintln!("[INFO] testdns: running");
                        }
                    } else {
                        progress.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                stats
            })
        })
        .collect();

    let ticker = spec.progress.then(|| {
        let progress = progress.clone();
        tokio::spawn(async move {
            let second = Duration::from_secs(1);
            let mut tick = tokio::time::interval_at(start + second, second);
            loop {
                let t = tick.tick().await;
                eprintln!(
                    "[INFO] testdns: {}s, {} lookups, {} failed",
                    (t - start).as_secs_f64().round(),
                    progress.ok.load(Ordering::Relaxed),
                    progress.failed.load(Ordering::Relaxed),
                );
            }
        })
    });

    let mut hist = Histogram::new();
    let mut slow = 0;
    let mut failure = None;
    for l in loops {
        match l.await {
            Ok(s) => {
                hist.merge(&s.hist);
                slow += s.slow;
            }
            Err(e) => failure = Some(e.to_string()),
        }
    }
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(e) = failure {
        return Err(LookupError::Loop(e));
    }
    Ok(TestDnsReport {
        lookups: progress.ok.load(Ordering::Relaxed),
        failed: progress.failed.load(Ordering::Relaxed),
        slow,
        limit: spec.slow_limit,
        elapsed: end - start,
        p50_us: hist.quantile(0.5),
        p90_us: hist.quantile(0.9),
        p99_us: hist.quantile(0.99),
        max_us: hist.quantile(1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_parsing() {
        let c = ResolvConf::parse(
            "# comment\n; other\nnameserver 10.0.0.10\nnameserver ::1\nnameserver bogus\n\
             nameserver 10.0.0.11\nnameserver 10.0.0.12\n\
             domain old.example\nsearch ns1.svc.cluster.local svc.cluster.local. .\n\
             options ndots:5 timeout:0 attempts:3 rotate edns0 ndots:x\n",
        );
        assert_eq!(
            c.nameservers,
            [
                "10.0.0.10:53".parse().unwrap(),
                "[::1]:53".parse().unwrap(),
                "10.0.0.11:53".parse().unwrap()
            ]
        );
        assert_eq!(c.search, ["ns1.svc.cluster.local.", "svc.cluster.local."]);
        assert_eq!(c.ndots, 5);
        assert_eq!(c.timeout, Duration::from_secs(1), "timeout is at least 1 s");
        assert_eq!(c.attempts, 3);
        assert!(c.rotate && !c.single_request && !c.use_tcp);
        let d = ResolvConf::parse("options ndots:30 use-vc single-request\n");
        assert_eq!(
            (d.ndots, d.timeout, d.attempts),
            (15, Duration::from_secs(5), 2)
        );
        assert!(d.use_tcp && d.single_request);
        assert_eq!(ResolvConf::parse("search a b\ndomain c\n").search, ["c."]);
    }

    #[test]
    fn candidate_order_follows_ndots() {
        let conf = ResolvConf {
            search: vec!["ns1.svc.example.".into(), "svc.example.".into()],
            ndots: 5,
            ..ResolvConf::default()
        };
        assert_eq!(
            candidates("kube-dns.kube-system", &conf),
            [
                "kube-dns.kube-system.ns1.svc.example.",
                "kube-dns.kube-system.svc.example.",
                "kube-dns.kube-system."
            ]
        );
        assert_eq!(candidates("a.b.", &conf), ["a.b."]);
        let one = ResolvConf { ndots: 1, ..conf };
        assert_eq!(
            candidates("a.b", &one),
            ["a.b.", "a.b.ns1.svc.example.", "a.b.svc.example."]
        );
        assert!(candidates("x.onion.", &one).is_empty());
        assert_eq!(
            candidates("x.onion", &one),
            ["x.onion.ns1.svc.example.", "x.onion.svc.example."],
            "only the .onion name itself is left out"
        );
        assert!(candidates("", &one).is_empty());
    }

    #[test]
    fn durations() {
        let d = |s| parse_duration(s).unwrap();
        assert_eq!(d("15s"), Duration::from_secs(15));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("2m"), Duration::from_secs(120));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("3"), Duration::from_secs(3));
        assert_eq!(d("1.5"), Duration::from_millis(1500));
        for bad in ["", "s", "5x", "-1", "1s5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reply_matching() {
        let name = Name::from_ascii("Kube-DNS.example.").unwrap();
        let w = Wire::build(&name, RecordType::A).unwrap();
        assert_eq!(w.question_end, w.bytes.len());
        let mut r = w.bytes.clone();
        r[..2].copy_from_slice(&7u16.to_be_bytes());
        assert!(!w.answered_by(7, &r), "QR clear");
        r[2] |= 0x80;
        assert!(w.answered_by(7, &r));
        assert!(!w.answered_by(8, &r), "other ID");
        r[13] = b'K';
        assert!(w.answered_by(7, &r), "case is ignored");
        let aaaa = Wire::build(&name, RecordType::AAAA).unwrap();
        assert!(!aaaa.answered_by(7, &r), "other type");
    }

    #[test]
    fn report_formats() {
        let r = TestDnsReport {
            lookups: 1000,
            failed: 2,
            slow: 1,
            limit: Duration::from_secs(5),
            elapsed: Duration::from_secs(2),
            p50_us: 1200,
            p90_us: 2300,
            p99_us: 4500,
            max_us: 12_100,
        };
        assert_eq!(
            r.to_string(),
            "lookups 1000 (500.0/s), failed 2, slow(>5000ms) 1, latency p50 1.20ms p90 2.30ms p99 4.50ms max 12.10ms"
        );
        assert_eq!(
            r.to_json(),
            "{\"lookups\":1000,\"failed\":2,\"total\":1002,\"per_second\":500.000,\"slow\":1,\"limit_ms\":5000,\"p50_ms\":1.200,\"p90_ms\":2.300,\"p99_ms\":4.500,\"max_ms\":12.100,\"duration_s\":2.000}"
        );
    }
}

//! # The plugin test kit
//!
//! Helpers for testing ferrodns plugins without a server: requests, setup from Corefile text,
//! and terminal handlers with fixed answers; [`capture`] records what a plugin logs. Plugin
//! crates take it as a dev-dependency (`ferrodns-plugin-test.workspace = true`) and usually
//! bring it in as `use ferrodns_plugin_test as testkit;`.

#![warn(missing_docs)]

pub mod capture;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use ferrodns_plugin::corefile;
use ferrodns_plugin::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{
    BlockSettings, Descriptor, Dispenser, FastAnswer, FastHook, Next, Plugin, PluginError,
    Protocol, Reply, Request, Setup, SetupError, Shared, WireQuery, async_trait,
};

/// A UDP query for `name`/`qtype` from 127.0.0.1:40212 to 127.0.0.1:53 with RD set and no OPT.
/// Panics on a name that does not parse (it is for tests).
pub fn request(name: &str, qtype: RecordType) -> Request {
    let mut msg = Message::new(4242, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    let name = Name::from_ascii(name).unwrap_or_else(|e| panic!("bad test name {name}: {e}"));
    msg.add_query(Query::query(name, qtype));
    from_message(msg, Protocol::Udp)
}

/// As [`request`] with an OPT record of the given size and DO bit.
pub fn request_edns(name: &str, qtype: RecordType, size: u16, dnssec_ok: bool) -> Request {
    let req = request(name, qtype);
    let mut edns = Edns::new();
    edns.set_max_payload(size);
    edns.set_dnssec_ok(dnssec_ok);
    let mut msg = req.message().clone();
    msg.set_edns(edns);
    from_message(msg, Protocol::Udp)
}

/// A request from a message, with the test addresses.
pub fn from_message(msg: Message, protocol: Protocol) -> Request {
    let raw = Bytes::from(msg.to_vec().unwrap_or_default());
    let src: SocketAddr = ([127, 0, 0, 1], 40212).into();
    let local: SocketAddr = ([127, 0, 0, 1], 53).into();
    Request::new(
        msg,
        raw,
        src,
        local,
        protocol,
        "dns://:53".into(),
        ".".into(),
    )
}

/// Parse `.:53 {\n<directives>\n}` and run `descriptor`'s setup on it, as the server would.
/// Other directives in the text are an error ("Unknown directive").
pub fn setup(descriptor: &Descriptor, directives: &str) -> Result<BlockSettings, SetupError> {
    setup_with(descriptor, directives, &Shared::default())
}

/// As [`setup`] with a given shared instance context.
pub fn setup_with(
    descriptor: &Descriptor,
    directives: &str,
    shared: &Shared,
) -> Result<BlockSettings, SetupError> {
    let (disp, zones) = parse_block(descriptor.name, directives)?;
    let mut settings = BlockSettings {
        zones,
        ..BlockSettings::default()
    };
    if let Some(disp) = disp {
        let mut c = Setup::new(disp, &mut settings, shared);
        (descriptor.setup)(&mut c)?;
    }
    settings
        .handles
        .set_plugins(settings.plugins.iter().map(|p| p.name()).collect());
    Ok(settings)
}

/// The dispenser a setup function of `directive` would get for `directives` in a `.:53` block
/// (an empty one when the text does not use the directive). For tests of a plugin's own parse
/// functions.
pub fn dispenser(directive: &str, directives: &str) -> Result<Dispenser, SetupError> {
    let (disp, _) = parse_block(directive, directives)?;
    Ok(disp.unwrap_or_else(|| Dispenser::new("Testfile", Vec::new())))
}

/// A fresh directory under the system's temp dir, removed with what is in it on drop. Panics
/// when it cannot be made (it is for tests).
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// A new empty directory; `tag` goes into its name, with the process ID and a counter.
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("ferrodns-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// The path of `name` in it, as text (as a Corefile names it).
    pub fn file(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    /// Write `content` to `name` in it; its path as text.
    pub fn write(&self, name: &str, content: &str) -> String {
        let path = self.file(name);
        std::fs::write(&path, content).expect("write a temporary file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A block serving `zones` (`dns://`, port 53), for parse functions that read the block's zones.
pub fn block(zones: &[&str]) -> BlockSettings {
    BlockSettings {
        zones: zones
            .iter()
            .map(|z| corefile::ZoneAddr {
                transport: corefile::Transport::Dns,
                zone: z.to_string(),
                port: "53".into(),
            })
            .collect(),
        ..BlockSettings::default()
    }
}

/// Run a plugin's own parse function (one that reads the [`Setup`] as its setup does) on the
/// lines of `directive` in `directives`, in a default block.
pub fn parse_with<T>(
    directive: &str,
    directives: &str,
    parse: impl FnOnce(&mut Setup<'_>) -> Result<T, SetupError>,
) -> Result<T, SetupError> {
    parse_in(&mut BlockSettings::default(), directive, directives, parse)
}

/// As [`parse_with`] in the given block (its zones, listen hosts), which the parse may change.
pub fn parse_in<T>(
    block: &mut BlockSettings,
    directive: &str,
    directives: &str,
    parse: impl FnOnce(&mut Setup<'_>) -> Result<T, SetupError>,
) -> Result<T, SetupError> {
    let disp = dispenser(directive, directives)?;
    let shared = Shared::default();
    let mut c = Setup::new(disp, block, &shared);
    parse(&mut c)
}

/// What `/metrics` shows at process start with only `descriptor` registered: the families it
/// must show from the first scrape.
pub fn startup_metrics(descriptor: &Descriptor) -> String {
    let metrics = ferrodns_plugin::Metrics::new();
    let mut registry = ferrodns_plugin::Registry::new();
    registry.add(*descriptor);
    registry.register_metrics(&metrics);
    metrics.encode()
}

/// Parse `.:53 {\n<directives>\n}` knowing only `directive`: its dispenser, if used, and the
/// block's zones.
fn parse_block(
    directive: &str,
    directives: &str,
) -> Result<(Option<Dispenser>, Vec<corefile::ZoneAddr>), SetupError> {
    let text = format!(".:53 {{\n{directives}\n}}\n");
    let is_directive = |n: &str| n == directive;
    let env = |k: &str| std::env::var(k).ok();
    let opts = corefile::ParseOptions {
        is_directive: &is_directive,
        env: &env,
    };
    let blocks = corefile::parse("Testfile", text.as_bytes(), &opts)
        .map_err(|e| SetupError::new(e.to_string()))?;
    let Some(block) = blocks.first() else {
        return Ok((None, Vec::new()));
    };
    let zones = corefile::inspect_keys(block, "53").map_err(|e| SetupError::new(e.to_string()))?;
    let disp = block
        .directive(directive)
        .map(|d| Dispenser::new("Testfile", d.tokens.clone()));
    Ok((disp, zones))
}

/// A terminal handler answering every request the same way.
pub struct Fixed {
    outcome: Result<Reply, PluginError>,
}

impl Fixed {
    /// Always return `outcome`.
    pub fn new(outcome: Result<Reply, PluginError>) -> Arc<Self> {
        Arc::new(Fixed { outcome })
    }

    /// Answer each request with an empty reply of the given rcode (QR, RD copied).
    pub fn rcode(rcode: ResponseCode) -> Arc<Self> {
        let mut m = Message::new(0, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        Fixed::new(Ok(Reply::message(m)))
    }
}

#[async_trait]
impl Plugin for Fixed {
    fn name(&self) -> &'static str {
        "fixed"
    }
    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        let mut out = self.outcome.clone();
        if let Ok(Reply::Message(m)) = &mut out {
            m.metadata.id = req.id();
            m.metadata.recursion_desired = req.message().metadata.recursion_desired;
            m.queries = req.message().queries.clone();
        }
        out
    }
}

/// A terminal handler that answers UDP queries from its synchronous fast hook (the question
/// copied, NXDOMAIN) and whatever reaches `serve` with an empty NOERROR reply, so each answer
/// shows which path it took. Its directive name is `fast`.
pub struct FastNxdomain;

impl FastHook for FastNxdomain {
    fn answer(&self, q: &WireQuery<'_>, out: &mut Vec<u8>) -> FastAnswer {
        out.extend_from_slice(&q.packet[..q.question_end]);
        out[2] |= 0x80; // QR
        out[3] = (out[3] & 0xf0) | 3; // NXDOMAIN
        out[10] = 0;
        out[11] = 0; // no additional records
        FastAnswer::Answered
    }
}

#[async_trait]
impl Plugin for FastNxdomain {
    fn name(&self) -> &'static str {
        "fast"
    }
    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        let mut m = Message::new(req.id(), MessageType::Response, OpCode::Query);
        m.queries = req.message().queries.clone();
        Ok(Reply::message(m))
    }
    fn fast_hook(&self) -> Option<&dyn FastHook> {
        Some(self)
    }
}

/// How long [`udp_exchange`] and [`tcp_exchange`] wait for a reply before the test fails.
pub const EXCHANGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Send `m` to a server over UDP from 127.0.0.1 and return its reply, which must carry `m`'s
/// ID. Panics when no reply comes within [`EXCHANGE_TIMEOUT`] (it is for tests).
pub fn udp_exchange(server: SocketAddr, m: &Message) -> Message {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    s.set_read_timeout(Some(EXCHANGE_TIMEOUT))
        .expect("set a read timeout");
    s.send_to(&m.to_vec().expect("encode the query"), server)
        .expect("send the query");
    let mut buf = [0u8; 65535];
    let (n, _) = s.recv_from(&mut buf).expect("a UDP reply");
    let r = Message::from_vec(&buf[..n]).expect("the reply decodes");
    assert_eq!(r.metadata.id, m.metadata.id, "reply ID");
    r
}

/// As [`udp_exchange`] over one TCP connection (two-byte length prefix).
pub fn tcp_exchange(server: SocketAddr, m: &Message) -> Message {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(server).expect("connect over TCP");
    s.set_read_timeout(Some(EXCHANGE_TIMEOUT))
        .expect("set a read timeout");
    let b = m.to_vec().expect("encode the query");
    let mut out = (b.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&b);
    s.write_all(&out).expect("send the query");
    let mut len = [0u8; 2];
    s.read_exact(&mut len).expect("a TCP reply");
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).expect("the whole TCP reply");
    let r = Message::from_vec(&buf).expect("the reply decodes");
    assert_eq!(r.metadata.id, m.metadata.id, "reply ID");
    r
}

/// Run `plugins` as a chain on `req`.
pub async fn run(plugins: &[Arc<dyn Plugin>], req: &mut Request) -> Result<Reply, PluginError> {
    Next::new("", plugins.to_vec()).serve(req).await
}

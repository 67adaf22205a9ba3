//! A dnstap receiver for cases with `dnstap = { socket = "unix" }` (or `"tcp"`): it accepts
//! Frame Streams connections (READY/ACCEPT/START, data frames, STOP/FINISH), decodes each
//! frame's protobuf with a small decoder of its own (not the plugin's code) and keeps one
//! normalised line per message, for comparing CoreDNS's messages with ferrodns's.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// A case's receiver settings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DnstapCase {
    /// `unix` (a socket in the server's directory) or `tcp` (a loopback port).
    pub socket: String,
}

/// One decoded message, with what varies between runs left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    /// `Dnstap.identity`.
    pub identity: Option<Vec<u8>>,
    /// `Dnstap.version`.
    pub version: Option<Vec<u8>>,
    /// `Dnstap.extra`.
    pub extra: Option<Vec<u8>>,
    /// `Dnstap.type`.
    pub frame_type: Option<u64>,
    /// `Message.type`.
    pub kind: Option<u64>,
    /// `Message.socket_family`.
    pub family: Option<u64>,
    /// `Message.socket_protocol`.
    pub protocol: Option<u64>,
    /// `Message.query_address`.
    pub query_address: Option<Vec<u8>>,
    /// `Message.response_address`.
    pub response_address: Option<Vec<u8>>,
    /// `Message.query_port`.
    pub query_port: Option<u64>,
    /// `Message.response_port`.
    pub response_port: Option<u64>,
    /// `Message.query_time_sec` and `_nsec` present.
    pub query_time: (bool, bool),
    /// `Message.response_time_sec` and `_nsec` present.
    pub response_time: (bool, bool),
    /// `Message.query_message`.
    pub query_message: Option<Vec<u8>>,
    /// `Message.response_message`.
    pub response_message: Option<Vec<u8>>,
}

fn varint(b: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos).context("truncated varint")?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    bail!("varint too long")
}

/// Fields of a protobuf message: (number, varint value or bytes).
enum Field<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

fn fields(b: &[u8]) -> Result<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let key = varint(b, &mut pos)?;
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Int(varint(b, &mut pos)?),
            1 => {
                let s = b.get(pos..pos + 8).context("truncated fixed64")?;
                pos += 8;
                Field::Int(u64::from_le_bytes(s.try_into()?))
            }
            5 => {
                let s = b.get(pos..pos + 4).context("truncated fixed32")?;
                pos += 4;
                Field::Int(u64::from(u32::from_le_bytes(s.try_into()?)))
            }
            2 => {
                let n = varint(b, &mut pos)? as usize;
                let s = b.get(pos..pos + n).context("truncated bytes")?;
                pos += n;
                Field::Bytes(s)
            }
            w => bail!("wire type {w}"),
        };
        out.push((num, f));
    }
    Ok(out)
}

/// Decode one dnstap frame.
pub fn decode(b: &[u8]) -> Result<Decoded> {
    let mut d = Decoded::default();
    for (num, f) in fields(b)? {
        match (num, f) {
            (1, Field::Bytes(s)) => d.identity = Some(s.to_vec()),
            (2, Field::Bytes(s)) => d.version = Some(s.to_vec()),
            (3, Field::Bytes(s)) => d.extra = Some(s.to_vec()),
            (15, Field::Int(v)) => d.frame_type = Some(v),
            (14, Field::Bytes(m)) => {
                for (num, f) in fields(m)? {
                    match (num, f) {
                        (1, Field::Int(v)) => d.kind = Some(v),
                        (2, Field::Int(v)) => d.family = Some(v),
                        (3, Field::Int(v)) => d.protocol = Some(v),
                        (4, Field::Bytes(s)) => d.query_address = Some(s.to_vec()),
                        (5, Field::Bytes(s)) => d.response_address = Some(s.to_vec()),
                        (6, Field::Int(v)) => d.query_port = Some(v),
                        (7, Field::Int(v)) => d.response_port = Some(v),
                        (8, _) => d.query_time.0 = true,
                        (9, _) => d.query_time.1 = true,
                        (10, Field::Bytes(s)) => d.query_message = Some(s.to_vec()),
                        (12, _) => d.response_time.0 = true,
                        (13, _) => d.response_time.1 = true,
                        (14, Field::Bytes(s)) => d.response_message = Some(s.to_vec()),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(d)
}

const TYPES: [&str; 15] = [
    "?",
    "AUTH_QUERY",
    "AUTH_RESPONSE",
    "RESOLVER_QUERY",
    "RESOLVER_RESPONSE",
    "CLIENT_QUERY",
    "CLIENT_RESPONSE",
    "FORWARDER_QUERY",
    "FORWARDER_RESPONSE",
    "STUB_QUERY",
    "STUB_RESPONSE",
    "TOOL_QUERY",
    "TOOL_RESPONSE",
    "UPDATE_QUERY",
    "UPDATE_RESPONSE",
];

fn text(b: &Option<Vec<u8>>) -> String {
    match b {
        Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
        None => "none".to_string(),
    }
}

fn addr(b: &Option<Vec<u8>>) -> String {
    match b.as_deref() {
        Some(&[a, b, c, d]) => std::net::Ipv4Addr::new(a, b, c, d).to_string(),
        Some(s) if s.len() == 16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(s);
            std::net::Ipv6Addr::from(o).to_string()
        }
        Some(s) => format!("bytes:{}", crate::wire::hex(s)),
        None => "none".to_string(),
    }
}

/// A DNS message with its ID zeroed, decoded and encoded again (so that name compression, which
/// differs between Go's packer and others, does not count), in hex.
fn dns(b: &Option<Vec<u8>>) -> String {
    use hickory_proto::op::Message;
    let Some(b) = b else {
        return "none".to_string();
    };
    match Message::from_vec(b) {
        Ok(mut m) => {
            m.metadata.id = 0;
            match m.to_vec() {
                Ok(v) => crate::wire::hex(&v),
                Err(e) => format!("unencodable ({e})"),
            }
        }
        Err(e) => format!("undecodable ({e}): {}", crate::wire::hex(b)),
    }
}

/// The version field: CoreDNS's and ferrodns's own default strings are `{DEFAULT_VERSION}`
/// (see DIFFERENCES.md); anything set with `version` is kept.
fn version(b: &Option<Vec<u8>>) -> String {
    if let Some(v) = b {
        let s = String::from_utf8_lossy(v);
        if s == "CoreDNS-1.14.7" || s.starts_with("ferrodns-") {
            return "{DEFAULT_VERSION}".to_string();
        }
    }
    text(b)
}

impl Decoded {
    /// One line of what is compared: times only as present or not, client ports only as
    /// present (the harness's TCP clients differ), upstream ports by placeholder (done by the
    /// caller).
    pub fn line(&self) -> String {
        let kind = self
            .kind
            .and_then(|k| TYPES.get(k as usize))
            .copied()
            .unwrap_or("?");
        let family = match self.family {
            Some(1) => "INET",
            Some(2) => "INET6",
            Some(_) => "?",
            None => "none",
        };
        let protocol = match self.protocol {
            Some(1) => "UDP",
            Some(2) => "TCP",
            Some(_) => "other",
            None => "none",
        };
        format!(
            "{kind} frame_type={} family={family} protocol={protocol} query_address={} query_port={} response_address={} response_port={} query_time={:?} response_time={:?} identity={} version={} extra={} query_message={} response_message={}",
            self.frame_type.map_or("none".into(), |v| v.to_string()),
            addr(&self.query_address),
            if self.query_port.is_some() {
                "set"
            } else {
                "none"
            },
            addr(&self.response_address),
            self.response_port.map_or("none".into(), |v| v.to_string()),
            self.query_time,
            self.response_time,
            text(&self.identity),
            version(&self.version),
            text(&self.extra),
            dns(&self.query_message),
            dns(&self.response_message),
        )
    }
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn control(kind: u32, with_type: bool) -> Vec<u8> {
    let mut body = kind.to_be_bytes().to_vec();
    if with_type {
        body.extend_from_slice(&1u32.to_be_bytes());
        body.extend_from_slice(&(CONTENT_TYPE.len() as u32).to_be_bytes());
        body.extend_from_slice(CONTENT_TYPE);
    }
    let mut out = 0u32.to_be_bytes().to_vec();
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Serve one writer's connection: answer READY with ACCEPT and STOP with FINISH, keep data.
fn serve_conn<S: Read + Write>(mut s: S, frames: &Mutex<Vec<Vec<u8>>>) -> std::io::Result<()> {
    loop {
        let len = read_u32(&mut s)?;
        if len == 0 {
            let clen = read_u32(&mut s)?;
            if clen > 512 {
                return Ok(());
            }
            let mut body = vec![0u8; clen as usize];
            s.read_exact(&mut body)?;
            let kind = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
            match kind {
                4 => {
                    s.write_all(&control(1, true))?;
                    s.flush()?;
                }
                3 => {
                    s.write_all(&control(5, false))?;
                    s.flush()?;
                    return Ok(());
                }
                _ => {}
            }
        } else {
            let mut data = vec![0u8; len as usize];
            s.read_exact(&mut data)?;
            if let Ok(mut f) = frames.lock() {
                f.push(data);
            }
        }
    }
}

/// A receiver one server sends to.
pub struct Receiver {
    /// The endpoint for the Corefile (`{DNSTAP}`): `unix:///path` or `tcp://127.0.0.1:port`.
    pub endpoint: String,
    frames: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Receiver {
    /// Start a receiver of the given kind (`unix` in `dir`, or `tcp` on loopback).
    pub fn start(kind: &str, dir: &Path) -> Result<Receiver> {
        let frames = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let endpoint = match kind {
            "unix" => {
                let path = dir.join("dnstap.sock");
                let ln = UnixListener::bind(&path)
                    .with_context(|| format!("dnstap receiver at {}", path.display()))?;
                ln.set_nonblocking(true)?;
                let (f, st) = (frames.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !st.load(Ordering::Relaxed) {
                        match ln.accept() {
                            Ok((s, _)) => {
                                let _ = s.set_nonblocking(false);
                                let f = f.clone();
                                std::thread::spawn(move || serve_conn(s, &f));
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(20)),
                        }
                    }
                });
                format!("unix://{}", path.display())
            }
            "tcp" => {
                let ln = TcpListener::bind("127.0.0.1:0").context("dnstap receiver")?;
                let addr = ln.local_addr()?;
                ln.set_nonblocking(true)?;
                let (f, st) = (frames.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !st.load(Ordering::Relaxed) {
                        match ln.accept() {
                            Ok((s, _)) => {
                                let _ = s.set_nonblocking(false);
                                let f = f.clone();
                                std::thread::spawn(move || serve_conn(s, &f));
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(20)),
                        }
                    }
                });
                format!("tcp://{addr}")
            }
            other => bail!("dnstap socket {other:?}: unix or tcp"),
        };
        Ok(Receiver {
            endpoint,
            frames,
            stop,
        })
    }

    fn count(&self) -> usize {
        self.frames.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// The frames received once none has come for `quiet` (at most `max`).
    pub fn settled(&self, quiet: Duration, max: Duration) -> Vec<Vec<u8>> {
        let start = Instant::now();
        let mut last = self.count();
        let mut since = Instant::now();
        while start.elapsed() < max {
            std::thread::sleep(Duration::from_millis(50));
            let n = self.count();
            if n != last {
                last = n;
                since = Instant::now();
            } else if n > 0 && since.elapsed() >= quiet {
                break;
            }
        }
        self.frames.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

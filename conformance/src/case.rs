//! The case file format: one TOML file per case. See `conformance/README.md` for a guide.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::wire;

/// One case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case shows, in one sentence.
    #[serde(default)]
    pub description: String,
    /// The Corefile given to both servers (placeholders substituted).
    #[serde(default)]
    pub corefile: String,
    /// Instead of `corefile`: a file to read it from, relative to the case file (so that an
    /// example in `corefile-examples/` is tested as it is shipped).
    pub corefile_file: Option<String>,
    /// Run each server, its fake upstreams and the queries to it in a network namespace of its
    /// own, with loopback up and these addresses added to it (for Corefiles that bind fixed
    /// addresses and ports, like node-local-dns's). Needs root and `ip`.
    #[serde(default)]
    pub netns: Vec<String>,
    /// Extra files written next to the Corefile (`{DIR}`), by relative path.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Environment of both servers (besides PATH).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Plugins ferrodns must ship for the case to run; otherwise it is skipped.
    #[serde(default)]
    pub requires: Vec<String>,
    /// What both servers must do with the Corefile.
    #[serde(default)]
    pub startup: Startup,
    /// How startup errors are compared.
    #[serde(default)]
    pub error_match: ErrorMatch,
    /// Whether the log lines printed after startup are compared.
    #[serde(default)]
    pub logs: Logs,
    /// Scripted fake upstreams (one instance per server under test).
    #[serde(default)]
    pub upstream: Vec<Upstream>,
    /// Whether the queries each server sent to its fake upstreams are compared (in order).
    #[serde(default)]
    pub upstream_queries: Logs,
    /// Queries, sent in order to both servers.
    #[serde(default)]
    pub query: Vec<Query>,
    /// Metrics to scrape and compare after the queries.
    pub metrics: Option<Metrics>,
    /// HTTP requests (`health`, `ready`), sent in order to both servers after the queries.
    #[serde(default)]
    pub http: Vec<Http>,
    /// A dnstap receiver per server (`{DNSTAP}` in the Corefile); the messages both sent are
    /// compared after the queries.
    pub dnstap: Option<crate::dnstap::DnstapCase>,
    /// Both servers must end by themselves within this many milliseconds once both were
    /// started (`loop` finding a loop): their exit statuses and everything they printed are
    /// compared instead of replies.
    pub exit_within_ms: Option<u64>,
    /// Kubernetes objects (TOML tables mirroring the API's JSON objects), created in this order
    /// in an API server of the case's own before both servers start; see `crate::kube`.
    #[serde(default)]
    pub kube: Vec<toml::Table>,
    /// Self-test only: a different Corefile for ferrodns, to prove that differences are caught.
    pub selftest_ferrodns_corefile: Option<String>,
    /// Self-test only: text the case's diff must contain.
    #[serde(default)]
    pub selftest_diff_contains: Vec<String>,
}

/// Startup expectation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Startup {
    /// Both start and serve.
    #[default]
    Accept,
    /// Both refuse the Corefile, at the same `file:line`.
    Reject,
}

/// How two startup errors are compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorMatch {
    /// The same text, after paths and ports are normalised.
    #[default]
    Exact,
    /// Same `file:line` (or both without one) and same kind of message; the wording may
    /// differ (a reason must be given in DIFFERENCES.md).
    Location,
}

/// Whether log output is compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Logs {
    /// Every line after the startup banner, normalised (durations, ports, paths).
    #[default]
    Compare,
    /// Not compared (must be justified in DIFFERENCES.md).
    Ignore,
}

/// Transport(s) a query is sent over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// UDP only.
    Udp,
    /// TCP only.
    Tcp,
    /// UDP, then TCP.
    #[default]
    Both,
}

impl Transport {
    /// The concrete transports, in sending order.
    pub fn each(self) -> &'static [Proto] {
        match self {
            Transport::Udp => &[Proto::Udp],
            Transport::Tcp => &[Proto::Tcp],
            Transport::Both => &[Proto::Udp, Proto::Tcp],
        }
    }
}

/// One concrete transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// UDP.
    Udp,
    /// TCP (2-byte length prefix).
    Tcp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        })
    }
}

/// A part of a reply that a query may leave out of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// The question section.
    Question,
    /// Header flags.
    Flags,
    /// Answer section.
    Answer,
    /// Authority section.
    Authority,
    /// Additional section (OPT excluded).
    Additional,
    /// The OPT record.
    Opt,
}

/// Whether a reply is expected at all (checked on both servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Some reply.
    Reply,
    /// Nothing (dropped, connection closed or timed out).
    NoReply,
}

/// An OPT record to send.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdnsSpec {
    /// UDP size.
    #[serde(default = "default_size")]
    pub size: u16,
    /// DO bit.
    #[serde(default, rename = "do")]
    pub dnssec_ok: bool,
    /// EDNS version.
    #[serde(default)]
    pub version: u8,
    /// Other flag bits.
    #[serde(default)]
    pub z: u16,
    /// Options as `CODE:HEX` (`10:0102030405060708`).
    #[serde(default)]
    pub options: Vec<String>,
}

fn default_size() -> u16 {
    1232
}

/// One query.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// Question name, sent with its case.
    #[serde(default = "default_name")]
    pub name: String,
    /// Question type.
    #[serde(default = "default_type", rename = "type")]
    pub qtype: String,
    /// Question class.
    #[serde(default = "default_class")]
    pub class: String,
    /// UDP, TCP or both.
    #[serde(default)]
    pub transport: Transport,
    /// Address to query: `127.0.0.1` or `::1`.
    #[serde(default = "default_server")]
    pub server: String,
    /// Port placeholder to query (`PORT`, `PORT2`, ...).
    #[serde(default = "default_port")]
    pub port: String,
    /// Message ID (default: 100 + the query's index).
    pub id: Option<u16>,
    /// Header flags to set (default `["rd"]`).
    #[serde(default = "default_flags")]
    pub flags: Vec<String>,
    /// Opcode.
    #[serde(default)]
    pub opcode: u8,
    /// OPT record, if any.
    pub edns: Option<EdnsSpec>,
    /// Raw message in hex, sent instead of a built one (hostile packets).
    pub raw: Option<String>,
    /// Reply or no reply, asserted on both servers.
    pub expect: Option<Expect>,
    /// Rcode asserted on both servers.
    pub rcode: Option<String>,
    /// TTLs must lie in `[min, max]` on both instead of being equal.
    pub ttl: Option<[u32; 2]>,
    /// Parts not compared (each listed in DIFFERENCES.md).
    #[serde(default)]
    pub ignore: Vec<Part>,
    /// Compare sections in order instead of as multisets.
    #[serde(default)]
    pub ordered: bool,
    /// Also require byte-identical replies.
    #[serde(default)]
    pub bytes: bool,
    /// Wait before sending (for timelines).
    #[serde(default)]
    pub sleep_ms: u64,
    /// How long to wait for a reply.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Kubernetes objects to create, patch or delete before the query (`action` key).
    #[serde(default)]
    pub kube: Vec<toml::Table>,
    /// After `kube`: wait until each server's answer to this query differs from its answer
    /// before the change (the watch latency), then compare. Default: true when `kube` is set.
    pub wait_change: Option<bool>,
    /// How long to wait for the answers to change.
    #[serde(default = "default_watch_timeout")]
    pub watch_timeout_ms: u64,
}

fn default_name() -> String {
    ".".into()
}
fn default_type() -> String {
    "A".into()
}
fn default_class() -> String {
    "IN".into()
}
fn default_server() -> String {
    "127.0.0.1".into()
}
fn default_port() -> String {
    "PORT".into()
}
fn default_flags() -> Vec<String> {
    vec!["rd".into()]
}
fn default_timeout() -> u64 {
    800
}
fn default_watch_timeout() -> u64 {
    10_000
}

impl Query {
    /// The bytes to send.
    pub fn bytes(&self, index: usize) -> Result<Vec<u8>> {
        if let Some(raw) = &self.raw {
            return wire::parse_hex(raw);
        }
        let edns = match &self.edns {
            None => None,
            Some(e) => {
                let mut options = Vec::new();
                for o in &e.options {
                    let (code, data) = o
                        .split_once(':')
                        .with_context(|| format!("EDNS option {o:?} is not CODE:HEX"))?;
                    options.push((code.trim().parse()?, wire::parse_hex(data)?));
                }
                Some(wire::OptParts {
                    size: e.size,
                    version: e.version,
                    dnssec_ok: e.dnssec_ok,
                    z: e.z,
                    options,
                })
            }
        };
        wire::build_query(&wire::QueryParts {
            id: self.id.unwrap_or(100 + index as u16),
            opcode: self.opcode,
            flags: self.flags.clone(),
            name: self.name.clone(),
            qtype: wire::parse_type(&self.qtype)?,
            qclass: wire::parse_class(&self.class)?,
            edns,
        })
    }

    /// A short label for progress and diffs: `example.org. A +edns(1232,do)`.
    pub fn label(&self) -> String {
        if let Some(raw) = &self.raw {
            let n = wire::parse_hex(raw).map(|b| b.len()).unwrap_or(0);
            return format!("raw packet ({n} bytes)");
        }
        let mut s = format!("{} {}", self.name, self.qtype);
        if self.class != "IN" {
            s = format!("{} {} {}", self.name, self.class, self.qtype);
        }
        if let Some(e) = &self.edns {
            s.push_str(&format!(" +edns({}", e.size));
            if e.dnssec_ok {
                s.push_str(",do");
            }
            if e.version != 0 {
                s.push_str(&format!(",v{}", e.version));
            }
            s.push(')');
        }
        let extra: Vec<&str> = self
            .flags
            .iter()
            .filter(|f| *f != "rd")
            .map(String::as_str)
            .collect();
        if !extra.is_empty() {
            s.push_str(&format!(" +{}", extra.join(",")));
        }
        if !self.flags.iter().any(|f| f == "rd") {
            s.push_str(" -rd");
        }
        if self.opcode != 0 {
            s.push_str(&format!(" opcode={}", wire::opcode_name(self.opcode)));
        }
        if self.server != "127.0.0.1" {
            s.push_str(&format!(" @{}", self.server));
        }
        s
    }
}

/// A scripted fake upstream. Each server under test gets its own instance, so scripts with
/// `times` see one server's traffic only. `{UPSTREAM_PORT}` is the first upstream's port,
/// `{UPSTREAM_PORT_<name>}` any upstream's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Name for the placeholder.
    #[serde(default)]
    pub name: String,
    /// Rules, tried in order; the first that matches (and is not used up) answers.
    #[serde(default)]
    pub rule: Vec<Rule>,
    /// A fixed `ip:port` to listen on (UDP and TCP) instead of a fresh loopback port; for
    /// `netns` cases whose Corefile names its upstreams.
    pub address: Option<String>,
}

/// What a fake upstream does with a query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Reply with the rule's rcode, flags and records.
    #[default]
    Answer,
    /// Send nothing (a timeout for the client).
    Drop,
    /// Send the rule's `hex` bytes (or a fixed junk packet).
    Garbage,
    /// Reply as `answer`, but with the ID plus one.
    WrongId,
    /// Over UDP: an empty reply with TC set; over TCP: as `answer`.
    Truncate,
    /// Over TCP: close the connection without a reply; over UDP: as `drop`.
    Close,
}

/// One rule of a fake upstream's script.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Match this question name (case-insensitive); any when absent.
    pub name: Option<String>,
    /// Match this question type; any when absent.
    #[serde(rename = "type")]
    pub qtype: Option<String>,
    /// Match this transport only.
    pub transport: Option<Transport>,
    /// What to do.
    #[serde(default)]
    pub action: Action,
    /// Reply rcode (default NOERROR).
    pub rcode: Option<String>,
    /// Header flags to set besides QR (`aa`, `ra`, `ad`, `tc`).
    #[serde(default)]
    pub flags: Vec<String>,
    /// Answer records in zone-file syntax (`example.org. 300 IN A 192.0.2.1`).
    #[serde(default)]
    pub answer: Vec<String>,
    /// Authority records.
    #[serde(default)]
    pub authority: Vec<String>,
    /// Additional records.
    #[serde(default)]
    pub additional: Vec<String>,
    /// Wait this long before acting.
    #[serde(default)]
    pub delay_ms: u64,
    /// Use this rule at most this many times.
    pub times: Option<u32>,
    /// Bytes for `garbage`.
    pub hex: Option<String>,
}

/// Metrics comparison: after the queries, `/metrics` is scraped from both and every family
/// CoreDNS exports under the given prefixes must exist in ferrodns with the same type and
/// label names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Address of the prometheus listener, with placeholders (`127.0.0.1:{PORT2}`).
    pub address: String,
    /// Family name prefixes to compare (`coredns_dns_`).
    pub families: Vec<String>,
    /// Families left out (each listed in DIFFERENCES.md).
    #[serde(default)]
    pub ignore: Vec<String>,
}

/// One HTTP request sent to both servers: their statuses and bodies must be equal, and equal to
/// `status` / `body` when given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// `host:port` with placeholders (`127.0.0.1:{PORT2}`).
    pub address: String,
    /// The request target (`/health`, `/ready?x=1`).
    pub path: String,
    /// The method (default `GET`).
    #[serde(default = "default_method")]
    pub method: String,
    /// Status asserted on both servers.
    pub status: Option<u16>,
    /// Body asserted on both servers.
    pub body: Option<String>,
    /// Extra request headers (`Accept = "application/openmetrics-text"`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Send the request this many times on one keep-alive connection (the last one asks
    /// `Connection: close`); every answer must come on that connection and they are compared
    /// one by one. HEAD answers are read without a body.
    #[serde(default = "one")]
    pub repeat: u32,
    /// `Content-Type` asserted on both servers (compared between them when given).
    pub content_type: Option<String>,
    /// `Content-Length` asserted on both servers (for HEAD, whose answer has no body).
    pub content_length: Option<String>,
    /// Lines each body must hold. When this or `lacks` is given the bodies are checked for
    /// these only, not compared whole (a `/metrics` page's values differ).
    #[serde(default)]
    pub lines: Vec<String>,
    /// Text no body may hold.
    #[serde(default)]
    pub lacks: Vec<String>,
}

fn one() -> u32 {
    1
}

fn default_method() -> String {
    "GET".into()
}

/// A loaded case.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// `area/name`.
    pub id: String,
    /// Its file.
    pub path: PathBuf,
    /// Its content.
    pub case: Case,
}

/// Load one file.
pub fn load(path: &Path, root: &Path) -> Result<Loaded> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut case: Case =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if let Some(f) = &case.corefile_file {
        let file = path.parent().unwrap_or(Path::new(".")).join(f);
        case.corefile = std::fs::read_to_string(&file)
            .with_context(|| format!("{}: reading {}", path.display(), file.display()))?;
    }
    let rel = path.strip_prefix(root).unwrap_or(path);
    let id = rel.with_extension("").to_string_lossy().replace('\\', "/");
    for (i, q) in case.query.iter().enumerate() {
        q.bytes(i)
            .with_context(|| format!("{}: query {}", path.display(), i + 1))?;
        if let Some(rc) = &q.rcode {
            wire::parse_rcode(rc)
                .with_context(|| format!("{}: query {}", path.display(), i + 1))?;
        }
    }
    for (i, t) in case.kube.iter().enumerate() {
        crate::kube::Change::from_table(t)
            .with_context(|| format!("{}: kube object {}", path.display(), i + 1))?;
    }
    for (i, q) in case.query.iter().enumerate() {
        for t in &q.kube {
            crate::kube::Change::from_table(t)
                .with_context(|| format!("{}: query {}: kube object", path.display(), i + 1))?;
        }
    }
    if crate::kube::needed(&case) && !case.netns.is_empty() {
        bail!(
            "{}: a kubernetes case cannot use netns (its API server is on the host's loopback)",
            path.display()
        );
    }
    if case.startup == Startup::Reject && !case.query.is_empty() {
        bail!(
            "{}: a rejected Corefile cannot have queries",
            path.display()
        );
    }
    if case.exit_within_ms.is_some() && (case.startup == Startup::Reject || !case.query.is_empty())
    {
        bail!(
            "{}: a case with exit_within_ms cannot be rejected or have queries",
            path.display()
        );
    }
    Ok(Loaded {
        id,
        path: path.to_path_buf(),
        case,
    })
}

/// Every `*.toml` under `dir`, sorted by path.
pub fn load_dir(dir: &Path) -> Result<Vec<Loaded>> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    files.sort();
    files.iter().map(|f| load(f, dir)).collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = entry?.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
    Ok(())
}

//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ferrodns_corefile::{CorefileError, ParseOptions, ServerBlock, Token, parse};

/// Keys and (directive, token count) of one block.
pub type BlockSummary = (Vec<String>, Vec<(String, usize)>);

/// Result of one parse.
pub type ParseResult = Result<Vec<ServerBlock>, CorefileError>;

/// CoreDNS v1.14.7's directive list (plugin.cfg).
pub const DIRECTIVES: &[&str] = &[
    "root",
    "metadata",
    "geoip",
    "cancel",
    "proxyproto",
    "quic",
    "grpc_server",
    "https",
    "https3",
    "timeouts",
    "multisocket",
    "reload",
    "nsid",
    "bufsize",
    "bind",
    "debug",
    "trace",
    "ready",
    "health",
    "pprof",
    "shed",
    "prometheus",
    "errors",
    "log",
    "dnstap",
    "local",
    "dns64",
    "any",
    "chaos",
    "loadbalance",
    "tsig",
    "rewrite",
    "autopath",
    "acl",
    "cache",
    "header",
    "dnssec",
    "tls",
    "minimal",
    "template",
    "transfer",
    "hosts",
    "route53",
    "azure",
    "clouddns",
    "k8s_external",
    "kubernetes",
    "file",
    "auto",
    "secondary",
    "etcd",
    "loop",
    "forward",
    "grpc",
    "erratic",
    "whoami",
    "on",
    "sign",
    "view",
    "nomad",
];

pub fn coredns_directive(name: &str) -> bool {
    DIRECTIVES.contains(&name)
}

pub fn any_directive(_: &str) -> bool {
    true
}

/// Parses with the given directive check and a fixed environment.
pub fn parse_with(
    filename: &str,
    input: &str,
    is_directive: &dyn Fn(&str) -> bool,
    env: &[(&str, &str)],
) -> Result<Vec<ServerBlock>, CorefileError> {
    let vars: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let lookup = move |k: &str| vars.get(k).cloned();
    let opts = ParseOptions {
        is_directive,
        env: &lookup,
    };
    parse(filename, input.as_bytes(), &opts)
}

/// Parses `input` as file `Corefile` with CoreDNS's directives and no env.
pub fn parse_coredns(input: &str) -> Result<Vec<ServerBlock>, CorefileError> {
    parse_with("Corefile", input, &coredns_directive, &[])
}

/// Parses `input` as file `Caddyfile` accepting any directive name (like
/// Caddy's own tests, which pass no directive list).
pub fn parse_any(input: &str) -> Result<Vec<ServerBlock>, CorefileError> {
    parse_with("Caddyfile", input, &any_directive, &[])
}

pub fn parse_any_env(input: &str, env: &[(&str, &str)]) -> Result<Vec<ServerBlock>, CorefileError> {
    parse_with("Caddyfile", input, &any_directive, env)
}

pub fn key_texts(block: &ServerBlock) -> Vec<String> {
    block.keys.iter().map(|k| k.text.clone()).collect()
}

pub fn all_keys(blocks: &[ServerBlock]) -> Vec<Vec<String>> {
    blocks.iter().map(key_texts).collect()
}

/// (directive name, number of tokens) in order of first appearance.
pub fn dir_counts(block: &ServerBlock) -> Vec<(String, usize)> {
    block
        .directives
        .iter()
        .map(|d| (d.name.clone(), d.tokens.len()))
        .collect()
}

pub fn texts(tokens: &[Token]) -> Vec<&str> {
    tokens.iter().map(|t| t.text.as_str()).collect()
}

pub fn dir_texts<'a>(block: &'a ServerBlock, name: &str) -> Vec<&'a str> {
    block
        .directive(name)
        .map(|d| texts(&d.tokens))
        .unwrap_or_default()
}

pub fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

pub fn counts(v: &[(&str, usize)]) -> Vec<(String, usize)> {
    v.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
}

/// A unique temporary directory removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "ferrodns-corefile-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// Writes `rel` (creating parent directories) and returns its path.
    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&p, contents).expect("write file");
        p
    }

    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.path.join(rel);
        std::fs::create_dir_all(&p).expect("mkdir");
        p
    }

    /// Absolute path of `rel` as a string.
    pub fn file(&self, rel: &str) -> String {
        path_str(&self.path.join(rel))
    }

    pub fn dir(&self) -> String {
        path_str(&self.path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub fn path_str(p: &Path) -> String {
    p.to_str().expect("utf-8 temp path").to_owned()
}

//! The hosts data: parsing hosts(5) text, the file and inline maps, and re-reading the file
//! when its modification time or size changed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ferrodns_pkg::names::{canonical, wildcard_of, zone_match};

/// Names and addresses read from one source (the file or the inline lines).
#[derive(Debug, Clone, Default)]
pub struct HostsMap {
    /// IPv4 addresses per lowercased, fully qualified name.
    pub name4: HashMap<String, Vec<IpAddr>>,
    /// IPv6 addresses per name.
    pub name6: HashMap<String, Vec<IpAddr>>,
    /// IPv4 addresses per wildcard name (`*.example.org.`).
    pub wild4: HashMap<String, Vec<IpAddr>>,
    /// IPv6 addresses per wildcard name.
    pub wild6: HashMap<String, Vec<IpAddr>>,
    /// Names per address, for PTR answers (empty with `no_reverse`).
    pub addr: HashMap<IpAddr, Vec<String>>,
}

impl HostsMap {
    /// The number of entries, counted as upstream counts them for the metric.
    pub fn len(&self) -> usize {
        let sum = |m: &HashMap<String, Vec<IpAddr>>| m.values().map(Vec::len).sum::<usize>();
        sum(&self.name4)
            + sum(&self.name6)
            + sum(&self.wild4)
            + sum(&self.wild6)
            + self.addr.values().map(Vec::len).sum::<usize>()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup(
        exact: &HashMap<String, Vec<IpAddr>>,
        wild: &HashMap<String, Vec<IpAddr>>,
        host: &str,
    ) -> Vec<IpAddr> {
        if let Some(ips) = exact.get(host) {
            return ips.clone();
        }
        if let Some(pattern) = wildcard_of(host)
            && let Some(ips) = wild.get(&pattern)
        {
            return ips.clone();
        }
        Vec::new()
    }
}

/// Go's `net.ParseIP` after cutting an IPv6 zone (`fe80::1%eth0`).
fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.split_once('%').map(|(a, _)| a).unwrap_or(s);
    s.parse().ok()
}

/// Lowercase (ASCII, as the names are compared) and make fully qualified.
fn normalize(name: &str) -> String {
    ferrodns_plugin::corefile::normalize_name(name)
}

/// Parse hosts(5) text: `ADDRESS NAME [NAME...]`, `#` comments. Only names inside `origins` are
/// kept; `reverse` fills the address map.
pub fn parse(text: &str, origins: &[String], reverse: bool) -> HostsMap {
    let mut m = HostsMap::default();
    for raw in text.lines() {
        let line = raw.split_once('#').map(|(a, _)| a).unwrap_or(raw);
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.len() < 2 {
            continue;
        }
        let Some(addr) = parse_ip(fields[0]) else {
            continue;
        };
        let addr = canonical(addr);
        let v4 = addr.is_ipv4();
        for f in &fields[1..] {
            let name = normalize(f);
            if zone_match(origins, &name).is_none() {
                continue;
            }
            if name.starts_with("*.") {
                let map = if v4 { &mut m.wild4 } else { &mut m.wild6 };
                map.entry(name).or_default().push(addr);
                continue;
            }
            let map = if v4 { &mut m.name4 } else { &mut m.name6 };
            map.entry(name.clone()).or_default().push(addr);
            if reverse {
                m.addr.entry(addr).or_default().push(name);
            }
        }
    }
    m
}

/// What a re-read of the file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The file could not be opened or examined; the old data stays.
    Unreadable,
    /// Same modification time and size as last time: nothing done.
    Unchanged,
    /// New data was read: this many entries from the file (the inline ones not counted, as
    /// CoreDNS's debug line counts them).
    Loaded(usize),
}

/// The hosts data of one `hosts` directive.
#[derive(Debug)]
pub struct Hostsfile {
    /// The file's path.
    pub path: String,
    /// The zones names are kept for.
    pub origins: Vec<String>,
    /// Whether PTR data is generated.
    pub reverse: bool,
    inline: HostsMap,
    file: RwLock<Arc<HostsMap>>,
    stamp: Mutex<Option<(SystemTime, u64)>>,
}

impl Hostsfile {
    /// Hosts data for `path` (not read yet) with the inline lines already parsed.
    pub fn new(path: String, origins: Vec<String>, reverse: bool, inline_lines: &[String]) -> Self {
        let inline = if inline_lines.is_empty() {
            HostsMap::default()
        } else {
            parse(&inline_lines.join("\n"), &origins, reverse)
        };
        Hostsfile {
            path,
            origins,
            reverse,
            inline,
            file: RwLock::new(Arc::new(HostsMap::default())),
            stamp: Mutex::new(None),
        }
    }

    /// The inline entries.
    pub fn inline(&self) -> &HostsMap {
        &self.inline
    }

    /// The file's entries as last read.
    pub fn file_map(&self) -> Arc<HostsMap> {
        match self.file.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-read the file if its modification time or size changed (blocking I/O).
    pub fn read(&self) -> (ReadOutcome, Option<SystemTime>) {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return (ReadOutcome::Unreadable, None);
        };
        let Ok(mtime) = meta.modified() else {
            return (ReadOutcome::Unreadable, None);
        };
        let size = meta.len();
        {
            let stamp = match self.stamp.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if *stamp == Some((mtime, size)) {
                return (ReadOutcome::Unchanged, Some(mtime));
            }
        }
        // A directory opens but reads nothing, as in Go: its entries are then empty.
        let bytes = if meta.is_dir() {
            Vec::new()
        } else {
            match std::fs::read(&self.path) {
                Ok(b) => b,
                Err(_) => return (ReadOutcome::Unreadable, None),
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let map = parse(&text, &self.origins, self.reverse);
        let entries = map.len();
        match self.file.write() {
            Ok(mut g) => *g = Arc::new(map),
            Err(p) => *p.into_inner() = Arc::new(map),
        }
        match self.stamp.lock() {
            Ok(mut g) => *g = Some((mtime, size)),
            Err(p) => *p.into_inner() = Some((mtime, size)),
        }
        (ReadOutcome::Loaded(entries), Some(mtime))
    }

    /// The IPv4 (`v4`) or IPv6 addresses of `host` (lowercased, fully qualified): the file's,
    /// then the inline ones.
    pub fn lookup_host(&self, host: &str, v4: bool) -> Vec<IpAddr> {
        let file = self.file_map();
        let (mut out, more) = if v4 {
            (
                HostsMap::lookup(&file.name4, &file.wild4, host),
                HostsMap::lookup(&self.inline.name4, &self.inline.wild4, host),
            )
        } else {
            (
                HostsMap::lookup(&file.name6, &file.wild6, host),
                HostsMap::lookup(&self.inline.name6, &self.inline.wild6, host),
            )
        };
        out.extend(more);
        out
    }

    /// The names of an address: the file's, then the inline ones.
    pub fn lookup_addr(&self, addr: IpAddr) -> Vec<String> {
        let addr = canonical(addr);
        let file = self.file_map();
        let mut out = file.addr.get(&addr).cloned().unwrap_or_default();
        if let Some(more) = self.inline.addr.get(&addr) {
            out.extend(more.iter().cloned());
        }
        out
    }
}

/// Seconds since the epoch as a float, for the reload timestamp metric.
pub fn unix_seconds(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

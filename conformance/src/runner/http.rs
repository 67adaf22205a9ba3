//! The HTTP side of a case: `[metrics]` families scraped from both servers and compared, and
//! `[[http]]` requests sent to both.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result};

use super::side::{Side, substitute};
use crate::compare::{REF, SUT};

/// Family name -> (type, sorted label names).
type Families = BTreeMap<String, (String, Vec<String>)>;

fn scrape(addr: &str) -> Result<Families> {
    let sock: SocketAddr = addr
        .parse()
        .with_context(|| format!("metrics address {addr:?}"))?;
    let mut c = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(c, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut body = String::new();
    c.read_to_string(&mut body)?;
    let mut fams: Families = BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(n), Some(t)) = (it.next(), it.next()) {
                fams.entry(n.to_string()).or_default().0 = t.to_string();
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let sample = &line[..name_end];
        let family = ["_bucket", "_sum", "_count", "_total", "_created"]
            .iter()
            .find_map(|s| sample.strip_suffix(s).filter(|f| fams.contains_key(*f)))
            .unwrap_or(sample)
            .to_string();
        let labels: Vec<String> = match line[name_end..].strip_prefix('{') {
            Some(rest) => rest
                .split('}')
                .next()
                .unwrap_or("")
                .split(',')
                .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.trim().to_string()))
                .filter(|k| k != "le" && k != "quantile")
                .collect(),
            None => Vec::new(),
        };
        let e = fams.entry(family).or_default();
        for l in labels {
            if !e.1.contains(&l) {
                e.1.push(l);
            }
        }
    }
    for v in fams.values_mut() {
        v.1.sort();
    }
    // OpenMetrics names a counter family without `_total` (its samples keep it); the classic
    // text format names the family after the samples. Compare by the sample name.
    Ok(fams
        .into_iter()
        .map(|(n, v)| {
            if v.0 == "counter" && !n.ends_with("_total") {
                (format!("{n}_total"), v)
            } else {
                (n, v)
            }
        })
        .collect())
}

/// Scrape one side's metrics (from inside its namespace, if it has one).
fn scrape_side(address: &str, side: &Side) -> Result<Families> {
    let addr = substitute(address, &side.vars);
    match &side.netns {
        Some(ns) => ns.run(|| scrape(&addr)).and_then(|r| r),
        None => scrape(&addr),
    }
}

pub(super) fn metrics(m: &crate::case::Metrics, a: &Side, b: &Side) -> Vec<String> {
    let fa = match scrape_side(&m.address, a) {
        Ok(f) => f,
        Err(e) => return vec![format!("metrics: scraping {REF}: {e:#}")],
    };
    let fb = match scrape_side(&m.address, b) {
        Ok(f) => f,
        Err(e) => return vec![format!("metrics: scraping {SUT}: {e:#}")],
    };
    let mut d = Vec::new();
    if !fa
        .keys()
        .any(|n| m.families.iter().any(|p| n.starts_with(p.as_str())))
    {
        d.push(format!(
            "metrics: {REF} exports no family under {:?}: nothing would be compared",
            m.families
        ));
    }
    for (name, (ty, labels)) in &fa {
        if !m.families.iter().any(|p| name.starts_with(p.as_str())) || m.ignore.contains(name) {
            continue;
        }
        match fb.get(name) {
            None => d.push(format!("metrics: family {name} ({ty}) missing in {SUT}")),
            Some((tb, lb)) => {
                if tb != ty {
                    d.push(format!("metrics: {name} type: {REF} {ty}, {SUT} {tb}"));
                }
                if lb != labels {
                    d.push(format!(
                        "metrics: {name} labels: {REF} {labels:?}, {SUT} {lb:?}"
                    ));
                }
            }
        }
    }
    d
}

/// One HTTP request and its answer: (status, body).
fn fetch(address: &str, method: &str, path: &str) -> Result<(u16, String)> {
    let sock: SocketAddr = address
        .parse()
        .with_context(|| format!("http address {address:?}"))?;
    let mut c = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    c.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP status in {head:?}"))?;
    // Bodies are compared as sent, without chunked framing (neither server chunks these).
    Ok((status, body.to_string()))
}

/// Send one `[[http]]` request to both servers and compare their answers.
pub(super) fn http_request(i: usize, h: &crate::case::Http, a: &Side, b: &Side) -> Vec<String> {
    let label = format!("http {}: {} {} on {}", i + 1, h.method, h.path, h.address);
    let mut answers = Vec::new();
    for (name, side) in [(REF, a), (SUT, b)] {
        let addr = substitute(&h.address, &side.vars);
        let got = match &side.netns {
            Some(ns) => ns.run(|| fetch(&addr, &h.method, &h.path)).and_then(|r| r),
            None => fetch(&addr, &h.method, &h.path),
        };
        match got {
            Ok((status, body)) => answers.push((status, side.normalize(&body))),
            Err(e) => return vec![label, format!("    {name}: {e:#}")],
        }
    }
    let mut d = Vec::new();
    let ((sa, ba), (sb, bb)) = (&answers[0], &answers[1]);
    if sa != sb {
        d.push(format!("    status: {REF} {sa}, {SUT} {sb}"));
    }
    if ba != bb {
        d.push(format!("    body: {REF} {ba:?}, {SUT} {bb:?}"));
    }
    for (name, (status, body)) in [(REF, &answers[0]), (SUT, &answers[1])] {
        if let Some(want) = h.status
            && *status != want
        {
            d.push(format!("    {name}: status {status}, expected {want}"));
        }
        if let Some(want) = &h.body
            && body != want
        {
            d.push(format!("    {name}: body {body:?}, expected {want:?}"));
        }
    }
    if !d.is_empty() {
        d.insert(0, label);
    }
    d
}

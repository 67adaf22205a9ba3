//! The HTTP side of a case: `[metrics]` families scraped from both servers and compared, and
//! `[[http]]` requests sent to both.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
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

/// One answer: status, `Content-Type` and `Content-Length` headers, body (de-chunked).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    content_length: Option<String>,
    body: String,
}

/// Read one answer from `r`: the head, then a body framed by `Content-Length`, chunked, or
/// (neither) up to the end of the connection; none for HEAD.
fn read_answer(r: &mut impl BufRead, head_only: bool) -> Result<Answer> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP status in {line:?}"))?;
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l)? == 0 {
            anyhow::bail!("connection closed in the response head");
        }
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    let no_body = head_only || status == 204 || status == 304 || (100..200).contains(&status);
    if no_body {
    } else if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .with_context(|| format!("bad chunk size {size:?}"))?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Answer {
        status,
        content_type: get("content-type"),
        content_length: get("content-length"),
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Send the request `h.repeat` times on one connection and read every answer.
fn fetch(address: &str, h: &crate::case::Http) -> Result<Vec<Answer>> {
    let sock: SocketAddr = address
        .parse()
        .with_context(|| format!("http address {address:?}"))?;
    let c = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut w = c.try_clone()?;
    let mut r = BufReader::new(c);
    let extra: String = h
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let n = h.repeat.max(1);
    let mut answers = Vec::new();
    for i in 0..n {
        let close = if i + 1 == n {
            "Connection: close\r\n"
        } else {
            ""
        };
        write!(
            w,
            "{} {} HTTP/1.1\r\nHost: {address}\r\n{extra}{close}\r\n",
            h.method, h.path
        )?;
        let a = read_answer(&mut r, h.method == "HEAD")
            .with_context(|| format!("answer {} of {n} on one connection", i + 1))?;
        answers.push(a);
    }
    Ok(answers)
}

/// Send one `[[http]]` request to both servers and compare their answers.
pub(super) fn http_request(i: usize, h: &crate::case::Http, a: &Side, b: &Side) -> Vec<String> {
    let label = format!("http {}: {} {} on {}", i + 1, h.method, h.path, h.address);
    let mut sides = Vec::new();
    for (name, side) in [(REF, a), (SUT, b)] {
        let addr = substitute(&h.address, &side.vars);
        let got = match &side.netns {
            Some(ns) => ns.run(|| fetch(&addr, h)).and_then(|r| r),
            None => fetch(&addr, h),
        };
        match got {
            Ok(answers) => sides.push(
                answers
                    .into_iter()
                    .map(|mut x| {
                        x.body = side.normalize(&x.body);
                        x
                    })
                    .collect::<Vec<_>>(),
            ),
            Err(e) => return vec![label, format!("    {name}: {e:#}")],
        }
    }
    let whole = h.lines.is_empty() && h.lacks.is_empty();
    let mut d = Vec::new();
    for (k, (x, y)) in sides[0].iter().zip(&sides[1]).enumerate() {
        let at = if h.repeat > 1 {
            format!(" (answer {})", k + 1)
        } else {
            String::new()
        };
        if x.status != y.status {
            d.push(format!(
                "    status{at}: {REF} {}, {SUT} {}",
                x.status, y.status
            ));
        }
        if whole && x.body != y.body {
            d.push(format!(
                "    body{at}: {REF} {:?}, {SUT} {:?}",
                x.body, y.body
            ));
        }
        if h.content_type.is_some() && x.content_type != y.content_type {
            d.push(format!(
                "    content type{at}: {REF} {:?}, {SUT} {:?}",
                x.content_type, y.content_type
            ));
        }
        if h.content_length.is_some() && x.content_length != y.content_length {
            d.push(format!(
                "    content length{at}: {REF} {:?}, {SUT} {:?}",
                x.content_length, y.content_length
            ));
        }
        for (name, ans) in [(REF, x), (SUT, y)] {
            if let Some(want) = h.status
                && ans.status != want
            {
                d.push(format!(
                    "    {name}{at}: status {}, expected {want}",
                    ans.status
                ));
            }
            if let Some(want) = &h.body
                && &ans.body != want
            {
                d.push(format!(
                    "    {name}{at}: body {:?}, expected {want:?}",
                    ans.body
                ));
            }
            if let Some(want) = &h.content_type
                && ans.content_type.as_ref() != Some(want)
            {
                d.push(format!(
                    "    {name}{at}: content type {:?}, expected {want:?}",
                    ans.content_type
                ));
            }
            if let Some(want) = &h.content_length
                && ans.content_length.as_ref() != Some(want)
            {
                d.push(format!(
                    "    {name}{at}: content length {:?}, expected {want:?}",
                    ans.content_length
                ));
            }
            for l in &h.lines {
                if !ans.body.lines().any(|b| b == l) {
                    d.push(format!("    {name}{at}: no line {l:?}"));
                }
            }
            for l in &h.lacks {
                if ans.body.contains(l.as_str()) {
                    d.push(format!("    {name}{at}: body holds {l:?}"));
                }
            }
        }
    }
    if !d.is_empty() {
        d.insert(0, label);
    }
    d
}

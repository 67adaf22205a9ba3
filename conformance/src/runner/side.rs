//! One side of a case: a server under test started in a directory of its own, with its ports,
//! fake upstreams and (for `netns` cases) network namespace, and the placeholders filled in.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use regex::Regex;

use crate::case::Case;
use crate::dnstap::Receiver;
use crate::netns::Netns;
use crate::process::{Server, Started, TempDir, free_port};
use crate::upstream::FakeUpstream;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// One server under test with everything it needs.
pub(super) struct Side {
    // Field order is drop order: the server dies before its upstreams and directory go.
    pub(super) server: Server,
    pub(super) started: Started,
    /// The dnstap receiver (`dnstap = {...}` cases).
    pub(super) dnstap: Option<Receiver>,
    pub(super) upstreams: Vec<FakeUpstream>,
    pub(super) vars: Vec<(String, String)>,
    pub(super) dir: TempDir,
    /// The side's own network namespace (`netns` cases), deleted last.
    pub(super) netns: Option<Netns>,
}

impl Side {
    /// Placeholder values back to placeholders, for comparing output.
    pub(super) fn normalize(&self, line: &str) -> String {
        let mut s = line.replace(&self.dir.path().display().to_string(), "{DIR}");
        for (k, v) in &self.vars {
            if k == "DIR" || v.is_empty() {
                continue;
            }
            if v.bytes().all(|b| b.is_ascii_digit()) {
                // Ports: whole numbers only.
                if let Ok(re) = Regex::new(&format!(r"\b{v}\b")) {
                    s = re.replace_all(&s, format!("{{{k}}}")).into_owned();
                }
            } else {
                s = s.replace(v.as_str(), &format!("{{{k}}}"));
            }
        }
        s
    }

    pub(super) fn value(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub(super) fn substitute(text: &str, vars: &[(String, String)]) -> String {
    let mut s = text.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

fn port_placeholders(case: &Case) -> Vec<String> {
    let re = Regex::new(r"\{(PORT[0-9]*)\}").ok();
    let mut texts: Vec<&str> = vec![case.corefile.as_str()];
    texts.extend(case.files.values().map(String::as_str));
    texts.extend(case.env.values().map(String::as_str));
    if let Some(c) = &case.selftest_ferrodns_corefile {
        texts.push(c);
    }
    if let Some(m) = &case.metrics {
        texts.push(&m.address);
    }
    for h in &case.http {
        texts.push(&h.address);
    }
    let mut names = vec!["PORT".to_string()];
    if let Some(re) = re {
        for t in texts {
            for c in re.captures_iter(t) {
                names.push(c[1].to_string());
            }
        }
    }
    for q in &case.query {
        // A literal port (`port = "53"`) is not a placeholder.
        if q.port.starts_with('{') {
            names.push(q.port.trim_matches(['{', '}']).to_string());
        }
    }
    names.sort();
    names.dedup();
    names
}

pub(super) fn start_side(
    name: &'static str,
    bin: &Path,
    case: &Case,
    corefile: &str,
    extra_vars: &[(String, String)],
) -> Result<Side> {
    let mut last_text = String::new();
    for _attempt in 0..4 {
        let dir = TempDir::new(name)?;
        let mut vars: Vec<(String, String)> =
            vec![("DIR".into(), dir.path().display().to_string())];
        vars.extend(extra_vars.iter().cloned());
        for p in port_placeholders(case) {
            vars.push((p, free_port()?.to_string()));
        }
        let netns = if case.netns.is_empty() {
            None
        } else {
            Some(Netns::create(name, &case.netns)?)
        };
        let mut upstreams = Vec::new();
        for (i, u) in case.upstream.iter().enumerate() {
            let at = match &u.address {
                Some(a) => Some(
                    a.parse::<SocketAddr>()
                        .with_context(|| format!("upstream address {a}"))?,
                ),
                None => None,
            };
            let up = match &netns {
                Some(ns) => ns.run(|| FakeUpstream::start(&u.rule, at))??,
                None => FakeUpstream::start(&u.rule, at)?,
            };
            let port = up.addr().port().to_string();
            if i == 0 {
                vars.push(("UPSTREAM_PORT".into(), port.clone()));
                vars.push(("UPSTREAM".into(), up.addr().to_string()));
            }
            if !u.name.is_empty() {
                vars.push((format!("UPSTREAM_PORT_{}", u.name), port.clone()));
                vars.push((format!("UPSTREAM_{}", u.name), up.addr().to_string()));
            }
            upstreams.push(up);
        }
        let dnstap = match &case.dnstap {
            Some(d) => {
                let r = Receiver::start(&d.socket, dir.path())?;
                vars.push(("DNSTAP".into(), r.endpoint.clone()));
                Some(r)
            }
            None => None,
        };
        for (rel, content) in &case.files {
            let p = dir.path().join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&p, substitute(content, &vars))?;
        }
        std::fs::write(dir.path().join("Corefile"), substitute(corefile, &vars))?;
        let env: BTreeMap<String, String> = case
            .env
            .iter()
            .map(|(k, v)| (k.clone(), substitute(v, &vars)))
            .collect();
        let port: u16 = vars
            .iter()
            .find(|(k, _)| k == "PORT")
            .and_then(|(_, v)| v.parse().ok())
            .context("no PORT")?;
        let (server, started) = Server::start(
            bin,
            dir.path(),
            port,
            &env,
            STARTUP_TIMEOUT,
            netns.as_ref().map(Netns::name),
        )?;
        if let Started::Failed { text, .. } = &started
            && text.to_ascii_lowercase().contains("address already in use")
        {
            // Someone took a port between our probe and the server's bind: try new ports.
            last_text = text.clone();
            continue;
        }
        return Ok(Side {
            server,
            started,
            dnstap,
            upstreams,
            vars,
            dir,
            netns,
        });
    }
    bail!("{name}: ports kept being taken; last output:\n{last_text}")
}

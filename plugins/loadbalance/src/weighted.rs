//! The `weighted` policy: a weight file, its periodic reload and the weighted pick of the top
//! address.

use ferrodns_pkg::names::canonical;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ferrodns_plugin::proto::rr::Record;
use ferrodns_plugin::{Lifecycle, SetupError, async_trait};
use tokio::sync::watch;

use crate::{NAME, TARGET, record_ip, split};

/// Weights per owner name (as written in the file, fully qualified): address and weight.
pub type Weights = HashMap<String, Vec<(IpAddr, u8)>>;

/// The weight file and what was last read from it.
#[derive(Debug)]
pub struct Weighted {
    /// The weight file's path.
    pub file: String,
    /// How often the file is checked (zero: never after startup).
    pub reload: Duration,
    last: Mutex<Option<Vec<u8>>>,
    weights: RwLock<Weights>,
}

/// Why the weight file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightError {
    /// The file could not be opened.
    Open,
    /// Its content is wrong (the message says how).
    Parse(String),
}

impl std::fmt::Display for WeightError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WeightError::Open => f.write_str("weight file open error"),
            WeightError::Parse(m) => f.write_str(m),
        }
    }
}

/// Parse a weight file's content as upstream does; `file` names it in the error texts.
pub fn parse_weights(text: &str, file: &str) -> Result<Weights, String> {
    let mut domains: Weights = HashMap::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [name] => {
                if name.parse::<IpAddr>().is_ok() {
                    return Err(format!(
                        "wrong domain name:\"{name}\" in weight file {file}. (Maybe a missing weight value?)"
                    ));
                }
                let mut d = name.to_string();
                if !d.ends_with('.') {
                    d.push('.');
                }
                domains.entry(d.clone()).or_default();
                current = Some(d);
            }
            [ip, weight] => {
                let Ok(addr) = ip.parse::<IpAddr>() else {
                    return Err(format!("wrong IP address:\"{ip}\" in weight file {file}"));
                };
                let value = if weight.is_empty() || !weight.bytes().all(|b| b.is_ascii_digit()) {
                    None
                } else {
                    weight.parse::<u8>().ok().filter(|w| *w > 0)
                };
                let Some(value) = value else {
                    return Err(format!(
                        "wrong weight value:\"{weight}\" in weight file {file}"
                    ));
                };
                let Some(d) = &current else {
                    return Err(format!("missing domain name in weight file {file}"));
                };
                domains
                    .entry(d.clone())
                    .or_default()
                    .push((canonical(addr), value));
            }
            _ => {
                return Err(format!(
                    "could not parse weight line:\"{line}\" in weight file {file}"
                ));
            }
        }
    }
    Ok(domains)
}

impl Weighted {
    /// A policy reading `file`, checked every `reload`.
    pub fn new(file: String, reload: Duration) -> Self {
        Weighted {
            file,
            reload,
            last: Mutex::new(None),
            weights: RwLock::new(HashMap::new()),
        }
    }

    /// Read the file again if its content changed. Returns whether new weights were taken.
    pub fn update(&self) -> Result<bool, WeightError> {
        let bytes = std::fs::read(&self.file).map_err(|_| WeightError::Open)?;
        {
            let mut last = match self.last.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if last.as_deref() == Some(bytes.as_slice()) {
                return Ok(false);
            }
            // As upstream, the content is remembered before it is parsed: a broken file is
            // reported once, not at every check.
            *last = Some(bytes.clone());
        }
        let text = String::from_utf8_lossy(&bytes);
        let weights = parse_weights(&text, &self.file).map_err(WeightError::Parse)?;
        match self.weights.write() {
            Ok(mut w) => *w = weights,
            Err(p) => *p.into_inner() = weights,
        }
        tracing::info!(target: TARGET, "Successfully reloaded weight file {}", self.file);
        Ok(true)
    }

    /// The weights now in use.
    pub fn weights(&self) -> Weights {
        match self.weights.read() {
            Ok(w) => w.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The index of the address to put on top, drawing `v` in `0..sum` with `draw`.
    pub fn top_index(&self, address: &[Record], draw: impl FnOnce(u32) -> u32) -> Option<usize> {
        let weights = match self.weights.read() {
            Ok(w) => w,
            Err(p) => p.into_inner(),
        };
        let mut items: Vec<(usize, u8)> = Vec::with_capacity(address.len());
        let mut sum: u32 = 0;
        for (i, r) in address.iter().enumerate() {
            let ip = record_ip(r).map(canonical);
            let owner = r.name.to_string();
            let w = weights
                .get(&owner)
                .and_then(|ws| ws.iter().find(|(a, _)| Some(*a) == ip).map(|(_, w)| *w))
                .unwrap_or(1);
            sum += u32::from(w);
            items.push((i, w));
        }
        if sum == 0 {
            return None;
        }
        items.sort_by_key(|b| std::cmp::Reverse(b.1));
        let v = draw(sum);
        let mut psum = 0;
        for (i, w) in items {
            psum += u32::from(w);
            if v < psum {
                return Some(i);
            }
        }
        None
    }

    /// The weighted order of one section: CNAME, others, addresses with the picked one first,
    /// MX. A section without addresses is left as it is.
    pub fn apply(&self, section: &mut Vec<Record>) {
        self.apply_with(section, |sum| rand::random_range(0..sum));
    }

    /// As [`Weighted::apply`] with a given random draw (for tests).
    pub fn apply_with(&self, section: &mut Vec<Record>, draw: impl FnOnce(u32) -> u32) {
        if !section.iter().any(|r| record_ip(r).is_some()) {
            return;
        }
        let mut g = split(std::mem::take(section));
        if let Some(top) = self.top_index(&g.address, draw)
            && top != 0
        {
            g.address.swap(0, top);
        }
        section.extend(g.cname);
        section.extend(g.rest);
        section.extend(g.address);
        section.extend(g.mx);
    }
}

/// Reads the weight file at startup and then every `reload` until shutdown.
pub struct WeightedLifecycle {
    weighted: Arc<Weighted>,
    stop: watch::Sender<bool>,
}

impl WeightedLifecycle {
    /// Hooks for this policy.
    pub fn new(weighted: Arc<Weighted>) -> Self {
        let (stop, _) = watch::channel(false);
        WeightedLifecycle { weighted, stop }
    }
}

#[async_trait]
impl Lifecycle for WeightedLifecycle {
    async fn on_startup(&self) -> Result<(), SetupError> {
        let w = &self.weighted;
        match w.update() {
            Err(WeightError::Open) if !w.reload.is_zero() => {
                tracing::warn!(
                    target: TARGET,
                    "Failed to open weight file:{}. Will try again in {}",
                    WeightError::Open,
                    ferrodns_go::time::format_duration(w.reload)
                );
            }
            Err(e) => return Err(SetupError::plugin(NAME, e)),
            Ok(_) => {}
        }
        if w.reload.is_zero() {
            return Ok(());
        }
        let weighted = w.clone();
        ferrodns_plugin::every(weighted.reload, self.stop.subscribe(), move || {
            if let Err(e) = weighted.update() {
                tracing::error!(target: TARGET, "{e}");
            }
        });
        Ok(())
    }

    async fn on_shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

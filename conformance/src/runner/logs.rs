//! What both servers printed: log lines after the queries, and everything printed by servers
//! that are expected to exit by themselves, with run-dependent parts normalised.

use std::time::{Duration, Instant};

use regex::Regex;

use super::side::Side;
use super::startup::is_go_noise;
use crate::compare::{self, REF, SUT};

static DURATION: std::sync::LazyLock<Option<Regex>> =
    std::sync::LazyLock::new(|| Regex::new(r"\b[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?s\b").ok());

/// A log line with run-dependent parts replaced: durations (`0.000123s`) become `{duration}`.
fn normalize_log(side: &Side, line: &str) -> String {
    let s = side.normalize(line);
    match DURATION.as_ref() {
        Some(re) => re
            .replace_all(&s, |c: &regex::Captures<'_>| {
                // Keep configured durations (`30s`); replace measured ones (with a fraction).
                if c.get(1).is_some() || c.get(2).is_some() {
                    "{duration}".to_string()
                } else {
                    c[0].to_string()
                }
            })
            .into_owned(),
        None => s,
    }
}

static EPHEMERAL_PORT: std::sync::LazyLock<Option<Regex>> = std::sync::LazyLock::new(|| {
    Regex::new(r"(\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}|\[[0-9A-Fa-f:.%]+\]):[0-9]{1,5}\b").ok()
});
pub(super) static LONG_NUMBER: std::sync::LazyLock<Option<Regex>> =
    std::sync::LazyLock::new(|| Regex::new(r"\b[0-9]{10,}\b").ok());

/// A line of a server that exited by itself, normalised as a log line and further: client
/// ports the case does not know (`127.0.0.1:{port}`) and long random numbers (`loop`'s probe
/// labels, `{number}`).
fn normalize_exit_line(side: &Side, line: &str) -> String {
    let mut s = normalize_log(side, line);
    if let Some(re) = EPHEMERAL_PORT.as_ref() {
        s = re.replace_all(&s, "${1}:{port}").into_owned();
    }
    if let Some(re) = LONG_NUMBER.as_ref() {
        s = re.replace_all(&s, "{number}").into_owned();
    }
    s
}

/// `exit_within_ms` cases: both must end by themselves in time, with the same status, having
/// printed the same log lines and stderr (as multisets; the banner is left out, as the exit may
/// come before it is printed).
pub(super) fn exits(ms: u64, a: &mut Side, b: &mut Side, d: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_millis(ms);
    let ended = [a.server.wait_exit(deadline), b.server.wait_exit(deadline)];
    for (name, e) in [REF, SUT].iter().zip(&ended) {
        if e.is_none() {
            d.push(format!("process: {name} kept running for {ms} ms"));
        }
    }
    if let [Some(ea), Some(eb)] = &ended
        && ea != eb
    {
        d.push(format!("process: {REF} exited ({ea}), {SUT} exited ({eb})"));
    }
    let get = |side: &Side| -> Vec<String> {
        let mut v: Vec<String> = side
            .server
            .output()
            .iter()
            // Log lines and stderr only: the banner may or may not be out before the exit.
            .filter(|l| !is_go_noise(l) && (l.starts_with('[') || l.starts_with("stderr: ")))
            .map(|l| normalize_exit_line(side, l))
            .collect();
        v.sort();
        v
    };
    let diff = compare::lines(&get(a), &get(b));
    if !diff.is_empty() {
        d.push(format!("output differs (- {REF}, + {SUT}):"));
        d.extend(diff.into_iter().map(|l| format!("    {l}")));
    }
}

pub(super) fn logs(a: &Side, b: &Side) -> Vec<String> {
    // Lines may still be on their way after the last reply: wait until both have been quiet
    // for a while (the same moment for both, so the waits overlap).
    let from = Instant::now();
    let quiet = Duration::from_millis(100);
    let max = Duration::from_secs(2);
    let get = |side: &Side| -> Vec<String> {
        side.server
            .logs(from, quiet, max)
            .iter()
            .filter(|l| !is_go_noise(l))
            .map(|l| normalize_log(side, l))
            .collect()
    };
    // Lines of different queries may be printed in either order (CoreDNS logs after
    // replying, from one goroutine per query), so they are compared sorted.
    let (mut la, mut lb) = (get(a), get(b));
    la.sort();
    lb.sort();
    let diff = compare::lines(&la, &lb);
    if diff.is_empty() {
        return Vec::new();
    }
    let mut d = vec![format!("log output differs (- {REF}, + {SUT}):")];
    d.extend(diff.into_iter().map(|l| format!("    {l}")));
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_durations_are_normalized_configured_ones_kept() {
        let re = DURATION.as_ref().unwrap();
        let f = |s: &str| {
            re.replace_all(s, |c: &regex::Captures<'_>| {
                if c.get(1).is_some() || c.get(2).is_some() {
                    "{duration}".to_string()
                } else {
                    c[0].to_string()
                }
            })
            .into_owned()
        };
        assert_eq!(
            f("NOERROR qr,aa,rd 97 0.000123s"),
            "NOERROR qr,aa,rd 97 {duration}"
        );
        assert_eq!(f("x 1.5e-05s"), "x {duration}");
        assert_eq!(f("3 errors in last 30s"), "3 errors in last 30s");
    }

    #[test]
    fn exit_lines_lose_client_ports_and_random_numbers() {
        let (p, n) = (
            EPHEMERAL_PORT.as_ref().unwrap(),
            LONG_NUMBER.as_ref().unwrap(),
        );
        let line = "Loop (127.0.0.1:33917 -> :{PORT}) detected. Query: \"HINFO 1231942753485924138.2371801054993442968.\"";
        let s = p.replace_all(line, "${1}:{port}").into_owned();
        let s = n.replace_all(&s, "{number}").into_owned();
        assert_eq!(
            s,
            "Loop (127.0.0.1:{port} -> :{PORT}) detected. Query: \"HINFO {number}.{number}.\""
        );
        assert_eq!(p.replace_all("[::1]:53 x", "${1}:{port}"), "[::1]:{port} x");
    }
}

//! The result of a run and its JSON form (written by hand: the workspace has no serde).

use std::fmt::{self, Write as _};
use std::time::Duration;

/// Latency percentiles of answered queries, in microseconds (from a histogram with < 1.6 %
/// error; `max_us` is exact). All 0 when nothing was answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Slowest answer in time.
    pub max_us: u64,
}

/// Response codes of the answers counted as `answered`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rcodes {
    /// RCODE 0.
    pub noerror: u64,
    /// RCODE 3.
    pub nxdomain: u64,
    /// RCODE 2.
    pub servfail: u64,
    /// RCODE 5.
    pub refused: u64,
    /// Any other RCODE (the 4-bit header field).
    pub other: u64,
}

/// What happened to the queries of one transport, or of both.
///
/// After a run, `sent == answered + lost`: every query is either answered within the timeout
/// or lost. `slow` is a subset of `answered`, `late` a subset of `lost`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Distinct queries sent (a TCP re-send of the same query is not counted again).
    pub sent: u64,
    /// Queries answered within the timeout.
    pub answered: u64,
    /// Queries without an answer within the timeout (including those whose send failed).
    pub lost: u64,
    /// Answered queries whose answer took longer than the `slow` threshold.
    pub slow: u64,
    /// Lost queries whose answer came after all, after the timeout.
    pub late: u64,
    /// Replies that matched no outstanding query: unknown ID, different question, not a
    /// response, a duplicate, or from another address.
    pub mismatched: u64,
    /// Response codes of the answered queries.
    pub rcodes: Rcodes,
    /// Answered queries with the TC bit set.
    pub tc: u64,
    /// Latency of the answered queries.
    pub latency: Latency,
}

/// Everything a run measured. [`Report::to_json`] (and `Display`) give the JSON object the
/// binary prints.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Time from start until the stop (the sending phase).
    pub elapsed: Duration,
    /// Time spent after the stop waiting for outstanding answers.
    pub drain: Duration,
    /// Offered rate asked for: UDP rate plus TCP connections × per-connection rate (q/s).
    pub offered_rate: f64,
    /// Distinct queries sent divided by `elapsed` (q/s).
    pub send_rate: f64,
    /// Both transports together.
    pub total: Counts,
    /// UDP alone.
    pub udp: Counts,
    /// TCP alone.
    pub tcp: Counts,
    /// UDP queries the pacer gave up on because it was more than 100 ms behind schedule.
    pub udp_skipped: u64,
    /// Sends that failed (also counted as lost).
    pub send_errors: u64,
    /// Datagrams the kernel dropped on the generator's own UDP sockets because their receive
    /// buffer was full: answers the server did send but that count as lost (or late) here.
    /// Non-zero means the generator, not the server, fell behind. None if unknown.
    pub udp_local_drops: Option<u64>,
    /// TCP connections opened again after the server closed one or a write failed.
    pub tcp_reconnects: u64,
    /// Queries sent again on a new TCP connection because the old one closed before their
    /// answer came.
    pub tcp_resends: u64,
    /// TCP connection attempts that failed (each retried 10 ms later).
    pub tcp_connect_failures: u64,
    /// CPU time (user + system) this process used during the run, from `/proc/self/stat`; for
    /// an in-process run it includes whatever else the process did.
    pub cpu_seconds: Option<f64>,
}

fn latency_json(out: &mut String, l: &Latency) {
    let _ = write!(
        out,
        r#"{{"p50":{},"p99":{},"p999":{},"max":{}}}"#,
        l.p50_us, l.p99_us, l.p999_us, l.max_us
    );
}

fn counts_json(out: &mut String, c: &Counts, extra: &[(&str, u64)]) {
    let _ = write!(
        out,
        r#"{{"sent":{},"answered":{},"lost":{},"slow":{},"late":{},"mismatched":{},"rcodes":{{"NOERROR":{},"NXDOMAIN":{},"SERVFAIL":{},"REFUSED":{},"other":{}}},"tc":{},"latency_us":"#,
        c.sent,
        c.answered,
        c.lost,
        c.slow,
        c.late,
        c.mismatched,
        c.rcodes.noerror,
        c.rcodes.nxdomain,
        c.rcodes.servfail,
        c.rcodes.refused,
        c.rcodes.other,
        c.tc,
    );
    latency_json(out, &c.latency);
    for (k, v) in extra {
        let _ = write!(out, r#","{k}":{v}"#);
    }
    out.push('}');
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "null".into(), |v| v.to_string())
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{:.3}", v)
    } else {
        "null".into()
    }
}

impl Report {
    /// One JSON object on one line: the total counts at top level (`sent`, `answered`, `lost`,
    /// `slow`, `late`, `mismatched`, `rcodes`, `tc`, `latency_us`), then `udp` and `tcp`
    /// objects with the same fields plus their own (`skipped`, `send_errors`, `local_drops`;
    /// `reconnects`,
    /// `resends`, `connect_failures`), then `elapsed_s`, `drain_s`, `offered_rate`,
    /// `send_rate`, `cpu_seconds` (null when unknown).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(1024);
        counts_json(&mut out, &self.total, &[]);
        out.pop();
        out.push_str(r#","udp":"#);
        counts_json(
            &mut out,
            &self.udp,
            &[
                ("skipped", self.udp_skipped),
                ("send_errors", self.send_errors),
            ],
        );
        out.pop();
        let _ = write!(out, r#","local_drops":{}}}"#, opt(self.udp_local_drops));
        out.push_str(r#","tcp":"#);
        counts_json(
            &mut out,
            &self.tcp,
            &[
                ("reconnects", self.tcp_reconnects),
                ("resends", self.tcp_resends),
                ("connect_failures", self.tcp_connect_failures),
            ],
        );
        let _ = write!(
            out,
            r#","elapsed_s":{},"drain_s":{},"offered_rate":{},"send_rate":{},"cpu_seconds":{}}}"#,
            num(self.elapsed.as_secs_f64()),
            num(self.drain.as_secs_f64()),
            num(self.offered_rate),
            num(self.send_rate),
            self.cpu_seconds.map(num).unwrap_or_else(|| "null".into()),
        );
        out
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

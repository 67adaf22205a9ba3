//! Running cases: both servers up with the same Corefile, the same queries to both, the
//! differences collected; many cases at once on a few threads; the report.
//!
//! This file runs cases and sends the queries; `side` starts one server with its ports, fake
//! upstreams and namespace; `startup` compares how both started, `logs` what they printed,
//! `http` their metrics and HTTP answers; `report` prints the table.

mod http;
mod logs;
mod report;
mod side;
mod startup;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::case::{Case, Loaded, Logs};
use crate::client;
use crate::compare::{self, REF, SUT};
use crate::kube::{self, Cluster, Watch};
use crate::process::Started;
use crate::upstream::FakeUpstream;

pub use report::{closing_line, report};
pub use startup::{error_line, kind, location};

/// What the harness runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The reference CoreDNS binary.
    pub coredns: PathBuf,
    /// The ferrodns binary.
    pub ferrodns: PathBuf,
    /// Cases run at once.
    pub jobs: usize,
    /// Print progress lines.
    pub progress: bool,
    /// Allow the self-test fields.
    pub selftest: bool,
    /// Print both outcomes of every query.
    pub verbose: bool,
    /// kube-apiserver and kine, for kubernetes cases.
    pub kube: Option<ferrodns_kube_testenv::Bins>,
}

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Both agreed on everything compared.
    Pass,
    /// They differed (or the case's own assertions failed): the diff.
    Fail(Vec<String>),
    /// Not run, and why.
    Skip(String),
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// `area/name`.
    pub id: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Wall time.
    pub elapsed: Duration,
    /// Watch latencies of the kubernetes changes the case made.
    pub watch: Vec<Watch>,
}

/// The plugins a ferrodns binary ships (`-plugins`).
pub fn plugins_of(bin: &Path) -> Result<Vec<String>> {
    let out = std::process::Command::new(bin)
        .arg("-plugins")
        .output()
        .with_context(|| format!("running {} -plugins", bin.display()))?;
    if !out.status.success() {
        bail!("{} -plugins failed", bin.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches("dns.").to_string())
        .filter(|l| !l.is_empty())
        .collect())
}

/// Run every case, `jobs` at a time; results in the order of `cases`.
pub fn run_all(cases: &[Loaded], s: &Settings) -> Result<Vec<CaseResult>> {
    let plugins = plugins_of(&s.ferrodns)?;
    crate::process::sweep_stale_dirs();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<CaseResult>>> = Mutex::new(vec![None; cases.len()]);
    let width = cases.len().to_string().len();
    std::thread::scope(|scope| {
        for _ in 0..s.jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(l) = cases.get(i) else { break };
                    let r = run_one(l, s, &plugins);
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if s.progress {
                        let mut out = std::io::stdout().lock();
                        let word = match &r.verdict {
                            Verdict::Pass => "ok".to_string(),
                            Verdict::Fail(d) => format!("FAILED ({} differences)", d.len()),
                            Verdict::Skip(why) => format!("skipped ({why})"),
                        };
                        let _ = writeln!(
                            out,
                            "[{n:>width$}/{}] {} ... {} ({:.1}s)",
                            cases.len(),
                            r.id,
                            word,
                            r.elapsed.as_secs_f64()
                        );
                        for w in &r.watch {
                            let _ = writeln!(out, "    {}", w.line());
                        }
                    }
                    if let Ok(mut v) = results.lock() {
                        v[i] = Some(r);
                    }
                }
            });
        }
    });
    let v = results.into_inner().unwrap_or_default();
    Ok(v.into_iter().flatten().collect())
}

/// Run one case.
pub fn run_one(l: &Loaded, s: &Settings, plugins: &[String]) -> CaseResult {
    let started = Instant::now();
    let mut watch = Vec::new();
    let missing: Vec<&String> = l
        .case
        .requires
        .iter()
        .filter(|p| !plugins.contains(p))
        .collect();
    let verdict = if !missing.is_empty() {
        Verdict::Skip(format!(
            "ferrodns has no {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    } else if !s.selftest
        && (l.case.selftest_ferrodns_corefile.is_some()
            || !l.case.selftest_diff_contains.is_empty())
    {
        Verdict::Fail(vec![
            "selftest_* fields are only allowed in conformance/selftest/".to_string(),
        ])
    } else {
        match run_case(&l.case, s, &mut watch) {
            Ok(d) if d.is_empty() => Verdict::Pass,
            Ok(d) => Verdict::Fail(d),
            Err(e) => Verdict::Fail(vec![format!("harness error: {e:#}")]),
        }
    };
    CaseResult {
        id: l.id.clone(),
        verdict,
        elapsed: started.elapsed(),
        watch,
    }
}

/// Run one case and return its differences; the watch latencies of its kubernetes changes
/// go to `watch`.
pub fn run_case(case: &Case, s: &Settings, watch: &mut Vec<Watch>) -> Result<Vec<String>> {
    let sut_corefile = case
        .selftest_ferrodns_corefile
        .as_deref()
        .unwrap_or(&case.corefile);
    // A kubernetes case's API server, with its objects, before either DNS server starts (it
    // outlives both: declared first, dropped last).
    let cluster = if kube::needed(case) {
        let bins = s.kube.as_ref().context(
            "a kubernetes case needs --kube-apiserver PATH --kine PATH (cargo xtask conformance passes them)",
        )?;
        Some(Cluster::start(bins, case)?)
    } else {
        None
    };
    let kube_vars = cluster.as_ref().map(Cluster::vars).unwrap_or_default();
    // Both are spawned from this thread, which outlives them (see PR_SET_PDEATHSIG in
    // process.rs).
    let mut a = side::start_side(REF, &s.coredns, case, &case.corefile, &kube_vars)?;
    let mut b = side::start_side(SUT, &s.ferrodns, case, sut_corefile, &kube_vars)?;
    let mut d = Vec::new();
    if s.verbose {
        for side in [&a, &b] {
            if let Started::Failed { text, .. } = &side.started {
                println!("  startup error: {}", side.normalize(&error_line(text)));
            }
        }
    }
    if let Some(ms) = case.exit_within_ms {
        logs::exits(ms, &mut a, &mut b, &mut d);
        return Ok(d);
    }
    let both_ready = startup::startup(case, &a, &b, &mut d);
    if both_ready {
        for (i, q) in case.query.iter().enumerate() {
            if q.sleep_ms > 0 {
                std::thread::sleep(Duration::from_millis(q.sleep_ms));
            }
            let msg = q.bytes(i)?;
            let port_key = q.port.trim_matches(['{', '}']);
            let ip: IpAddr = q
                .server
                .parse()
                .with_context(|| format!("query {}: bad server address", i + 1))?;
            let mut targets = Vec::new();
            for side in [&a, &b] {
                // A placeholder, or a literal port (`netns` cases listen on fixed ports).
                let port: u16 = side
                    .value(port_key)
                    .unwrap_or(port_key)
                    .parse()
                    .ok()
                    .with_context(|| format!("query {}: no port {port_key}", i + 1))?;
                targets.push(SocketAddr::new(ip, port));
            }
            if !q.kube.is_empty() {
                let cluster = cluster
                    .as_ref()
                    .context("kube changes without an API server")?;
                if let Some(w) = kube_change(i, q, &msg, &targets, cluster, &mut d)? {
                    if s.verbose {
                        println!("  {}", w.line());
                    }
                    watch.push(w);
                }
            }
            let serials = cluster.as_ref().map(Cluster::serial_window);
            for proto in q.transport.each() {
                let timeout = Duration::from_millis(q.timeout_ms);
                let send = |targets: &[SocketAddr]| match proto {
                    crate::case::Proto::Udp => client::udp(&msg, targets, timeout),
                    crate::case::Proto::Tcp => client::tcp(&msg, targets, timeout),
                };
                let out = match (&a.netns, &b.netns) {
                    // Each side from inside its own namespace (so not from the same port).
                    (Some(na), Some(nb)) => {
                        let mut out = na.run(|| send(&targets[..1]))?;
                        out.extend(nb.run(|| send(&targets[1..]))?);
                        out
                    }
                    _ => send(&targets),
                };
                let (oa, ob) = (&out[0], &out[1]);
                if s.verbose {
                    println!(
                        "  query {} over {proto}: {}\n    {REF}:  {}\n    {SUT}: {}",
                        i + 1,
                        q.label(),
                        verbose_outcome(oa),
                        verbose_outcome(ob)
                    );
                }
                let mut qd = compare::outcomes_in(q, oa, ob, serials.as_ref());
                qd.extend(compare::expectations(q, REF, oa));
                qd.extend(compare::expectations(q, SUT, ob));
                if !qd.is_empty() {
                    d.push(format!("query {} over {proto}: {}", i + 1, q.label()));
                    d.extend(qd.into_iter().map(|l| format!("    {l}")));
                }
            }
        }
        let exits: Vec<Option<String>> = [&mut a, &mut b]
            .into_iter()
            .map(|side| side.server.exited())
            .collect();
        if exits[0] != exits[1] {
            let show = |e: &Option<String>| match e {
                Some(how) => format!("exited ({how}) during the case"),
                None => "kept running".to_string(),
            };
            d.push(format!(
                "process: {REF} {}, {SUT} {}",
                show(&exits[0]),
                show(&exits[1])
            ));
        }
        if case.upstream_queries == Logs::Compare {
            // A cache may still ask after its last reply (a refresh in the background): wait
            // until every upstream has been quiet for a while, from the same moment.
            let from = Instant::now();
            let (quiet, max) = (Duration::from_millis(150), Duration::from_secs(2));
            for (i, (ua, ub)) in a.upstreams.iter().zip(&b.upstreams).enumerate() {
                // Labels of 10 digits or more are random (`loop`'s probe): `{number}`.
                // Probes of several blocks race each other: they are compared as a multiset,
                // after the other queries, which are compared in order.
                let show = |u: &FakeUpstream| -> Vec<String> {
                    let (mut probes, mut rest): (Vec<String>, Vec<String>) = u
                        .seen_settled(from, quiet, max)
                        .iter()
                        .map(|s| format!("{} {} {}", s.proto, s.name, s.qtype))
                        .map(|l| match logs::LONG_NUMBER.as_ref() {
                            Some(re) => re.replace_all(&l, "{number}").into_owned(),
                            None => l,
                        })
                        .partition(|l| l.contains("{number}.{number}.") && l.ends_with(" HINFO"));
                    probes.sort();
                    rest.extend(probes);
                    rest
                };
                let diff = compare::lines(&show(ua), &show(ub));
                if !diff.is_empty() {
                    d.push(format!(
                        "queries seen by upstream {} differ (- {REF}, + {SUT}):",
                        i + 1
                    ));
                    d.extend(diff.into_iter().map(|l| format!("    {l}")));
                }
            }
        }
        if case.dnstap.is_some() {
            d.extend(dnstap_messages(&a, &b));
        }
        for (i, h) in case.http.iter().enumerate() {
            d.extend(http::http_request(i, h, &a, &b));
        }
        if let Some(m) = &case.metrics {
            d.extend(http::metrics(m, &a, &b));
        }
        if case.logs == Logs::Compare {
            d.extend(logs::logs(&a, &b));
        }
    }
    Ok(d)
}

/// Apply query `i`'s kubernetes changes; unless the query says `wait_change = false`, first
/// note each server's answer to it, then poll both until their answers differ from that (the
/// watch latency, from the moment the last change was sent to the API server). A server whose
/// answer does not change in time is a difference.
fn kube_change(
    i: usize,
    q: &crate::case::Query,
    msg: &[u8],
    targets: &[SocketAddr],
    cluster: &Cluster,
    d: &mut Vec<String>,
) -> Result<Option<Watch>> {
    let changes = q
        .kube
        .iter()
        .map(kube::Change::from_table)
        .collect::<Result<Vec<_>>>()?;
    let what = changes
        .iter()
        .map(kube::Change::describe)
        .collect::<Vec<_>>()
        .join(", ");
    if !q.wait_change.unwrap_or(true) {
        cluster.apply(&changes)?;
        return Ok(None);
    }
    // The answer as compared (TTLs and the kubernetes SOA serial aside): rcode and sections.
    let answer = |side: usize| -> String {
        let out = client::udp(msg, &targets[side..=side], Duration::from_millis(500));
        match &out[0] {
            client::Outcome::Reply(b) => match crate::wire::parse_reply(b) {
                Ok(mut r) => {
                    compare::soa_serials(&mut r, &cluster.serial_window());
                    let mut t = vec![crate::wire::rcode_name(r.rcode())];
                    for sec in &r.sections {
                        let mut rrs: Vec<String> = sec.iter().map(|rr| rr.text(false)).collect();
                        rrs.sort();
                        t.push(rrs.join(" | "));
                    }
                    t.join(" / ")
                }
                Err(e) => format!("unparsable: {e}"),
            },
            client::Outcome::NoReply(why) => format!("no reply: {why}"),
        }
    };
    let before = [answer(0), answer(1)];
    let from = cluster.apply(&changes)?;
    let latency = kube::wait_changes(from, Duration::from_millis(q.watch_timeout_ms), |side| {
        answer(side) != before[side]
    });
    for (side, l) in [REF, SUT].iter().zip(latency) {
        if l.is_none() {
            d.push(format!(
                "query {} ({}): {side}'s answer did not change within {} ms of: {what}; it stayed {}",
                i + 1,
                q.label(),
                q.watch_timeout_ms,
                before[if *side == REF { 0 } else { 1 }]
            ));
        }
    }
    Ok(Some(Watch {
        query: i + 1,
        what,
        latency,
    }))
}

/// The dnstap messages both servers sent, once both receivers are quiet, as multisets of
/// normalised lines (several taps write over several connections, in no fixed order).
fn dnstap_messages(a: &side::Side, b: &side::Side) -> Vec<String> {
    let (quiet, max) = (Duration::from_millis(1500), Duration::from_secs(6));
    let lines = |s: &side::Side| -> Vec<String> {
        let Some(r) = &s.dnstap else {
            return Vec::new();
        };
        let mut v: Vec<String> = r
            .settled(quiet, max)
            .iter()
            .map(|f| match crate::dnstap::decode(f) {
                Ok(d) => s.normalize(&d.line()),
                Err(e) => format!("undecodable frame ({e}): {}", crate::wire::hex(f)),
            })
            .collect();
        v.sort();
        v
    };
    let diff = compare::lines(&lines(a), &lines(b));
    if diff.is_empty() {
        return diff;
    }
    let mut d = vec![format!("dnstap messages differ (- {REF}, + {SUT}):")];
    d.extend(diff.into_iter().map(|l| format!("    {l}")));
    d
}

fn verbose_outcome(o: &client::Outcome) -> String {
    match o {
        client::Outcome::Reply(b) => match crate::wire::parse_reply(b) {
            Ok(r) => {
                let mut t = r.summary();
                for (name, sec) in ["an", "ns", "ar"].iter().zip(&r.sections) {
                    for rr in sec {
                        t.push_str(&format!("\n      {name}: {}", rr.text(true)));
                    }
                }
                for o in &r.opts {
                    t.push_str(&format!("\n      opt: {}", o.text()));
                }
                t.push_str(&format!("\n      bytes: {}", crate::wire::hex(b)));
                t
            }
            Err(_) => compare::describe(o),
        },
        client::Outcome::NoReply(_) => compare::describe(o),
    }
}

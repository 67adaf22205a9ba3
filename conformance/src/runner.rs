//! Running cases: both servers up with the same Corefile, the same queries to both, the
//! differences collected; many cases at once on a few threads; the report.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use regex::Regex;

use crate::case::{Case, ErrorMatch, Loaded, Logs, Startup};
use crate::client;
use crate::compare::{self, REF, SUT};
use crate::netns::Netns;
use crate::process::{Server, Started, TempDir, free_port};
use crate::upstream::FakeUpstream;

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
}

const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

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
                        let word = match &r.verdict {
                            Verdict::Pass => "ok".to_string(),
                            Verdict::Fail(d) => format!("FAILED ({} differences)", d.len()),
                            Verdict::Skip(why) => format!("skipped ({why})"),
                        };
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(
                            out,
                            "[{n:>width$}/{}] {} ... {} ({:.1}s)",
                            cases.len(),
                            r.id,
                            word,
                            r.elapsed.as_secs_f64()
                        );
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
        match run_case(&l.case, s) {
            Ok(d) if d.is_empty() => Verdict::Pass,
            Ok(d) => Verdict::Fail(d),
            Err(e) => Verdict::Fail(vec![format!("harness error: {e:#}")]),
        }
    };
    CaseResult {
        id: l.id.clone(),
        verdict,
        elapsed: started.elapsed(),
    }
}

/// One server under test with everything it needs.
struct Side {
    // Field order is drop order: the server dies before its upstreams and directory go.
    server: Server,
    started: Started,
    upstreams: Vec<FakeUpstream>,
    vars: Vec<(String, String)>,
    dir: TempDir,
    /// The side's own network namespace (`netns` cases), deleted last.
    netns: Option<Netns>,
}

impl Side {
    /// Placeholder values back to placeholders, for comparing output.
    fn normalize(&self, line: &str) -> String {
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

    fn value(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn substitute(text: &str, vars: &[(String, String)]) -> String {
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

fn start_side(name: &'static str, bin: &Path, case: &Case, corefile: &str) -> Result<Side> {
    let mut last_text = String::new();
    for _attempt in 0..4 {
        let dir = TempDir::new(name)?;
        let mut vars: Vec<(String, String)> =
            vec![("DIR".into(), dir.path().display().to_string())];
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
            upstreams,
            vars,
            dir,
            netns,
        });
    }
    bail!("{name}: ports kept being taken; last output:\n{last_text}")
}

/// Run one case and return its differences.
pub fn run_case(case: &Case, s: &Settings) -> Result<Vec<String>> {
    let sut_corefile = case
        .selftest_ferrodns_corefile
        .as_deref()
        .unwrap_or(&case.corefile);
    // Both are spawned from this thread, which outlives them (see PR_SET_PDEATHSIG in
    // process.rs).
    let mut a = start_side(REF, &s.coredns, case, &case.corefile)?;
    let mut b = start_side(SUT, &s.ferrodns, case, sut_corefile)?;
    let mut d = Vec::new();
    if s.verbose {
        for side in [&a, &b] {
            if let Started::Failed { text, .. } = &side.started {
                println!("  startup error: {}", side.normalize(&error_line(text)));
            }
        }
    }
    if let Some(ms) = case.exit_within_ms {
        exits(ms, &mut a, &mut b, &mut d);
        return Ok(d);
    }
    let both_ready = startup(case, &a, &b, &mut d);
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
                let mut qd = compare::outcomes(q, oa, ob);
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
                        .map(|l| match LONG_NUMBER.as_ref() {
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
        for (i, h) in case.http.iter().enumerate() {
            d.extend(http_request(i, h, &a, &b));
        }
        if let Some(m) = &case.metrics {
            d.extend(metrics(m, &a, &b));
        }
        if case.logs == Logs::Compare {
            d.extend(logs(&a, &b));
        }
    }
    Ok(d)
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

/// Compare how both started; true when both are serving.
fn startup(case: &Case, a: &Side, b: &Side, d: &mut Vec<String>) -> bool {
    match (&a.started, &b.started) {
        (Started::Ready { banner: ba }, Started::Ready { banner: bb }) => {
            if case.startup == Startup::Reject {
                d.push(
                    "startup: the case expects both to reject the Corefile; both accepted it"
                        .into(),
                );
            }
            let banner = |side: &Side, lines: &[String]| -> Vec<String> {
                lines
                    .iter()
                    .filter(|l| !is_go_noise(l))
                    .map(|l| side.normalize(l))
                    .collect()
            };
            // CoreDNS prints its servers in Go map order (random), so lines are compared as a
            // multiset: sorted (see DIFFERENCES.md).
            let (mut na, mut nb) = (banner(a, ba), banner(b, bb));
            na.sort();
            nb.sort();
            let diff = compare::lines(&na, &nb);
            if !diff.is_empty() {
                d.push(format!("startup banner differs (- {REF}, + {SUT}):"));
                d.extend(diff.into_iter().map(|l| format!("    {l}")));
            }
            true
        }
        (Started::Failed { text: ta, .. }, Started::Failed { text: tb, .. }) => {
            if case.startup == Startup::Accept {
                d.push("startup: both rejected a Corefile the case expects to be accepted".into());
                d.push(format!("    {REF}:  {}", a.normalize(&error_line(ta))));
                d.push(format!("    {SUT}: {}", b.normalize(&error_line(tb))));
            }
            let ea = a.normalize(&error_line(ta));
            let eb = b.normalize(&error_line(tb));
            let (la, lb) = (location(&ea), location(&eb));
            let same = match case.error_match {
                ErrorMatch::Exact => ea == eb,
                ErrorMatch::Location => la == lb && kind(&ea) == kind(&eb),
            };
            if !same {
                let what = match case.error_match {
                    ErrorMatch::Exact => "startup error text differs",
                    ErrorMatch::Location if la != lb => "startup error location differs",
                    ErrorMatch::Location => "startup error kind differs",
                };
                d.push(format!(
                    "{what}: {REF} at {}, {SUT} at {}",
                    la.as_deref().unwrap_or("(no file:line)"),
                    lb.as_deref().unwrap_or("(no file:line)")
                ));
                d.push(format!("    {REF}:  {ea}"));
                d.push(format!("    {SUT}: {eb}"));
            }
            false
        }
        (Started::Ready { .. }, Started::Failed { text, status }) => {
            d.push(format!(
                "startup: {REF} accepted the Corefile, {SUT} refused it (exit {}):",
                status.map_or("none".to_string(), |c| c.to_string())
            ));
            d.extend(
                text.lines()
                    .map(|l| format!("    {SUT}: {}", b.normalize(l))),
            );
            false
        }
        (Started::Failed { text, status }, Started::Ready { .. }) => {
            d.push(format!(
                "startup: {REF} refused the Corefile (exit {}), {SUT} accepted it:",
                status.map_or("none".to_string(), |c| c.to_string())
            ));
            d.extend(
                text.lines()
                    .map(|l| format!("    {REF}: {}", a.normalize(l))),
            );
            false
        }
    }
}

/// Output of the Go runtime's automaxprocs, printed by CoreDNS only (see DIFFERENCES.md).
fn is_go_noise(line: &str) -> bool {
    line.trim_start_matches("stderr: ")
        .starts_with("maxprocs: ")
}

/// The error message of a failed start: its last line that is not Go runtime noise.
pub fn error_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !is_go_noise(l))
        .unwrap_or("")
        .to_string()
}

/// The `file:line` of an error message, if it has one.
pub fn location(msg: &str) -> Option<String> {
    let re = Regex::new(r"(?:^|\s)([^\s:]+):([0-9]+) - ").ok()?;
    re.captures(msg).map(|c| format!("{}:{}", &c[1], &c[2]))
}

/// The kind of an error message: its plugin prefix and the parser's category, or, for
/// messages without a location, the text itself.
pub fn kind(msg: &str) -> String {
    let plugin = msg
        .strip_prefix("plugin/")
        .and_then(|r| r.split_once(':'))
        .map(|(p, _)| format!("plugin/{p}"))
        .unwrap_or_default();
    let category = if msg.contains(" - Error during parsing: ") {
        "Error during parsing"
    } else if msg.contains(" - Syntax error: ") {
        "Syntax error"
    } else if location(msg).is_some() {
        "error at location"
    } else {
        return msg.to_string();
    };
    format!("{plugin} {category}")
}

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
static LONG_NUMBER: std::sync::LazyLock<Option<Regex>> =
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
fn exits(ms: u64, a: &mut Side, b: &mut Side, d: &mut Vec<String>) {
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

fn logs(a: &Side, b: &Side) -> Vec<String> {
    // Lines may still be on their way after the last reply: wait until both have been quiet
    // for a while (the same moment for both, so the waits overlap).
    let from = Instant::now();
    let quiet = Duration::from_millis(100);
    let max = Duration::from_secs(2);
    let get = |side: &Side| -> Vec<String> {
        side.server
            .logs(from, quiet, max)
            .iter()
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

fn metrics(m: &crate::case::Metrics, a: &Side, b: &Side) -> Vec<String> {
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
fn http_request(i: usize, h: &crate::case::Http, a: &Side, b: &Side) -> Vec<String> {
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

/// The table, then the full diffs of failed cases; returns (passed, failed, skipped).
pub fn report(
    results: &[CaseResult],
    out: &mut impl Write,
) -> std::io::Result<(usize, usize, usize)> {
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let w = results.iter().map(|r| r.id.len()).max().unwrap_or(4).max(4);
    writeln!(out, "\n{:<w$} | {:<6} | diff", "case", "result")?;
    writeln!(
        out,
        "{}-+-{}-+-{}",
        "-".repeat(w),
        "-".repeat(6),
        "-".repeat(40)
    )?;
    for r in results {
        let (word, diff) = match &r.verdict {
            Verdict::Pass => {
                passed += 1;
                ("pass", String::new())
            }
            Verdict::Fail(d) => {
                failed += 1;
                let first = d
                    .iter()
                    .find(|l| !l.starts_with("query "))
                    .or(d.first())
                    .map(|l| l.trim().to_string())
                    .unwrap_or_default();
                let mut first: String = first.chars().take(100).collect();
                if d.len() > 1 {
                    first.push_str(&format!(" (+{} more lines)", d.len() - 1));
                }
                ("FAIL", first)
            }
            Verdict::Skip(why) => {
                skipped += 1;
                ("skip", why.clone())
            }
        };
        writeln!(out, "{:<w$} | {:<6} | {}", r.id, word, diff)?;
    }
    // The full diffs come last, next to the closing line, so that a log cut to its tail
    // still shows which case failed and how.
    for r in results {
        if let Verdict::Fail(diff) = &r.verdict {
            writeln!(out, "\n--- {} FAILED:", r.id)?;
            for l in diff {
                writeln!(out, "  {l}")?;
            }
        }
    }
    writeln!(out)?;
    Ok((passed, failed, skipped))
}

/// The closing line: `N passed, M failed` (`, K skipped` when some were).
pub fn closing_line(passed: usize, failed: usize, skipped: usize) -> String {
    if skipped > 0 {
        format!("{passed} passed, {failed} failed, {skipped} skipped")
    } else {
        format!("{passed} passed, {failed} failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_locations_and_kinds() {
        let m = "plugin/errors: Corefile:2 - Error during parsing: invalid log file: bar";
        assert_eq!(location(m).as_deref(), Some("Corefile:2"));
        assert_eq!(kind(m), "plugin/errors Error during parsing");
        let m = "{DIR}/snip.conf:3 - Error during parsing: Unknown directive 'x'";
        assert_eq!(location(m).as_deref(), Some("{DIR}/snip.conf:3"));
        let m = "cannot serve dns://.:{PORT} - it is already defined";
        assert_eq!(location(m), None);
        assert_eq!(kind(m), m);
        assert_eq!(
            error_line("maxprocs: Leaving GOMAXPROCS=2\nCorefile:1 - Syntax error: x\n\n"),
            "Corefile:1 - Syntax error: x"
        );
    }

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

    #[test]
    fn report_ends_with_counts() {
        let rs = vec![
            CaseResult {
                id: "a/x".into(),
                verdict: Verdict::Pass,
                elapsed: Duration::ZERO,
            },
            CaseResult {
                id: "a/y".into(),
                verdict: Verdict::Fail(vec!["rcode: coredns NOERROR, ferrodns SERVFAIL".into()]),
                elapsed: Duration::ZERO,
            },
        ];
        let mut out = Vec::new();
        assert_eq!(report(&rs, &mut out).unwrap(), (1, 1, 0));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(closing_line(1, 1, 0), "1 passed, 1 failed");
        assert_eq!(closing_line(1, 0, 2), "1 passed, 0 failed, 2 skipped");
        assert!(
            text.contains("a/y  | FAIL   | rcode: coredns NOERROR, ferrodns SERVFAIL"),
            "{text}"
        );
    }
}

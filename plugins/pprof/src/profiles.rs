//! What the pprof endpoints serve: the CPU profile, the heap profile (jemalloc), the thread,
//! block and mutex profiles, the command line, symbols and the index page.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use pprof::protos::{self, Message};

use crate::TARGET;
use crate::http::{Request, Response};

/// How often the CPU profiler samples (Go's rate).
pub const CPU_HZ: i32 = 100;

/// Why a profile could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The process does not run jemalloc with profiling compiled in.
    #[error("heap profiling is not available: the allocator is not jemalloc with profiling")]
    NoHeapProfiler,
    /// The CPU profiler is already taking a profile.
    #[error("cpu profiling already in use")]
    CpuBusy,
    /// The profiler failed.
    #[error("{0}")]
    Failed(String),
}

/// Which source a named profile comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Heap,
    Threads(&'static str),
    Contention(&'static str),
}

fn kind(name: &str) -> Option<Kind> {
    Some(match name {
        "heap" | "allocs" => Kind::Heap,
        "goroutine" => Kind::Threads("goroutine"),
        "threadcreate" => Kind::Threads("threadcreate"),
        "block" => Kind::Contention("contention"),
        "mutex" => Kind::Contention("mutex"),
        _ => return None,
    })
}

/// Switch jemalloc's heap sampling on or off (nothing when the allocator cannot profile).
pub async fn heap_sampling(on: bool) {
    let Some(ctl) = jemalloc_pprof::PROF_CTL.as_ref() else {
        return;
    };
    let mut ctl = ctl.lock().await;
    let result = match (on, ctl.activated()) {
        (true, false) => ctl.activate(),
        (false, true) => ctl.deactivate(),
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(target: TARGET, "Failed to switch heap profiling: {e}");
    }
}

/// `/debug/pprof/cmdline`: the arguments separated by NUL bytes.
pub fn cmdline() -> Response {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Response::text(200, args.join("\0"))
}

/// `/debug/pprof/trace`: refused, Go execution traces come from the Go runtime.
pub fn trace() -> Response {
    Response::error(
        500,
        "Could not enable tracing: execution traces are a Go runtime feature and this process is not a Go program",
    )
}

/// `/debug/pprof/symbol`: `num_symbols: 1`, then `0xADDR name` for each `+`-separated address
/// of the query (GET) or body (POST) that names a function.
pub fn symbol(req: &Request) -> Response {
    let mut out = String::from("num_symbols: 1\n");
    let words = if req.method == "POST" {
        String::from_utf8_lossy(&req.body).into_owned()
    } else {
        req.query.clone()
    };
    for word in words.split('+') {
        let Ok(pc) = ferrodns_go::strconv::parse_uint(word.trim(), 0, 64) else {
            continue;
        };
        if pc == 0 {
            continue;
        }
        let mut name = None;
        // `resolve` looks up the byte before the address it is given (it expects return
        // addresses); Go looks up the address itself.
        let at = usize::try_from(pc).unwrap_or(usize::MAX).saturating_add(1);
        backtrace::resolve(at as *mut std::ffi::c_void, |s| {
            if name.is_none() {
                name = s.name().map(|n| format!("{n:#}"));
            }
        });
        if let Some(name) = name {
            out.push_str(&format!("{pc:#x} {name}\n"));
        }
    }
    backtrace::clear_symbol_cache();
    Response::text(200, out)
}

/// `/debug/pprof/`: the list of endpoints, with the number of records where it is cheap to
/// know.
pub fn index() -> Response {
    let threads = threads().values().sum::<i64>();
    let entries: [(&str, i64, &str); 10] = [
        (
            "allocs",
            0,
            "Same as heap: jemalloc samples live allocations only",
        ),
        (
            "block",
            0,
            "Always empty: a Rust process records no blocking events",
        ),
        (
            "cmdline",
            0,
            "The process's arguments, separated by NUL bytes",
        ),
        (
            "goroutine",
            threads,
            "The process's OS threads, by name (a Rust process has no goroutines)",
        ),
        (
            "heap",
            0,
            "Live allocations sampled by jemalloc while a pprof listener runs",
        ),
        (
            "mutex",
            0,
            "Always empty: a Rust process records no lock contention",
        ),
        (
            "profile",
            0,
            "CPU profile; the seconds parameter sets its length (default 30)",
        ),
        (
            "symbol",
            0,
            "Function names of the program counters given in the query or body, joined by '+'",
        ),
        ("threadcreate", threads, "The process's OS threads, by name"),
        (
            "trace",
            0,
            "Not available: execution traces exist only in Go programs",
        ),
    ];
    let mut b = String::from(
        "<html>\n<head>\n<title>/debug/pprof/</title>\n</head>\n<body>\n/debug/pprof/\n<br>\n\
         <p>Add debug=1 to a profile's URL for a text version</p>\n<br>\nProfiles:\n<table>\n\
         <thead><td>Count</td><td>Profile</td></thead>\n",
    );
    for (name, count, _) in entries {
        b.push_str(&format!(
            "<tr><td>{count}</td><td><a href='{name}?debug=1'>{name}</a></td></tr>\n"
        ));
    }
    b.push_str("</table>\n<br>\n<p>\nWhat each one is:\n<ul>\n");
    for (name, _, desc) in entries {
        b.push_str(&format!("<li>{name}: {desc}</li>\n"));
    }
    b.push_str("</ul>\n</p>\n</body>\n</html>\n");
    Response {
        status: 200,
        headers: vec![
            ("X-Content-Type-Options", "nosniff".into()),
            ("Content-Type", "text/html; charset=utf-8".into()),
        ],
        body: b.into_bytes(),
    }
}

/// `/debug/pprof/profile`: sample the CPU for `length` (less if the client goes away), answer
/// the gzipped profile.
pub async fn cpu(length: Duration, gone: impl Future<Output = ()>) -> Response {
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let mut job = tokio::task::spawn_blocking(move || cpu_profile(length, &stop_rx));
    tokio::pin!(gone);
    let result = tokio::select! {
        r = &mut job => r,
        _ = &mut gone => {
            let _ = stop_tx.send(());
            job.await
        }
    };
    match result {
        Ok(Ok(bytes)) => Response::attachment("profile", bytes),
        Ok(Err(e)) => Response::error(500, &format!("Could not enable CPU profiling: {e}")),
        Err(e) => Response::error(500, &format!("Could not enable CPU profiling: {e}")),
    }
}

fn cpu_profile(
    length: Duration,
    stop: &std::sync::mpsc::Receiver<()>,
) -> Result<Vec<u8>, ProfileError> {
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(CPU_HZ)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| match e {
            pprof::Error::Running => ProfileError::CpuBusy,
            other => ProfileError::Failed(other.to_string()),
        })?;
    let _ = stop.recv_timeout(length);
    let report = guard
        .report()
        .build()
        .map_err(|e| ProfileError::Failed(e.to_string()))?;
    drop(guard);
    let profile = report
        .pprof()
        .map_err(|e| ProfileError::Failed(e.to_string()))?;
    backtrace::clear_symbol_cache();
    Ok(gzip(&profile.encode_to_vec()))
}

/// `/debug/pprof/<name>`: a named profile, as a download, as text (`debug=N`), or as the
/// difference over `seconds=N`. Returns the answer and how long it waited.
pub async fn named(
    name: &str,
    req: &Request,
    gone: impl Future<Output = ()>,
) -> (Response, Duration) {
    let out = named_profile(name, req, gone).await;
    // The heap profile's frames were named from the binary's debug information (kept cached
    // between the two profiles of a delta); let that memory go.
    backtrace::clear_symbol_cache();
    out
}

async fn named_profile(
    name: &str,
    req: &Request,
    gone: impl Future<Output = ()>,
) -> (Response, Duration) {
    let Some(kind) = kind(name) else {
        return (Response::error(404, "Unknown profile"), Duration::ZERO);
    };
    let debug = ferrodns_go::strconv::atoi(&req.form_value("debug")).unwrap_or(0);
    let secs = req.form_value("seconds");
    if !secs.is_empty() {
        return delta(name, kind, &secs, debug, gone).await;
    }
    if debug != 0 {
        return match text(kind).await {
            Ok(t) => (Response::text(200, t), Duration::ZERO),
            Err(e) => (Response::error(500, &e.to_string()), Duration::ZERO),
        };
    }
    match collect(kind).await {
        Ok(p) => (
            Response::attachment(name, gzip(&p.encode_to_vec())),
            Duration::ZERO,
        ),
        Err(e) => (Response::error(500, &e.to_string()), Duration::ZERO),
    }
}

async fn delta(
    name: &str,
    kind: Kind,
    secs: &str,
    debug: i64,
    gone: impl Future<Output = ()>,
) -> (Response, Duration) {
    let sec = match ferrodns_go::strconv::atoi(secs) {
        Ok(s) if s > 0 => s.unsigned_abs(),
        _ => {
            return (
                Response::error(
                    400,
                    "invalid value for \"seconds\" - must be a positive integer",
                ),
                Duration::ZERO,
            );
        }
    };
    if debug != 0 {
        return (
            Response::error(400, "seconds and debug params are incompatible"),
            Duration::ZERO,
        );
    }
    let wait = Duration::from_secs(sec);
    let Ok(p0) = collect(kind).await else {
        return (
            Response::error(500, "failed to collect profile"),
            Duration::ZERO,
        );
    };
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = gone => return (Response::error(500, "context canceled"), wait),
    }
    let Ok(p1) = collect(kind).await else {
        return (Response::error(500, "failed to collect profile"), wait);
    };
    let d = subtract(p1, &p0);
    (
        Response::attachment(&format!("{name}-delta"), gzip(&d.encode_to_vec())),
        wait,
    )
}

/// Take a named profile as a decoded `profile.proto`.
async fn collect(kind: Kind) -> Result<protos::Profile, ProfileError> {
    match kind {
        Kind::Heap => {
            let bytes = heap_dump(|ctl| ctl.dump_pprof().map_err(|e| e.to_string())).await?;
            decode(&bytes)
        }
        Kind::Threads(ty) => Ok(thread_profile(ty)),
        Kind::Contention(_) => Ok(contention_profile()),
    }
}

/// The text version of a named profile (`debug=N`).
async fn text(kind: Kind) -> Result<String, ProfileError> {
    match kind {
        Kind::Heap => heap_dump(|ctl| {
            let mut f = ctl.dump().map_err(|e| e.to_string())?;
            let mut s = String::new();
            f.read_to_string(&mut s).map_err(|e| e.to_string())?;
            Ok(s.into_bytes())
        })
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned()),
        Kind::Threads(ty) => {
            let t = threads();
            let mut s = format!("{ty} profile: total {}\n", t.values().sum::<i64>());
            for (name, n) in t {
                s.push_str(&format!("{n} @ thread {name}\n\n"));
            }
            Ok(s)
        }
        Kind::Contention("mutex") => {
            Ok("--- mutex:\ncycles/second=1000000000\nsampling period=0\n".to_string())
        }
        Kind::Contention(_) => Ok("--- contention:\ncycles/second=1000000000\n".to_string()),
    }
}

async fn heap_dump<F>(f: F) -> Result<Vec<u8>, ProfileError>
where
    F: FnOnce(&mut jemalloc_pprof::JemallocProfCtl) -> Result<Vec<u8>, String> + Send + 'static,
{
    let Some(ctl) = jemalloc_pprof::PROF_CTL.as_ref().map(Arc::clone) else {
        return Err(ProfileError::NoHeapProfiler);
    };
    tokio::task::spawn_blocking(move || {
        let mut ctl = ctl.blocking_lock();
        f(&mut ctl)
    })
    .await
    .map_err(|e| ProfileError::Failed(e.to_string()))?
    .map_err(ProfileError::Failed)
}

/// The process's threads by name (`/proc/self/task/*/comm`), with how many share each name.
pub fn threads() -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            let name = std::fs::read_to_string(entry.path().join("comm"))
                .map(|s| s.trim_end().to_string())
                .unwrap_or_else(|_| "?".to_string());
            *out.entry(name).or_insert(0) += 1;
        }
    }
    out
}

/// Interns strings into a profile's string table (index 0 is "").
struct Builder {
    p: protos::Profile,
    strings: HashMap<String, i64>,
}

impl Builder {
    fn new() -> Builder {
        let mut p = protos::Profile::default();
        p.string_table.push(String::new());
        p.time_nanos = now_nanos();
        Builder {
            p,
            strings: HashMap::new(),
        }
    }

    fn s(&mut self, s: &str) -> i64 {
        if s.is_empty() {
            return 0;
        }
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = i64::try_from(self.p.string_table.len()).unwrap_or(i64::MAX);
        self.p.string_table.push(s.to_string());
        self.strings.insert(s.to_string(), i);
        i
    }

    fn value_type(&mut self, ty: &str, unit: &str) -> protos::ValueType {
        protos::ValueType {
            ty: self.s(ty),
            unit: self.s(unit),
        }
    }

    /// A location whose only frame is a function called `name`; returns its id.
    fn frame(&mut self, name: &str) -> u64 {
        let id = self.p.function.len() as u64 + 1;
        let name = self.s(name);
        self.p.function.push(protos::Function {
            id,
            name,
            system_name: name,
            ..Default::default()
        });
        self.p.location.push(protos::Location {
            id,
            line: vec![protos::Line {
                function_id: id,
                ..Default::default()
            }],
            ..Default::default()
        });
        id
    }
}

/// One sample per thread name, counted, each with a single frame `thread NAME`.
fn thread_profile(ty: &str) -> protos::Profile {
    let mut b = Builder::new();
    let vt = b.value_type(ty, "count");
    b.p.sample_type = vec![vt.clone()];
    b.p.period_type = Some(vt);
    b.p.period = 1;
    for (name, n) in threads() {
        let loc = b.frame(&format!("thread {name}"));
        b.p.sample.push(protos::Sample {
            location_id: vec![loc],
            value: vec![n],
            ..Default::default()
        });
    }
    b.p
}

/// A block or mutex profile: the sample types Go uses, and no samples.
fn contention_profile() -> protos::Profile {
    let mut b = Builder::new();
    let count = b.value_type("contentions", "count");
    let delay = b.value_type("delay", "nanoseconds");
    b.p.sample_type = vec![count.clone(), delay];
    b.p.period_type = Some(count);
    b.p.period = 1;
    b.p
}

/// `p1 - p0`, samples matched by their stacks' function names (or addresses): what Go's
/// `seconds=N` answers for a named profile. Stacks only in `p0` come out negative.
fn subtract(mut p1: protos::Profile, p0: &protos::Profile) -> protos::Profile {
    let mut before: HashMap<Vec<String>, (Vec<i64>, Vec<String>)> = HashMap::new();
    for s in &p0.sample {
        let key = stack_key(p0, s);
        let names = key.clone();
        let e = before
            .entry(key)
            .or_insert_with(|| (vec![0; s.value.len()], names));
        for (a, v) in e.0.iter_mut().zip(&s.value) {
            *a += v;
        }
    }
    let keys: Vec<Vec<String>> = p1.sample.iter().map(|s| stack_key(&p1, s)).collect();
    for (s, key) in p1.sample.iter_mut().zip(keys) {
        if let Some((v0, _)) = before.remove(&key) {
            for (a, v) in s.value.iter_mut().zip(v0) {
                *a -= v;
            }
        }
    }
    if !before.is_empty() {
        let mut b = Builder {
            strings: p1
                .string_table
                .iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), i as i64))
                .collect(),
            p: std::mem::take(&mut p1),
        };
        let mut next_fn = b.p.function.iter().map(|f| f.id).max().unwrap_or(0);
        let mut next_loc = b.p.location.iter().map(|l| l.id).max().unwrap_or(0);
        for (_, (values, names)) in before {
            let mut ids = Vec::new();
            for name in names {
                next_fn += 1;
                next_loc += 1;
                let n = b.s(&name);
                b.p.function.push(protos::Function {
                    id: next_fn,
                    name: n,
                    system_name: n,
                    ..Default::default()
                });
                b.p.location.push(protos::Location {
                    id: next_loc,
                    line: vec![protos::Line {
                        function_id: next_fn,
                        ..Default::default()
                    }],
                    ..Default::default()
                });
                ids.push(next_loc);
            }
            b.p.sample.push(protos::Sample {
                location_id: ids,
                value: values.into_iter().map(|v| -v).collect(),
                ..Default::default()
            });
        }
        p1 = b.p;
    }
    p1.sample.retain(|s| s.value.iter().any(|v| *v != 0));
    p1.duration_nanos = p1.time_nanos.saturating_sub(p0.time_nanos);
    p1
}

/// A sample's stack as function names (innermost first), or `0x<address>` where a location
/// has no function.
fn stack_key(p: &protos::Profile, s: &protos::Sample) -> Vec<String> {
    let locs: HashMap<u64, &protos::Location> = p.location.iter().map(|l| (l.id, l)).collect();
    let fns: HashMap<u64, &protos::Function> = p.function.iter().map(|f| (f.id, f)).collect();
    let string = |i: i64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| p.string_table.get(i))
            .cloned()
            .unwrap_or_default()
    };
    let mut key = Vec::new();
    for id in &s.location_id {
        let Some(loc) = locs.get(id) else { continue };
        if loc.line.is_empty() {
            key.push(format!("{:#x}", loc.address));
        }
        for line in &loc.line {
            let name = fns.get(&line.function_id).map_or(0, |f| f.name);
            key.push(string(name));
        }
    }
    key
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Gzip as Go's pprof writer does.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// Decode a profile, gzipped or not.
fn decode(bytes: &[u8]) -> Result<protos::Profile, ProfileError> {
    let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| ProfileError::Failed(e.to_string()))?;
        out
    } else {
        bytes.to_vec()
    };
    protos::Profile::decode(raw.as_slice()).map_err(|e| ProfileError::Failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_subtracts_matching_stacks_and_keeps_the_rest() {
        let mut a = Builder::new();
        let vt = a.value_type("x", "count");
        a.p.sample_type = vec![vt.clone()];
        let f = a.frame("f");
        let g = a.frame("g");
        a.p.sample.push(protos::Sample {
            location_id: vec![f],
            value: vec![5],
            ..Default::default()
        });
        a.p.sample.push(protos::Sample {
            location_id: vec![g],
            value: vec![2],
            ..Default::default()
        });
        let p0 = a.p.clone();
        let mut b = Builder::new();
        b.p.sample_type = vec![vt];
        let f1 = b.frame("f");
        b.p.sample.push(protos::Sample {
            location_id: vec![f1],
            value: vec![7],
            ..Default::default()
        });
        let d = subtract(b.p, &p0);
        let mut got: Vec<(Vec<String>, Vec<i64>)> = d
            .sample
            .iter()
            .map(|s| (stack_key(&d, s), s.value.clone()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (vec!["f".to_string()], vec![2]),
                (vec!["g".to_string()], vec![-2])
            ]
        );
    }

    #[test]
    fn thread_profile_counts_this_process_threads() {
        let p = thread_profile("goroutine");
        let total: i64 = p.sample.iter().map(|s| s.value[0]).sum();
        assert!(total >= 1);
        assert_eq!(p.string_table[p.sample_type[0].ty as usize], "goroutine");
    }
}

#[cfg(test)]
mod symbol_tests {
    use super::*;

    #[test]
    fn symbol_names_a_function() {
        let pc = cpu_profile as *const () as usize;
        let req = Request {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            body: format!("{pc:#x}+0").into_bytes(),
            form_body: false,
        };
        let r = symbol(&req);
        let text = String::from_utf8_lossy(&r.body).into_owned();
        assert!(text.contains("cpu_profile"), "{text}");
    }
}

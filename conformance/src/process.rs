//! The servers under test as child processes: started with a Corefile in a directory of their
//! own, ready when the startup banner's version line appears, their output collected line by
//! line, and killed when the guard goes away (on every exit path, panics included; and, through
//! `PR_SET_PDEATHSIG`, when the harness itself dies).

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

#[derive(Default)]
struct Output {
    lines: Vec<(Stream, String)>,
    eof: [bool; 2],
    /// When the last line arrived.
    last: Option<Instant>,
}

#[derive(Default)]
struct Shared {
    out: Mutex<Output>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Output> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How a start ended.
#[derive(Debug, Clone)]
pub enum Started {
    /// The version line was printed; `banner` holds the lines before it.
    Ready {
        /// Lines before the version line; stderr lines are prefixed with `stderr: `.
        banner: Vec<String>,
    },
    /// The process exited (or did not become ready in time) without the version line.
    Failed {
        /// Everything it printed (stderr first, then stdout).
        text: String,
        /// Exit status, when it exited.
        status: Option<i32>,
    },
}

/// A running (or exited) server, killed on drop.
pub struct Server {
    child: Child,
    shared: Arc<Shared>,
    /// Index of the first line after the banner (version and platform lines).
    logs_from: usize,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reader<R: Read + Send + 'static>(r: R, stream: Stream, shared: Arc<Shared>) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .to_string();
                    let mut o = shared.lock();
                    o.lines.push((stream, line));
                    o.last = Some(Instant::now());
                    drop(o);
                    shared.cv.notify_all();
                }
            }
        }
        let mut o = shared.lock();
        o.eof[stream as usize] = true;
        drop(o);
        shared.cv.notify_all();
    });
}

fn is_version_line(line: &str) -> bool {
    let Some((name, ver)) = line.split_once('-') else {
        return false;
    };
    (name == "CoreDNS" || name == "ferrodns")
        && ver.starts_with(|c: char| c.is_ascii_digit())
        && !ver.contains(' ')
}

fn is_platform_line(line: &str) -> bool {
    // `linux/amd64, go1.26.8, <commit>` or `linux/amd64, rust`.
    line.split_once(", ")
        .is_some_and(|(p, _)| p.contains('/') && !p.contains(' '))
}

impl Server {
    /// Start `bin` in `dir` with `-conf Corefile -dns.port <port>` and wait (at most `timeout`)
    /// for its version line or its exit.
    pub fn start(
        bin: &Path,
        dir: &Path,
        port: u16,
        env: &BTreeMap<String, String>,
        timeout: Duration,
        netns: Option<&str>,
    ) -> Result<(Server, Started)> {
        // `setpriv --pdeathsig` (util-linux, on every Debian) asks the kernel to kill the server
        // when the thread that spawned it exits, so a harness that dies leaves no server behind;
        // servers are spawned from the thread that runs (and outlives) the case. It then execs
        // in place (same pid), and so does `ip netns exec` after joining the namespace.
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "--"]);
        if let Some(ns) = netns {
            cmd.args(["ip", "netns", "exec", ns]);
        }
        cmd.arg(bin);
        cmd.args(["-conf", "Corefile", "-dns.port", &port.to_string()])
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let shared = Arc::new(Shared::default());
        if let Some(o) = child.stdout.take() {
            reader(o, Stream::Stdout, shared.clone());
        }
        if let Some(e) = child.stderr.take() {
            reader(e, Stream::Stderr, shared.clone());
        }
        let mut server = Server {
            child,
            shared,
            logs_from: 0,
        };
        let started = server.wait_ready(timeout);
        Ok((server, started))
    }

    fn wait_ready(&mut self, timeout: Duration) -> Started {
        let deadline = Instant::now() + timeout;
        let shared = self.shared.clone();
        let mut o = shared.lock();
        loop {
            let stdout: Vec<&String> = o
                .lines
                .iter()
                .filter(|(s, _)| *s == Stream::Stdout)
                .map(|(_, l)| l)
                .collect();
            if let Some(v) = stdout.iter().position(|l| is_version_line(l)) {
                let idx_of = |o: &Output, nth: usize| -> Option<usize> {
                    o.lines
                        .iter()
                        .enumerate()
                        .filter(|(_, (s, _))| *s == Stream::Stdout)
                        .nth(nth)
                        .map(|(i, _)| i)
                };
                let version_at = idx_of(&o, v).unwrap_or(0);
                // Everything printed before the version line, stderr included.
                let banner: Vec<String> = o.lines[..version_at]
                    .iter()
                    .map(|(s, l)| match s {
                        Stream::Stdout => l.clone(),
                        Stream::Stderr => format!("stderr: {l}"),
                    })
                    .collect();
                // Wait briefly for the platform line that follows the version line.
                let plat_deadline = Instant::now() + Duration::from_millis(500);
                loop {
                    if let Some(i) = idx_of(&o, v + 1) {
                        self.logs_from = if is_platform_line(&o.lines[i].1) {
                            i + 1
                        } else {
                            version_at + 1
                        };
                        break;
                    }
                    let now = Instant::now();
                    if now >= plat_deadline || o.eof[0] {
                        self.logs_from = o.lines.len();
                        break;
                    }
                    o = shared
                        .cv
                        .wait_timeout(o, plat_deadline - now)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
                return Started::Ready { banner };
            }
            let now = Instant::now();
            if (o.eof[0] && o.eof[1]) || now >= deadline {
                break;
            }
            o = shared
                .cv
                .wait_timeout(o, (deadline - now).min(Duration::from_millis(100)))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        drop(o);
        // Exited (or hung): collect the exit status, bounded.
        let mut status = None;
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    status = s.code();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        let timed_out = status.is_none();
        if timed_out {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Let the readers drain what was written before the exit.
        let o = self.wait_eof(Duration::from_millis(500));
        let mut text = String::new();
        for stream in [Stream::Stderr, Stream::Stdout] {
            for (s, l) in &o {
                if *s == stream {
                    text.push_str(l);
                    text.push('\n');
                }
            }
        }
        if timed_out {
            text.push_str(&format!(
                "(harness: no version line within {:?}; killed)\n",
                timeout
            ));
        }
        Started::Failed { text, status }
    }

    fn wait_eof(&self, max: Duration) -> Vec<(Stream, String)> {
        let deadline = Instant::now() + max;
        let mut o = self.shared.lock();
        while !(o.eof[0] && o.eof[1]) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            o = self
                .shared
                .cv
                .wait_timeout(o, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        o.lines.clone()
    }

    /// Wait until no line has arrived for `quiet` since `from` (at most until `from + max`),
    /// then return every line printed after the startup banner; stderr lines are prefixed with
    /// `stderr: `.
    pub fn logs(&self, from: Instant, quiet: Duration, max: Duration) -> Vec<String> {
        let deadline = from + max;
        let mut o = self.shared.lock();
        loop {
            let now = Instant::now();
            let last = o.last.map_or(from, |t| t.max(from));
            let since = now.saturating_duration_since(last);
            if since >= quiet || now >= deadline {
                break;
            }
            let wait = quiet.saturating_sub(since).min(deadline - now);
            o = self
                .shared
                .cv
                .wait_timeout(o, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        o.lines
            .iter()
            .skip(self.logs_from)
            .map(|(s, l)| match s {
                Stream::Stdout => l.clone(),
                Stream::Stderr => format!("stderr: {l}"),
            })
            .collect()
    }

    /// How the process ended, if it has: `status N` or `signal N`.
    pub fn exited(&mut self) -> Option<String> {
        use std::os::unix::process::ExitStatusExt;
        match self.child.try_wait() {
            Ok(Some(s)) => Some(match (s.code(), s.signal()) {
                (Some(c), _) => format!("status {c}"),
                (None, Some(sig)) => format!("signal {sig}"),
                _ => "unknown status".to_string(),
            }),
            _ => None,
        }
    }

    /// Wait until `deadline` for the process to end; how it ended (as [`Server::exited`]), its
    /// output then read to the end.
    pub fn wait_exit(&mut self, deadline: Instant) -> Option<String> {
        loop {
            if let Some(how) = self.exited() {
                self.wait_eof(Duration::from_millis(500));
                return Some(how);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every line printed so far except the version and platform lines (which differ between
    /// the two servers by design); stderr lines are prefixed with `stderr: `.
    pub fn output(&self) -> Vec<String> {
        let o = self.shared.lock();
        let mut version_seen = false;
        let mut out = Vec::new();
        for (s, l) in &o.lines {
            if *s == Stream::Stdout && is_version_line(l) {
                version_seen = true;
                continue;
            }
            if *s == Stream::Stdout && version_seen && is_platform_line(l) {
                continue;
            }
            out.push(match s {
                Stream::Stdout => l.clone(),
                Stream::Stderr => format!("stderr: {l}"),
            });
        }
        out
    }
}

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port that is free for UDP and TCP on every address right now and has not been handed out
/// before in this run.
pub fn free_port() -> Result<u16> {
    for _ in 0..200 {
        let tcp = TcpListener::bind("[::]:0")
            .or_else(|_| TcpListener::bind("0.0.0.0:0"))
            .context("binding a probe socket")?;
        let port = tcp.local_addr()?.port();
        let udp = UdpSocket::bind(("::", port)).or_else(|_| UdpSocket::bind(("0.0.0.0", port)));
        if udp.is_err() {
            continue;
        }
        let mut set = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if set.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port found")
}

/// A temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory under the system's temp dir.
    pub fn new(tag: &str) -> Result<TempDir> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!(
            "ferrodns-conformance-{}-{n}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(TempDir(p))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// Remove the directories of earlier runs that were killed before they could clean up (their
/// process no longer exists).
pub fn sweep_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("ferrodns-conformance-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_lines() {
        assert!(is_version_line("CoreDNS-1.14.7"));
        assert!(is_version_line("ferrodns-0.1.0"));
        assert!(!is_version_line("CoreDNS-1.14.7 extra"));
        assert!(!is_version_line(".:53"));
        assert!(is_platform_line("linux/amd64, go1.26.8, "));
        assert!(is_platform_line("linux/amd64, rust"));
        assert!(!is_platform_line("[INFO] a/b, c"));
    }

    #[test]
    fn ports_are_not_handed_out_twice() {
        let a = free_port().unwrap();
        let b = free_port().unwrap();
        assert_ne!(a, b);
    }
}

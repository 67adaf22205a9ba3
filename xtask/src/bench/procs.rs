//! Processes under measurement (`Proc`, shared with the test API server): their CPU time and
//! memory read from `/proc`; and the DNS probe that says a server answers.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on every Linux architecture
/// this runs on).
const TICKS: f64 = 100.0;

/// A running process, killed when dropped: the type the test API server uses too.
pub use ferrodns_kube_testenv::Proc;

/// What the benchmarks measure of a process, and where it may run.
pub trait Measure {
    /// CPU time (user + system, all threads) so far, in seconds.
    fn cpu_seconds(&self) -> Result<f64>;
    /// (VmRSS, VmHWM) in KiB: resident memory now and at its peak.
    fn rss_kib(&self) -> Result<(u64, u64)>;
    /// Bind every thread of the process to the CPUs `cpus` (a taskset list, "0" or "0,1").
    fn pin(&self, cpus: &str) -> Result<()>;
}

impl Measure for Proc {
    fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.pid())
    }

    fn rss_kib(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |key: &str| -> Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(key))
                .with_context(|| format!("no {key} in /proc/<pid>/status"))?;
            Ok(line
                .split_whitespace()
                .nth(1)
                .unwrap_or("0")
                .parse()
                .unwrap_or(0))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    fn pin(&self, cpus: &str) -> Result<()> {
        stdout_of(
            Command::new("taskset").args(["-a", "-p", "-c", cpus, &self.pid().to_string()]),
            &format!("taskset {cpus} {}", self.name),
        )?;
        Ok(())
    }
}

/// Run `cmd` (`what` names it in errors) to its end; its standard output, or an error with
/// its exit status and everything it printed.
pub fn stdout_of(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(stdout)
}

pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("odd /proc/<pid>/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = f.get(11).context("no utime")?.parse()?;
    let stime: f64 = f.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) / TICKS)
}

/// A UDP port free on 127.0.0.1 just now (for a server that cannot be told to pick one).
pub fn free_port() -> Result<u16> {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0")?;
        let port = u.local_addr()?.port();
        // The TCP port must be free too (the servers listen on both).
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}

/// Wait until `server` answers a query over UDP (any response counts), or fail after
/// `limit`. A query goes out every 50 ms; each answer is matched by ID.
pub fn wait_dns(server: SocketAddr, proc: &mut Proc, limit: Duration) -> Result<()> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut id: u16 = 0x4242;
    let mut buf = [0u8; 1500];
    proc.wait_until(&format!("answer DNS on {server}"), limit, || {
        id = id.wrapping_add(1);
        let _ = sock.send_to(&query(id, "ready.bench.test.", 1), server);
        let until = Instant::now() + Duration::from_millis(50);
        while Instant::now() < until {
            if let Ok((n, from)) = sock.recv_from(&mut buf)
                && from == server
                && n >= 12
                && buf[..2] == id.to_be_bytes()
            {
                return Ok(true);
            }
        }
        Ok(false)
    })
}

/// A query in wire form: `id`, RD set, one question for `name` (absolute) of type `qtype`.
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

/// The number after `"key":` at its first occurrence in `json` (the reports are flat enough
/// that the first occurrence is the top-level one).
pub fn json_num(json: &str, key: &str) -> Result<f64> {
    let pat = format!("\"{key}\":");
    let at = json
        .find(&pat)
        .with_context(|| format!("no {key:?} in {json}"))?;
    let rest = &json[at + pat.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .with_context(|| format!("{key:?} is not a number in {json}"))
}

//! Child processes with their output in a log file, killed (SIGKILL) and reaped when dropped;
//! the API server's are also killed by the kernel when the thread that started them exits
//! (`setpriv --pdeathsig`), so that a test that dies leaves no server behind. `cargo xtask
//! bench` and `reliability` run their servers with the same type.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running process; killed and reaped when dropped.
pub struct Proc {
    /// What it is called in errors.
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Start `cmd` with stdout and stderr in `log`.
    pub fn spawn(name: &str, cmd: Command, log: &Path) -> Result<Proc> {
        Proc::start(name, cmd, log, false)
    }

    /// As [`Proc::spawn`], and killed when the calling thread exits: started through `setpriv
    /// --pdeathsig KILL`, which execs it in place (same pid).
    pub fn spawn_tied(name: &str, cmd: Command, log: &Path) -> Result<Proc> {
        Proc::start(name, cmd, log, true)
    }

    fn start(name: &str, mut cmd: Command, log: &Path, tied: bool) -> Result<Proc> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        if tied {
            let mut wrapped = Command::new("setpriv");
            wrapped
                .args(["--pdeathsig", "KILL", "--"])
                .arg(cmd.get_program())
                .args(cmd.get_args());
            cmd = wrapped;
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// Its process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fail with the end of its log when the process has exited.
    pub fn alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); the end of its log:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The last 15 lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Wait until `ready` says yes (each call may itself wait a little), failing when the
    /// process exits or after `limit`; `what` completes "did not ..." in the error.
    pub fn wait_until(
        &mut self,
        what: &str,
        limit: Duration,
        mut ready: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        let start = Instant::now();
        loop {
            if ready()? {
                return Ok(());
            }
            self.alive()?;
            if start.elapsed() > limit {
                bail!(
                    "{} did not {what} within {limit:?}:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
        }
    }

    /// Wait until its log contains `needle` (a readiness line).
    pub fn wait_log(&mut self, needle: &str, limit: Duration) -> Result<()> {
        let log = self.log.clone();
        self.wait_until(&format!("print {needle:?}"), limit, || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(needle) {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(20));
            Ok(false)
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The API server's processes: output in a log file, killed (SIGKILL) and reaped when dropped,
//! and killed by the kernel too when the thread that started them exits (`setpriv
//! --pdeathsig`), so that a test that dies leaves no server behind.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub(crate) struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Start `cmd` (through `setpriv --pdeathsig KILL`, which execs it in place) with stdout
    /// and stderr in `log`.
    pub(crate) fn spawn(name: &str, cmd: Command, log: &Path) -> Result<Proc> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut wrapped = Command::new("setpriv");
        wrapped
            .args(["--pdeathsig", "KILL", "--"])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        let child = wrapped
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} (through setpriv): {cmd:?}"))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// Fail with the end of its log when the process has exited.
    pub(crate) fn alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); the end of its log:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Wait until `ready` says yes (each call may itself wait a little), failing when the
    /// process exits or after `limit`; `what` completes "did not ..." in the error.
    pub(crate) fn wait_until(
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
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A load on threads of its own, for tests and tools that go on doing other things (restarting
//! the server under it) and that may need the load's sockets in another network namespace.

use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::{LoadError, LoadSpec, Report};

/// A running load; [`Background::stop`] ends it and returns its report.
pub struct Background {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<Report, LoadError>>>,
}

/// Start `spec` on a runtime of its own with `threads` workers (1: a current-thread runtime).
/// `enter` runs first on the thread that builds the runtime, so whatever it changes for that
/// thread holds for the load: joining a network namespace (`setns`) puts every socket of the
/// load there, and the runtime's worker threads inherit it.
pub fn start(
    spec: LoadSpec,
    threads: usize,
    enter: impl FnOnce() -> std::io::Result<()> + Send + 'static,
) -> Background {
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        enter().map_err(LoadError::Runtime)?;
        let rt = if threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()
        }
        .map_err(LoadError::Runtime)?;
        rt.block_on(crate::run(spec, async move {
            let _ = stopped.await;
        }))
    });
    Background {
        stop: Some(stop),
        thread: Some(thread),
    }
}

impl Background {
    /// Stop sending, wait for the answers still due (up to the spec's timeout), and return the
    /// report.
    pub fn stop(mut self) -> Result<Report, LoadError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            _ => Err(LoadError::Runtime(std::io::Error::other(
                "the load's thread panicked",
            ))),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

//! Lifecycle hooks, in CoreDNS's order: startup before listeners open; started once they serve;
//! on stop, shutdown then
//! final shutdown; on reload, restart before the new instance is built and restart-failed if it
//! could not be.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::SetupError;

/// Hooks a plugin registers during setup with [`crate::Setup::add_lifecycle`]. Every method has
/// an empty default.
#[async_trait]
pub trait Lifecycle: Send + Sync {
    /// Before the instance's listeners open. An error aborts startup (or the reload).
    async fn on_startup(&self) -> Result<(), SetupError> {
        Ok(())
    }
    /// Once the instance's listeners serve (CoreDNS's instance-startup event): at process start
    /// between the zone lines of the banner and the version lines, and at the end of every
    /// successful reload.
    async fn on_started(&self) {}
    /// When the instance stops serving (process stop, or replaced by a reload).
    async fn on_shutdown(&self) {}
    /// At process stop, after every shutdown hook (where `health` sleeps its lameduck).
    async fn on_final_shutdown(&self) {}
    /// Before a reload builds the next instance.
    async fn on_restart(&self) {}
    /// When a reload failed and this instance keeps serving.
    async fn on_restart_failed(&self) {}
}

/// A lifecycle whose only hook is `on_startup`, running `check`: for a plugin that must find
/// another plugin of its block (a [`crate::BlockHandle`]) once every setup of the block ran,
/// and fail the start as CoreDNS does when it cannot.
pub fn on_startup<F>(check: F) -> Arc<dyn Lifecycle>
where
    F: Fn() -> Result<(), SetupError> + Send + Sync + 'static,
{
    Arc::new(StartupCheck(check))
}

struct StartupCheck<F>(F);

#[async_trait]
impl<F> Lifecycle for StartupCheck<F>
where
    F: Fn() -> Result<(), SetupError> + Send + Sync + 'static,
{
    async fn on_startup(&self) -> Result<(), SetupError> {
        (self.0)()
    }
}

/// Run `work` on a blocking thread every `period` (the first run one period from now) until
/// `stop` changes: the reload tickers of plugins that re-read files (hosts, file, loadbalance).
/// A run that takes longer than the period delays the next one instead of piling up.
pub fn every<F>(period: Duration, mut stop: watch::Receiver<bool>, work: F)
where
    F: Fn() + Send + Sync + 'static,
{
    let work = Arc::new(work);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {
                    let w = work.clone();
                    let _ = tokio::task::spawn_blocking(move || w()).await;
                }
            }
        }
    });
}

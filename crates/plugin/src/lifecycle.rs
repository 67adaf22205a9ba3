//! Lifecycle hooks, in CoreDNS's order: startup before listeners open; on stop, shutdown then
//! final shutdown; on reload, restart before the new instance is built and restart-failed if it
//! could not be.

use async_trait::async_trait;

use crate::SetupError;

/// Hooks a plugin registers during setup with [`crate::Setup::add_lifecycle`]. Every method has
/// an empty default.
#[async_trait]
pub trait Lifecycle: Send + Sync {
    /// Before the instance's listeners open. An error aborts startup (or the reload).
    async fn on_startup(&self) -> Result<(), SetupError> {
        Ok(())
    }
    /// When the instance stops serving (process stop, or replaced by a reload).
    async fn on_shutdown(&self) {}
    /// At process stop, after every shutdown hook (where `health` sleeps its lameduck).
    async fn on_final_shutdown(&self) {}
    /// Before a reload builds the next instance.
    async fn on_restart(&self) {}
    /// When a reload failed and this instance keeps serving.
    async fn on_restart_failed(&self) {}
}

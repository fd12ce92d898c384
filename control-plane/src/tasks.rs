//! Handles on background tasks.

use tokio::task::JoinHandle;

/// A task that stops when this is dropped.
#[derive(Debug)]
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

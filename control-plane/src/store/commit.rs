//! Group commit: writers that commit while a flush is running share the next
//! flush, so durability costs one disk sync per group, not per writer.
//!
//! Each committed write takes a ticket (a counter bumped under the writer
//! lock). The flusher reads the newest ticket, syncs, and publishes that
//! ticket as done; every writer whose ticket is at or below it is durable.

use tokio::sync::{Notify, watch};

use super::StoreError;

/// The state the flusher publishes.
#[derive(Clone, Debug, Default)]
pub(super) struct Flushed {
    /// Every write with a ticket at or below this one is durable.
    pub ticket: u64,
    /// Set once a flush failed; the store then takes no more writes.
    pub failure: Option<String>,
}

/// Hands tickets from writers to the flusher and results back.
pub(super) struct GroupCommit {
    requested: Notify,
    done: watch::Sender<Flushed>,
}

impl GroupCommit {
    pub fn new() -> Self {
        Self {
            requested: Notify::new(),
            done: watch::Sender::new(Flushed::default()),
        }
    }

    /// Waits until the write that took `ticket` is durable.
    pub async fn wait(&self, ticket: u64) -> Result<(), StoreError> {
        let mut done = self.done.subscribe();
        self.requested.notify_one();

        let flushed = done
            .wait_for(|f| f.ticket >= ticket || f.failure.is_some())
            .await
            .map_err(|_| StoreError::Failed("the flusher stopped".into()))?;
        match &flushed.failure {
            Some(failure) => Err(StoreError::Failed(failure.clone())),
            None => Ok(()),
        }
    }

    /// Waits until some writer asks for a flush.
    pub async fn requested(&self) {
        self.requested.notified().await;
    }

    /// The failure that stopped writes, if any.
    pub fn failure(&self) -> Option<String> {
        self.done.borrow().failure.clone()
    }

    pub fn complete(&self, ticket: u64) {
        self.done.send_modify(|f| f.ticket = f.ticket.max(ticket));
    }

    pub fn fail(&self, failure: String) {
        self.done.send_modify(|f| f.failure = Some(failure));
    }
}

//! Tracking established connections, so that shutdown can wait for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Counts the connections still running.
#[derive(Debug, Default)]
pub struct Drain {
    active: AtomicUsize,
    idle: Notify,
}

/// Held by one connection's task; dropping it ends the connection's count.
#[derive(Debug)]
pub struct Tracked(Arc<Drain>);

impl Drain {
    /// Counts one more connection until the guard drops.
    pub fn track(self: &Arc<Self>) -> Tracked {
        self.active.fetch_add(1, Ordering::SeqCst);
        Tracked(self.clone())
    }

    /// How many connections are running.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Resolves once no connection is running.
    pub async fn idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();

            if self.active() == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_for_every_tracked_connection() {
        let drain = Arc::new(Drain::default());
        let first = drain.track();
        let second = drain.track();

        let waiter = tokio::spawn({
            let drain = drain.clone();
            async move { drain.idle().await }
        });
        drop(first);
        tokio::task::yield_now().await;

        assert!(!waiter.is_finished());
        drop(second);
        waiter.await.unwrap();
        assert_eq!(drain.active(), 0);
    }
}

//! Following the store: every change batch after a revision, in order, with
//! no gaps. Live batches come from the store's broadcast; a follower that
//! falls behind, or sees a gap, reads the change log until it is current.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use super::{ChangeBatch, Revision, Store, StoreError};

const PAGE: usize = 512;
const BUFFER: usize = 256;

/// What a follower receives.
pub type Followed = Result<Arc<ChangeBatch>, StoreError>;

/// Starts following `store` after `after` and returns the receiving end. The
/// follower stops when the receiver is dropped.
pub fn changes(store: Arc<dyn Store>, after: Revision) -> mpsc::Receiver<Followed> {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        if let Err(error) = follow(store, after, &tx).await {
            let _ = tx.send(Err(error)).await;
        }
    });
    rx
}

async fn follow(
    store: Arc<dyn Store>,
    after: Revision,
    tx: &mpsc::Sender<Followed>,
) -> Result<(), StoreError> {
    let mut live = store.subscribe();
    let Some(mut last) = catch_up(&*store, after, tx).await? else {
        return Ok(());
    };

    loop {
        let received = tokio::select! {
            _ = tx.closed() => return Ok(()),
            received = live.recv() => received,
        };

        let next = match received {
            Ok(batch) if batch.revision <= last => continue,
            Ok(batch) if batch.revision == last + 1 => send(tx, batch).await,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                catch_up(&*store, last, tx).await?
            }
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        };
        match next {
            Some(revision) => last = last.max(revision),
            None => return Ok(()),
        }
    }
}

async fn send(tx: &mpsc::Sender<Followed>, batch: Arc<ChangeBatch>) -> Option<Revision> {
    let revision = batch.revision;
    tx.send(Ok(batch)).await.ok()?;
    Some(revision)
}

/// Sends every logged batch after `after`; returns the last revision sent, or
/// `None` when the receiver is gone.
async fn catch_up(
    store: &dyn Store,
    mut after: Revision,
    tx: &mpsc::Sender<Followed>,
) -> Result<Option<Revision>, StoreError> {
    loop {
        let batches = store.changes_after(after, PAGE).await?;
        let full = batches.len() == PAGE;

        for batch in batches {
            match send(tx, batch).await {
                Some(revision) => after = revision,
                None => return Ok(None),
            }
        }
        if !full {
            return Ok(Some(after));
        }
    }
}

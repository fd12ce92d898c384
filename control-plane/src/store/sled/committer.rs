//! The committer: one thread that takes every write queued since its last
//! round, commits them as one [`Group`], syncs the disk once, records how
//! far the history now reaches, publishes the change batches to watchers,
//! and only then answers the writers.
//!
//! A round costs one sled transaction and one flush whatever its size, so
//! writers that arrive while a round is under way share the next one. The
//! thread holds the store only during a round: when the last handle drops,
//! the queue closes, the database closes at once and the thread ends.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Weak};

use tokio::sync::oneshot;

use super::Inner;
use super::acknowledged::Recorder;
use super::durable::Durability;
use super::group::Group;
use super::integrity::Head;
use crate::audit::AuditRecord;
use crate::store::{ChangeBatch, Precondition, Revision, StoreError, WriteRequest};

/// The most writes committed in one round.
const MAX_ROUND: usize = 512;

/// A queued write and the writer waiting for its outcome.
pub(super) enum Job {
    Write(WriteRequest, oneshot::Sender<Result<Revision, StoreError>>),
    Audit(
        AuditRecord,
        Vec<Precondition>,
        oneshot::Sender<Result<u64, StoreError>>,
    ),
}

/// An answer owed to a writer.
enum Reply {
    Write(
        oneshot::Sender<Result<Revision, StoreError>>,
        Result<Revision, StoreError>,
    ),
    Audit(
        oneshot::Sender<Result<u64, StoreError>>,
        Result<u64, StoreError>,
    ),
}

impl Reply {
    fn send(self) {
        match self {
            Reply::Write(tx, result) => drop(tx.send(result)),
            Reply::Audit(tx, result) => drop(tx.send(result)),
        }
    }

    /// Replaces a staged success with `error`; refusals stay as they are.
    fn fail(self, error: impl Fn() -> StoreError) -> Self {
        match self {
            Reply::Write(tx, Ok(_)) => Reply::Write(tx, Err(error())),
            Reply::Audit(tx, Ok(_)) => Reply::Audit(tx, Err(error())),
            refused => refused,
        }
    }
}

/// The committer thread's state.
pub(super) struct Committer {
    inner: Weak<Inner>,
    jobs: Receiver<Job>,
    head: Head,
    durability: Durability,
    acknowledged: Recorder,
}

impl Committer {
    /// Starts the thread, which continues the history after `head`.
    pub fn spawn(
        inner: Weak<Inner>,
        jobs: Receiver<Job>,
        head: Head,
        durability: Durability,
        acknowledged: Recorder,
    ) -> std::io::Result<()> {
        let committer = Self {
            inner,
            jobs,
            head,
            durability,
            acknowledged,
        };
        std::thread::Builder::new()
            .name("store-committer".into())
            .spawn(move || committer.run())
            .map(drop)
    }

    fn run(mut self) {
        let _span = tracing::info_span!("store_committer").entered();
        while let Ok(first) = self.jobs.recv() {
            let mut jobs = vec![first];
            jobs.extend(self.jobs.try_iter().take(MAX_ROUND - 1));

            let Some(inner) = self.inner.upgrade() else {
                return;
            };
            let replies = self.round(&inner, jobs);
            // Let go of the store before waking writers, so that one which
            // drops the last handle closes the database at once.
            drop(inner);
            replies.into_iter().for_each(Reply::send);
        }
    }

    /// Stages, commits and syncs `jobs`, and returns the answers they get.
    fn round(&mut self, inner: &Inner, jobs: Vec<Job>) -> Vec<Reply> {
        if let Some(failure) = inner.failure.get() {
            return refuse(jobs, || StoreError::Failed(failure.clone()));
        }

        let mut group = Group::new(&inner.trees, &inner.chain, &self.head);
        let replies = stage(&mut group, jobs);
        if group.is_empty() {
            return replies;
        }

        // One transaction for the whole round; readers that may see it wait
        // until it settles.
        let round = inner.rounds_begun.fetch_add(1, Ordering::SeqCst) + 1;
        if let Err(error) = group.commit() {
            settle(inner, round);
            let message = error.to_string();
            let failed = || StoreError::Backend(message.clone());
            return replies.into_iter().map(|r| r.fail(failed)).collect();
        }
        let (head, batches) = group.finish();
        self.head = head;

        // One disk sync; then the round's writes are durable.
        let synced = inner
            .trees
            .db
            .flush()
            .map_err(|e| e.to_string())
            .and_then(|_| self.durability.sync().map_err(|e| e.to_string()));
        if let Err(error) = synced {
            tracing::error!(%error, "store flush failed; refusing further writes");
            let failure = inner.failure.get_or_init(|| error);
            inner.settled.notify_waiters();
            let failed = || StoreError::Failed(failure.clone());
            return replies.into_iter().map(|r| r.fail(failed)).collect();
        }
        inner.rounds.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = self.acknowledged.record(&self.head) {
            let file = self.acknowledged.path().display();
            tracing::warn!(%error, %file, "recording the acknowledged head failed");
        }
        publish(inner, batches);
        settle(inner, round);
        replies
    }
}

/// Stages each job in queue order; the replies hold what each one would
/// return once the group is durable.
fn stage(group: &mut Group<'_>, jobs: Vec<Job>) -> Vec<Reply> {
    jobs.into_iter()
        .map(|job| match job {
            Job::Write(request, tx) => Reply::Write(tx, group.stage_write(request)),
            Job::Audit(record, preconditions, tx) => {
                Reply::Audit(tx, group.stage_audit(record, &preconditions))
            }
        })
        .collect()
}

/// Answers every job with `error`, staging nothing.
fn refuse(jobs: Vec<Job>, error: impl Fn() -> StoreError) -> Vec<Reply> {
    jobs.into_iter()
        .map(|job| match job {
            Job::Write(_, tx) => Reply::Write(tx, Err(error())),
            Job::Audit(_, _, tx) => Reply::Audit(tx, Err(error())),
        })
        .collect()
}

/// Lets readers waiting on `round` go: it is durable, or it wrote nothing.
pub(super) fn settle(inner: &Inner, round: u64) {
    inner.rounds_settled.store(round, Ordering::SeqCst);
    inner.settled.notify_waiters();
}

/// Makes durable batches visible: the store's revision, then watchers.
fn publish(inner: &Inner, batches: Vec<Arc<ChangeBatch>>) {
    for batch in batches {
        inner
            .durable_revision
            .store(batch.revision, Ordering::Release);
        let _ = inner.events.send(batch);
    }
}

//! The embedded backend: sled, in the data directory.
//!
//! Trees: `resources` (key to revision header and JSON document), `changes`
//! (revision to change batch), `audit` (sequence to entry), `meta` (format,
//! revision, audit head) and `system` (sealed keys and settings); beside
//! them, the file `acknowledged` says how far the history reached when the
//! store last answered a writer. Writers queue their writes for the
//! committer thread, which commits whatever is queued as one sled
//! transaction and syncs once for all of it.

use std::path::Path;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, OnceLock};

use ::sled::transaction::TransactionError;
use ::sled::{Db, Tree};
use async_trait::async_trait;
use tokio::sync::{broadcast, oneshot};

use super::{
    ChangeBatch, Precondition, ResourcePage, Revision, Store, StoreError, StoredResource,
    WriteRequest,
};
use crate::audit::{AuditChain, AuditEntry, AuditRecord, GENESIS_HASH, Verification};
use committer::{Committer, Job};
use durable::Durability;

mod acknowledged;
mod committer;
mod durable;
mod group;
mod integrity;
#[cfg(test)]
mod tests;

const FORMAT: &[u8] = b"palisade-store-v1";
const META_FORMAT: &str = "format";
const META_REVISION: &str = "revision";
const META_AUDIT_HEAD: &str = "audit-head";
const HEADER_LEN: usize = 16;
const CHANGE_CHANNEL: usize = 4096;

/// The sled-backed store.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Trees {
    db: Db,
    resources: Tree,
    changes: Tree,
    audit: Tree,
    meta: Tree,
    system: Tree,
}

struct Inner {
    trees: Trees,
    chain: AuditChain,
    /// The committer's queue; dropping it stops the committer.
    jobs: Sender<Job>,
    events: broadcast::Sender<Arc<ChangeBatch>>,
    durable_revision: std::sync::atomic::AtomicU64,
    /// Rounds the committer has made durable, each with one disk sync.
    rounds: std::sync::atomic::AtomicU64,
    /// Rounds whose rows readers may see: counted before each round
    /// commits, and settled once it is durable (or failed to commit).
    /// A read waits until every round begun before it settled, so nothing
    /// a read returns can vanish in a crash.
    rounds_begun: std::sync::atomic::AtomicU64,
    rounds_settled: std::sync::atomic::AtomicU64,
    settled: tokio::sync::Notify,
    /// Set once a flush failed; the store then takes no more writes.
    failure: OnceLock<String>,
    /// Where the database lives, for syncing outside the committer.
    path: std::path::PathBuf,
}

impl SledStore {
    /// Opens (or creates) the store at `path`, checks its integrity, and
    /// starts its committer thread.
    pub fn open(path: &Path, chain: AuditChain) -> Result<Self, StoreError> {
        let trees = open_trees(path)?;
        let head = integrity::check(&trees, acknowledged::read(path)?)?;

        let (jobs, queue) = mpsc::channel();
        let inner = Arc::new(Inner {
            durable_revision: head.revision.into(),
            rounds: 0.into(),
            rounds_begun: 0.into(),
            rounds_settled: 0.into(),
            settled: tokio::sync::Notify::new(),
            trees,
            chain,
            jobs,
            events: broadcast::channel(CHANGE_CHANNEL).0,
            failure: OnceLock::new(),
            path: path.to_owned(),
        });

        let open_error = |what: &str, e: std::io::Error| StoreError::Open {
            path: path.display().to_string(),
            detail: format!("{what}: {e}"),
        };
        let durability = Durability::open(path).map_err(|e| open_error("opening the log", e))?;
        let recorder = acknowledged::Recorder::open(path, &head)
            .map_err(|e| open_error("recording the acknowledged head", e))?;
        Committer::spawn(Arc::downgrade(&inner), queue, head, durability, recorder)
            .map_err(|e| open_error("starting the committer", e))?;
        Ok(Self { inner })
    }

    /// How many rounds the committer has made durable since the store
    /// opened. Each costs one disk sync however many writes it carries, so
    /// beside the revision this shows how well concurrent writers share
    /// syncs.
    pub fn commit_rounds(&self) -> u64 {
        self.inner.rounds.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Queues a job for the committer and waits for its answer.
    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        if let Some(failure) = self.inner.failure.get() {
            return Err(StoreError::Failed(failure.clone()));
        }
        let stopped = || StoreError::Failed("the store's committer stopped".into());

        let (tx, rx) = oneshot::channel();
        self.inner.jobs.send(job(tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

fn open_trees(path: &Path) -> Result<Trees, StoreError> {
    let open_error = |e: ::sled::Error| match e {
        ::sled::Error::Corruption { at, .. } => {
            let place = at.map(|at| format!(" at offset {} of its log", at.lid()));
            StoreError::Damaged(format!(
                "sled found corrupt data{}",
                place.unwrap_or_default()
            ))
        }
        e => StoreError::Open {
            path: path.display().to_string(),
            detail: e.to_string(),
        },
    };
    let db = ::sled::Config::new()
        .path(path)
        .cache_capacity(64 * 1024 * 1024)
        .flush_every_ms(Some(1000))
        .open()
        .map_err(open_error)?;
    let tree = |name: &str| db.open_tree(name).map_err(open_error);

    Ok(Trees {
        resources: tree("resources")?,
        changes: tree("changes")?,
        audit: tree("audit")?,
        meta: tree("meta")?,
        system: tree("system")?,
        db,
    })
}

fn audit_rows(entry: &AuditEntry) -> ([u8; 8], Vec<u8>, Vec<u8>) {
    let value = serde_json::to_vec(entry).expect("audit entry serializes");
    let head = serde_json::to_vec(&(entry.sequence, &entry.hash)).expect("head serializes");
    (entry.sequence.to_be_bytes(), value, head)
}

fn encode_resource(resource: &StoredResource) -> Vec<u8> {
    let mut value = Vec::with_capacity(HEADER_LEN + resource.document.len());
    value.extend_from_slice(&resource.revision.to_be_bytes());
    value.extend_from_slice(&resource.create_revision.to_be_bytes());
    value.extend_from_slice(resource.document.as_bytes());
    value
}

fn decode_resource(key: &[u8], value: &[u8]) -> Result<StoredResource, StoreError> {
    let key = String::from_utf8_lossy(key).into_owned();
    if value.len() < HEADER_LEN {
        return Err(StoreError::Damaged(format!(
            "resource {key} has a truncated header"
        )));
    }
    let (header, document) = value.split_at(HEADER_LEN);
    let document = std::str::from_utf8(document)
        .map_err(|_| StoreError::Damaged(format!("resource {key} is not UTF-8")))?;

    Ok(StoredResource {
        revision: u64::from_be_bytes(header[..8].try_into().expect("8 bytes")),
        create_revision: u64::from_be_bytes(header[8..].try_into().expect("8 bytes")),
        document: document.to_owned(),
        key,
    })
}

/// Reads one resource row.
fn read_resource(resources: &Tree, key: &str) -> Result<Option<StoredResource>, StoreError> {
    match resources.get(key).map_err(backend)? {
        Some(value) => Ok(Some(decode_resource(key.as_bytes(), &value)?)),
        None => Ok(None),
    }
}

fn decode_u64(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.try_into().ok()?))
}

fn backend(error: ::sled::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn encoding(error: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("encoding: {error}"))
}

fn transaction_error(error: TransactionError<()>) -> StoreError {
    match error {
        TransactionError::Storage(error) => backend(error),
        TransactionError::Abort(()) => StoreError::Backend("transaction aborted".into()),
    }
}

#[async_trait]
impl Store for SledStore {
    async fn write(&self, request: WriteRequest) -> Result<Revision, StoreError> {
        self.submit(|tx| Job::Write(request, tx)).await
    }

    async fn audit(&self, record: AuditRecord) -> Result<u64, StoreError> {
        self.submit(|tx| Job::Audit(record, Vec::new(), tx)).await
    }

    async fn audit_if(
        &self,
        record: AuditRecord,
        preconditions: Vec<Precondition>,
    ) -> Result<u64, StoreError> {
        self.submit(|tx| Job::Audit(record, preconditions, tx))
            .await
    }

    async fn get(&self, key: &str) -> Result<Option<StoredResource>, StoreError> {
        read_resource(&self.inner.trees.resources, key)
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ResourcePage, StoreError> {
        let revision = self.revision();
        let start = match start_after {
            Some(after) => std::ops::Bound::Excluded(after.as_bytes().to_vec()),
            None => std::ops::Bound::Included(prefix.as_bytes().to_vec()),
        };
        let rows = self
            .inner
            .trees
            .resources
            .range((start, std::ops::Bound::Unbounded));

        let mut page = ResourcePage {
            revision,
            ..ResourcePage::default()
        };
        for row in rows {
            let (key, value) = row.map_err(backend)?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            if page.resources.len() == limit {
                page.more = true;
                break;
            }
            page.resources.push(decode_resource(&key, &value)?);
        }
        Ok(page)
    }

    /// Every commit round begun so far has settled: what a read just saw
    /// is on disk. A round in flight costs the caller at most its sync.
    async fn settled(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering::SeqCst;

        let begun = self.inner.rounds_begun.load(SeqCst);
        loop {
            let settled = self.inner.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if let Some(failure) = self.inner.failure.get() {
                return Err(StoreError::Failed(failure.clone()));
            }
            if self.inner.rounds_settled.load(SeqCst) >= begun {
                return Ok(());
            }
            settled.await;
        }
    }

    fn revision(&self) -> Revision {
        self.inner
            .durable_revision
            .load(std::sync::atomic::Ordering::Acquire)
    }

    async fn changes_after(
        &self,
        after: Revision,
        limit: usize,
    ) -> Result<Vec<Arc<ChangeBatch>>, StoreError> {
        let durable = self.revision();
        let start = after.saturating_add(1).to_be_bytes();
        let mut batches = Vec::new();
        for row in self.inner.trees.changes.range(start..).take(limit) {
            let (_, value) = row.map_err(backend)?;
            let batch: ChangeBatch = serde_json::from_slice(&value)
                .map_err(|e| StoreError::Damaged(format!("change log entry: {e}")))?;
            if batch.revision > durable {
                break;
            }
            batches.push(Arc::new(batch));
        }
        Ok(batches)
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeBatch>> {
        self.inner.events.subscribe()
    }

    async fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let start = after.saturating_add(1).to_be_bytes();
        let mut entries = Vec::new();
        for row in self.inner.trees.audit.range(start..).take(limit) {
            let (_, value) = row.map_err(backend)?;
            let entry = serde_json::from_slice(&value)
                .map_err(|e| StoreError::Damaged(format!("audit entry: {e}")))?;
            entries.push(entry);
        }
        Ok(entries)
    }

    async fn audit_head(&self) -> Result<u64, StoreError> {
        match self.inner.trees.audit.last().map_err(backend)? {
            Some((key, _)) => decode_u64(&key)
                .ok_or_else(|| StoreError::Damaged("an audit key is malformed".into())),
            None => Ok(0),
        }
    }

    async fn verify_audit(&self) -> Result<Verification, StoreError> {
        self.blocking(|inner| {
            let head = integrity::audit_head(&inner.trees.meta)?;
            let stored = inner.trees.audit.iter().map(|row| match row {
                Ok((key, value)) => (
                    decode_u64(&key).unwrap_or(0),
                    serde_json::from_slice::<AuditEntry>(&value).map_err(|e| e.to_string()),
                ),
                Err(error) => (0, Err(error.to_string())),
            });
            let head = (head.0 > 0).then_some(head);
            Ok(inner.chain.verify(stored, head))
        })
        .await
    }

    async fn system_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.inner.trees.system.get(key).map_err(backend)?;
        Ok(value.map(|v| v.to_vec()))
    }

    async fn system_put(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.inner
            .trees
            .system
            .insert(key, value)
            .map_err(backend)?;
        self.flush().await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.inner.trees.db.flush_async().await.map_err(backend)?;
        self.blocking(|inner| {
            let synced = Durability::open_unsynced(&inner.path).and_then(|mut d| d.sync());
            synced.map_err(|e| StoreError::Backend(format!("syncing the store: {e}")))
        })
        .await
    }
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("revision", &self.revision())
            .finish()
    }
}

/// The genesis head, for a store with no audit entries yet.
fn empty_head() -> (u64, String) {
    (0, GENESIS_HASH.to_owned())
}

//! The embedded backend: sled, in the data directory.
//!
//! Trees: `resources` (key to revision header and JSON document), `changes`
//! (revision to change batch), `audit` (sequence to entry), `meta` (format,
//! revision, audit head) and `system` (sealed keys and settings). Writers
//! commit one sled transaction each under a lock, which is short because it
//! touches memory only, then share flushes through [`GroupCommit`].

use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use ::sled::transaction::{ConflictableTransactionError, TransactionError};
use ::sled::{Db, Transactional, Tree};
use async_trait::async_trait;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::commit::GroupCommit;
use super::{
    ChangeAction, ChangeBatch, ChangeEvent, Mutation, Precondition, ResourcePage, Revision, Store,
    StoreError, StoredResource, WriteRequest,
};
use crate::audit::{AuditChain, AuditEntry, AuditRecord, GENESIS_HASH, Verification};

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
    _flusher: Arc<AbortOnDrop>,
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
    writer: Mutex<WriterState>,
    commit: Arc<GroupCommit>,
    events: broadcast::Sender<Arc<ChangeBatch>>,
    durable_revision: std::sync::atomic::AtomicU64,
}

/// What only the writer lock's holder may touch.
struct WriterState {
    revision: Revision,
    audit_sequence: u64,
    audit_hash: String,
    ticket: u64,
    pending: Vec<Arc<ChangeBatch>>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl SledStore {
    /// Opens (or creates) the store at `path`, checks its integrity, and
    /// starts its flusher. Must be called inside a Tokio runtime.
    pub fn open(path: &Path, chain: AuditChain) -> Result<Self, StoreError> {
        let trees = open_trees(path)?;
        let head = integrity::check(&trees)?;

        let inner = Arc::new(Inner {
            writer: Mutex::new(WriterState {
                revision: head.revision,
                audit_sequence: head.audit_sequence,
                audit_hash: head.audit_hash,
                ticket: 0,
                pending: Vec::new(),
            }),
            durable_revision: head.revision.into(),
            trees,
            chain,
            commit: Arc::new(GroupCommit::new()),
            events: broadcast::channel(CHANGE_CHANNEL).0,
        });

        let flusher = tokio::spawn(flush_loop(Arc::downgrade(&inner), inner.commit.clone()));
        Ok(Self {
            inner,
            _flusher: Arc::new(AbortOnDrop(flusher)),
        })
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
    let open_error = |e: ::sled::Error| StoreError::Open {
        path: path.display().to_string(),
        detail: e.to_string(),
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

/// Runs for the store's lifetime: flushes whenever writers wait, then
/// publishes what became durable. It holds the store only while flushing, so
/// dropping the last handle closes the database at once.
async fn flush_loop(inner: Weak<Inner>, commit: Arc<GroupCommit>) {
    loop {
        commit.requested().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };

        let (ticket, batches) = {
            let mut state = inner.writer.lock().expect("writer lock");
            (state.ticket, std::mem::take(&mut state.pending))
        };

        if let Err(error) = inner.trees.db.flush_async().await {
            tracing::error!(%error, "store flush failed; refusing further writes");
            inner.commit.fail(error.to_string());
            return;
        }

        publish(&inner, batches);
        inner.commit.complete(ticket);
    }
}

fn publish(inner: &Inner, batches: Vec<Arc<ChangeBatch>>) {
    use std::sync::atomic::Ordering;

    for batch in batches {
        inner
            .durable_revision
            .store(batch.revision, Ordering::Release);
        let _ = inner.events.send(batch);
    }
}

impl Inner {
    /// Commits a write under the writer lock and returns its ticket and
    /// revision. The write is not durable yet.
    fn commit_write(&self, request: WriteRequest) -> Result<(u64, Revision), StoreError> {
        if let Some(failure) = self.commit.failure() {
            return Err(StoreError::Failed(failure));
        }
        let mut state = self.writer.lock().expect("writer lock");

        for precondition in &request.preconditions {
            self.check(precondition)?;
        }

        let revision = state.revision + 1;
        let events = self.events_for(&request.mutations, revision)?;
        let batch = ChangeBatch { revision, events };
        let sequence = state.audit_sequence + 1;
        let entry = self
            .chain
            .link(sequence, revision, &state.audit_hash, request.audit);

        self.apply(&batch, &entry)?;

        state.revision = revision;
        state.audit_sequence = sequence;
        state.audit_hash = entry.hash;
        state.ticket += 1;
        state.pending.push(Arc::new(batch));
        Ok((state.ticket, revision))
    }

    fn commit_audit(&self, record: AuditRecord) -> Result<(u64, u64), StoreError> {
        if let Some(failure) = self.commit.failure() {
            return Err(StoreError::Failed(failure));
        }
        let mut state = self.writer.lock().expect("writer lock");

        let sequence = state.audit_sequence + 1;
        let entry = self
            .chain
            .link(sequence, state.revision, &state.audit_hash, record);
        let (key, value, head) = audit_rows(&entry);
        (&self.trees.audit, &self.trees.meta)
            .transaction(|(audit, meta)| {
                audit.insert(&key, value.as_slice())?;
                meta.insert(META_AUDIT_HEAD, head.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(transaction_error)?;

        state.audit_sequence = sequence;
        state.audit_hash = entry.hash;
        state.ticket += 1;
        Ok((state.ticket, sequence))
    }

    fn check(&self, precondition: &Precondition) -> Result<(), StoreError> {
        let conflict = |key: &str, detail: String| StoreError::Conflict {
            key: key.into(),
            detail,
        };
        match precondition {
            Precondition::Absent { key } => match self.read(key)? {
                None => Ok(()),
                Some(_) => Err(conflict(key, "already exists".into())),
            },
            Precondition::Present { key } => match self.read(key)? {
                Some(_) => Ok(()),
                None => Err(conflict(key, "does not exist".into())),
            },
            Precondition::AtRevision { key, revision } => match self.read(key)? {
                Some(found) if found.revision == *revision => Ok(()),
                Some(found) => Err(conflict(
                    key,
                    format!("is at revision {}, not {revision}", found.revision),
                )),
                None => Err(conflict(
                    key,
                    format!("no longer exists (expected revision {revision})"),
                )),
            },
            Precondition::UnchangedSince { prefix, revision } => {
                self.check_unchanged(prefix, *revision)
            }
        }
    }

    fn check_unchanged(&self, prefix: &str, revision: Revision) -> Result<(), StoreError> {
        for row in self.trees.resources.scan_prefix(prefix) {
            let (key, value) = row.map_err(backend)?;
            let found = decode_resource(&key, &value)?;
            if found.revision > revision {
                return Err(StoreError::Conflict {
                    key: found.key,
                    detail: format!("changed after revision {revision}"),
                });
            }
        }
        Ok(())
    }

    fn events_for(
        &self,
        mutations: &[Mutation],
        revision: Revision,
    ) -> Result<Vec<ChangeEvent>, StoreError> {
        let mut events = Vec::with_capacity(mutations.len());
        for mutation in mutations {
            let event = match mutation {
                Mutation::Put { key, document } => {
                    let previous = self.read(key)?;
                    let action = if previous.is_some() {
                        ChangeAction::Updated
                    } else {
                        ChangeAction::Created
                    };
                    let create_revision = previous.map_or(revision, |p| p.create_revision);
                    let resource = StoredResource {
                        key: key.clone(),
                        revision,
                        create_revision,
                        document: document.clone(),
                    };
                    ChangeEvent { action, resource }
                }
                Mutation::Delete { key } => match self.read(key)? {
                    Some(resource) => ChangeEvent {
                        action: ChangeAction::Deleted,
                        resource,
                    },
                    None => continue,
                },
            };
            events.push(event);
        }
        Ok(events)
    }

    fn apply(&self, batch: &ChangeBatch, entry: &AuditEntry) -> Result<(), StoreError> {
        let Trees {
            resources,
            changes,
            audit,
            meta,
            ..
        } = &self.trees;
        let change_value = serde_json::to_vec(batch).map_err(encoding)?;
        let (audit_key, audit_value, head) = audit_rows(entry);
        let revision_key = batch.revision.to_be_bytes();

        (resources, changes, audit, meta)
            .transaction(|(resources, changes, audit, meta)| {
                for event in &batch.events {
                    let key = event.resource.key.as_bytes();
                    match event.action {
                        ChangeAction::Deleted => resources.remove(key)?,
                        _ => resources.insert(key, encode_resource(&event.resource))?,
                    };
                }
                changes.insert(&revision_key, change_value.as_slice())?;
                audit.insert(&audit_key, audit_value.as_slice())?;
                meta.insert(META_REVISION, &revision_key)?;
                meta.insert(META_AUDIT_HEAD, head.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(transaction_error)
    }

    fn read(&self, key: &str) -> Result<Option<StoredResource>, StoreError> {
        match self.trees.resources.get(key).map_err(backend)? {
            Some(value) => Ok(Some(decode_resource(key.as_bytes(), &value)?)),
            None => Ok(None),
        }
    }
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
        let (ticket, revision) = self
            .blocking(move |inner| inner.commit_write(request))
            .await?;
        self.inner.commit.wait(ticket).await?;
        Ok(revision)
    }

    async fn audit(&self, record: AuditRecord) -> Result<u64, StoreError> {
        let (ticket, sequence) = self
            .blocking(move |inner| inner.commit_audit(record))
            .await?;
        self.inner.commit.wait(ticket).await?;
        Ok(sequence)
    }

    async fn get(&self, key: &str) -> Result<Option<StoredResource>, StoreError> {
        self.inner.read(key)
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
        Ok(())
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

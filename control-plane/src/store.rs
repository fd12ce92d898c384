//! The store: resources, the global revision, the change log, the audit log
//! and sealed system values, behind one trait.
//!
//! Every write is one transaction that puts or deletes resources, bumps the
//! revision, appends one change-log entry and one audit entry. A write returns
//! only once it is durable. The trait speaks of keys, revisions and
//! preconditions that a distributed key-value store (etcd) can express too, so
//! a second backend needs no change in its callers.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::audit::{AuditEntry, AuditRecord, Verification};

pub mod sled;
pub mod watch;

/// A point in the store's history. Every write makes a new one.
pub type Revision = u64;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {detail}")]
    Open { path: String, detail: String },
    #[error("the store is damaged and will not serve: {0}")]
    Damaged(String),
    #[error("{key} {detail}")]
    Conflict { key: String, detail: String },
    #[error("the store failed to make a write durable and stopped taking writes: {0}")]
    Failed(String),
    #[error("store backend: {0}")]
    Backend(String),
}

/// One resource as stored: its key, the revisions that made and last changed
/// it, and its document as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredResource {
    pub key: String,
    pub revision: Revision,
    pub create_revision: Revision,
    pub document: String,
}

/// One change to make in a write.
#[derive(Clone, Debug)]
pub enum Mutation {
    Put { key: String, document: String },
    Delete { key: String },
}

/// A condition that must hold when a write commits, or the write fails with
/// [`StoreError::Conflict`] and changes nothing.
#[derive(Clone, Debug)]
pub enum Precondition {
    /// No resource has this key.
    Absent { key: String },
    /// A resource has this key.
    Present { key: String },
    /// The resource with this key was last changed at exactly this revision.
    AtRevision { key: String, revision: Revision },
    /// No resource under `prefix` was created or changed after `revision`.
    UnchangedSince { prefix: String, revision: Revision },
}

/// A transaction: mutations, the conditions they depend on, and the audit
/// record that describes them.
#[derive(Clone, Debug)]
pub struct WriteRequest {
    pub mutations: Vec<Mutation>,
    pub preconditions: Vec<Precondition>,
    pub audit: AuditRecord,
}

/// What a change did to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeAction {
    Created,
    Updated,
    Deleted,
}

/// One resource's change. For deletions `resource` is its last state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub action: ChangeAction,
    pub resource: StoredResource,
}

/// Everything one write changed, at one revision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeBatch {
    pub revision: Revision,
    pub events: Vec<ChangeEvent>,
}

/// A page of resources and the revision it was read at.
#[derive(Clone, Debug, Default)]
pub struct ResourcePage {
    pub resources: Vec<StoredResource>,
    pub revision: Revision,
    /// True when more resources under the prefix follow the last one.
    pub more: bool,
}

/// The store behind the control plane.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Commits a transaction and returns its revision once it is durable.
    async fn write(&self, request: WriteRequest) -> Result<Revision, StoreError>;

    /// Appends an audit entry for a call that changed nothing (a refused one)
    /// and returns its sequence once it is durable.
    async fn audit(&self, record: AuditRecord) -> Result<u64, StoreError>;

    /// Appends an audit entry as [`Store::audit`] does, but only if every
    /// precondition holds; refuses it with [`StoreError::Conflict`] as a
    /// write would, appending nothing. For a call whose effect lies outside
    /// the store, such as a minted token, that must not race a change.
    async fn audit_if(
        &self,
        record: AuditRecord,
        preconditions: Vec<Precondition>,
    ) -> Result<u64, StoreError>;

    /// Reads one resource, as the next write will see it: the result may
    /// include writes whose disk sync is still under way. That is what
    /// planning a write needs (its preconditions pin what it read, and it
    /// is durable only after everything before it); before telling a
    /// client what was read, wait for [`Store::settled`].
    async fn get(&self, key: &str) -> Result<Option<StoredResource>, StoreError>;

    /// Reads up to `limit` resources whose keys start with `prefix`, in key
    /// order, after `start_after` if given.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ResourcePage, StoreError>;

    /// Returns once every write that a read made before this call could
    /// have seen is durable, so that nothing a client is told can vanish in
    /// a crash.
    async fn settled(&self) -> Result<(), StoreError>;

    /// The revision of the newest durable write.
    fn revision(&self) -> Revision;

    /// Reads up to `limit` change batches with revisions above `after`.
    async fn changes_after(
        &self,
        after: Revision,
        limit: usize,
    ) -> Result<Vec<Arc<ChangeBatch>>, StoreError>;

    /// Change batches as they become durable, in revision order. A receiver
    /// that falls behind loses batches and must catch up from the log; see
    /// [`watch::changes`].
    fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeBatch>>;

    /// Reads up to `limit` audit entries with sequences above `after`.
    async fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// The sequence of the newest audit entry, 0 if there is none.
    async fn audit_head(&self) -> Result<u64, StoreError>;

    /// Walks the whole audit chain.
    async fn verify_audit(&self) -> Result<Verification, StoreError>;

    /// Reads a system value (sealed keys, certificates, settings).
    async fn system_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Writes a system value durably.
    async fn system_put(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError>;

    /// Makes everything written so far durable.
    async fn flush(&self) -> Result<(), StoreError>;
}

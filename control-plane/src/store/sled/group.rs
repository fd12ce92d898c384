//! A group of writes that the committer makes durable together: one sled
//! transaction and one disk sync for all of them.
//!
//! Each write in a group keeps its own revision, change-log entry and audit
//! entry, exactly as if it had been committed alone. Its preconditions are
//! checked against the store as it will be once the writes staged before it
//! are in, so a write that depends on an earlier one in the same group sees
//! it, and a refused write changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use ::sled::Transactional;
use ::sled::transaction::ConflictableTransactionError;

use super::integrity::Head;
use super::{
    META_AUDIT_HEAD, META_REVISION, Trees, audit_rows, backend, decode_resource, encode_resource,
    encoding, read_resource, transaction_error,
};
use crate::audit::{AuditChain, AuditRecord};
use crate::store::{
    ChangeAction, ChangeBatch, ChangeEvent, Mutation, Precondition, Revision, StoreError,
    StoredResource, WriteRequest,
};

/// Writes staged for one transaction.
pub(super) struct Group<'a> {
    trees: &'a Trees,
    chain: &'a AuditChain,
    /// Where the history will end once the group is in.
    head: Head,
    /// The state that staged writes leave each key they touch in; `None`
    /// for a key they delete.
    staged: BTreeMap<String, Option<StoredResource>>,
    /// Resource rows to write, in order; `None` removes the row.
    resource_rows: Vec<(String, Option<Vec<u8>>)>,
    change_rows: Vec<([u8; 8], Vec<u8>)>,
    audit_rows: Vec<([u8; 8], Vec<u8>)>,
    batches: Vec<Arc<ChangeBatch>>,
}

impl<'a> Group<'a> {
    pub fn new(trees: &'a Trees, chain: &'a AuditChain, head: &Head) -> Self {
        Self {
            trees,
            chain,
            head: head.clone(),
            staged: BTreeMap::new(),
            resource_rows: Vec::new(),
            change_rows: Vec::new(),
            audit_rows: Vec::new(),
            batches: Vec::new(),
        }
    }

    /// True when nothing is staged (every staged job adds an audit entry).
    pub fn is_empty(&self) -> bool {
        self.audit_rows.is_empty()
    }

    /// Stages a write at the next revision, or refuses it, staging nothing,
    /// when one of its preconditions fails.
    pub fn stage_write(&mut self, request: WriteRequest) -> Result<Revision, StoreError> {
        for precondition in &request.preconditions {
            self.check(precondition)?;
        }

        let revision = self.head.revision + 1;
        let events = self.events_for(&request.mutations, revision)?;
        let batch = ChangeBatch { revision, events };
        let change_value = serde_json::to_vec(&batch).map_err(encoding)?;

        for event in &batch.events {
            self.stage_event(event);
        }
        self.change_rows
            .push((revision.to_be_bytes(), change_value));
        self.batches.push(Arc::new(batch));
        self.head.revision = revision;
        self.link(request.audit);
        Ok(revision)
    }

    /// Stages an audit entry for a call that changed nothing and returns its
    /// sequence, or refuses it, staging nothing, when one of its
    /// preconditions fails.
    pub fn stage_audit(
        &mut self,
        record: AuditRecord,
        preconditions: &[Precondition],
    ) -> Result<u64, StoreError> {
        for precondition in preconditions {
            self.check(precondition)?;
        }
        Ok(self.link(record))
    }

    fn link(&mut self, record: AuditRecord) -> u64 {
        let head = &mut self.head;
        let sequence = head.audit_sequence + 1;
        let entry = self
            .chain
            .link(sequence, head.revision, &head.audit_hash, record);

        let (key, value, _) = audit_rows(&entry);
        self.audit_rows.push((key, value));
        head.audit_sequence = sequence;
        head.audit_hash = entry.hash;
        sequence
    }

    fn stage_event(&mut self, event: &ChangeEvent) {
        let key = event.resource.key.clone();
        let (row, state) = match event.action {
            ChangeAction::Deleted => (None, None),
            _ => (
                Some(encode_resource(&event.resource)),
                Some(event.resource.clone()),
            ),
        };
        self.resource_rows.push((key.clone(), row));
        self.staged.insert(key, state);
    }

    /// Writes everything staged in one sled transaction. Nothing is durable
    /// until the database is flushed.
    pub fn commit(&self) -> Result<(), StoreError> {
        let Trees {
            resources,
            changes,
            audit,
            meta,
            ..
        } = self.trees;
        let head = serde_json::to_vec(&(self.head.audit_sequence, &self.head.audit_hash))
            .map_err(encoding)?;
        let revision = self.head.revision.to_be_bytes();

        (resources, changes, audit, meta)
            .transaction(|(resources, changes, audit, meta)| {
                for (key, row) in &self.resource_rows {
                    match row {
                        Some(value) => resources.insert(key.as_bytes(), value.as_slice())?,
                        None => resources.remove(key.as_bytes())?,
                    };
                }
                for (key, value) in &self.change_rows {
                    changes.insert(key, value.as_slice())?;
                }
                for (key, value) in &self.audit_rows {
                    audit.insert(key, value.as_slice())?;
                }
                if !self.change_rows.is_empty() {
                    meta.insert(META_REVISION, &revision)?;
                }
                meta.insert(META_AUDIT_HEAD, head.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(transaction_error)
    }

    /// The head after the group, and its change batches in revision order.
    pub fn finish(self) -> (Head, Vec<Arc<ChangeBatch>>) {
        (self.head, self.batches)
    }

    /// Reads a resource as the staged writes leave it.
    fn read(&self, key: &str) -> Result<Option<StoredResource>, StoreError> {
        match self.staged.get(key) {
            Some(state) => Ok(state.clone()),
            None => read_resource(&self.trees.resources, key),
        }
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

    /// Fails with the first key under `prefix`, in key order, whose resource
    /// was created or changed after `revision`.
    fn check_unchanged(&self, prefix: &str, revision: Revision) -> Result<(), StoreError> {
        let staged = self
            .staged
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .find(|(_, state)| state.as_ref().is_some_and(|r| r.revision > revision))
            .map(|(key, _)| key.clone());

        let mut stored = None;
        for row in self.trees.resources.scan_prefix(prefix) {
            let (key, value) = row.map_err(backend)?;
            let found = decode_resource(&key, &value)?;
            if !self.staged.contains_key(&found.key) && found.revision > revision {
                stored = Some(found.key);
                break;
            }
        }

        let first = match (staged, stored) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match first {
            None => Ok(()),
            Some(key) => Err(StoreError::Conflict {
                key,
                detail: format!("changed after revision {revision}"),
            }),
        }
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
                    let action = match previous {
                        Some(_) => ChangeAction::Updated,
                        None => ChangeAction::Created,
                    };
                    let resource = StoredResource {
                        key: key.clone(),
                        revision,
                        create_revision: previous.map_or(revision, |p| p.create_revision),
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
}

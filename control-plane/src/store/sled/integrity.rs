//! The checks a sled store passes before it serves: a revision that matches
//! the newest change-log entry, an audit head that matches the newest audit
//! entry, a history that reaches as far as the store last acknowledged, the
//! format marker, and resources whose headers and documents read back. A
//! store that fails any of them is refused, not repaired.

use ::sled::Tree;

use super::acknowledged::{self, Acknowledged};
use super::{
    FORMAT, META_AUDIT_HEAD, META_FORMAT, META_REVISION, Trees, decode_resource, decode_u64,
    empty_head,
};
use crate::store::{Revision, StoreError};

/// Where the store's history ends.
#[derive(Clone, Debug)]
pub(super) struct Head {
    pub revision: Revision,
    pub audit_sequence: u64,
    pub audit_hash: String,
}

/// Checks the store against itself and against the head it last
/// `acknowledged`, marks a new one with the format, and returns its head.
pub(super) fn check(trees: &Trees, acknowledged: Option<Acknowledged>) -> Result<Head, StoreError> {
    let revision = check_revision(trees)?;
    let (audit_sequence, audit_hash) = check_audit_head(trees)?;
    let head = Head {
        revision,
        audit_sequence,
        audit_hash,
    };
    acknowledged::check(&head, acknowledged)?;

    check_format(trees)?;
    check_resources(&trees.resources, revision)?;
    Ok(head)
}

fn check_format(trees: &Trees) -> Result<(), StoreError> {
    match trees.meta.get(META_FORMAT).map_err(super::backend)? {
        Some(format) if format.as_ref() == FORMAT => Ok(()),
        Some(format) => Err(StoreError::Damaged(format!(
            "unknown store format {:?}",
            String::from_utf8_lossy(&format)
        ))),
        None if trees.resources.is_empty() && trees.changes.is_empty() => {
            trees
                .meta
                .insert(META_FORMAT, FORMAT)
                .map_err(super::backend)?;
            trees.db.flush().map_err(super::backend)?;
            Ok(())
        }
        None => Err(StoreError::Damaged("the format marker is missing".into())),
    }
}

fn check_revision(trees: &Trees) -> Result<Revision, StoreError> {
    let revision = match trees.meta.get(META_REVISION).map_err(super::backend)? {
        Some(value) => decode_u64(&value)
            .ok_or_else(|| StoreError::Damaged("the stored revision is malformed".into()))?,
        None => 0,
    };

    let newest = match trees.changes.last().map_err(super::backend)? {
        Some((key, _)) => decode_u64(&key)
            .ok_or_else(|| StoreError::Damaged("a change-log key is malformed".into()))?,
        None => 0,
    };
    if newest != revision {
        return Err(StoreError::Damaged(format!(
            "the revision is {revision} but the change log ends at {newest}"
        )));
    }
    Ok(revision)
}

fn check_audit_head(trees: &Trees) -> Result<(u64, String), StoreError> {
    let head = audit_head(&trees.meta)?;

    let newest = match trees.audit.last().map_err(super::backend)? {
        Some((key, value)) => {
            let sequence = decode_u64(&key)
                .ok_or_else(|| StoreError::Damaged("an audit key is malformed".into()))?;
            let entry: crate::audit::AuditEntry = serde_json::from_slice(&value)
                .map_err(|e| StoreError::Damaged(format!("the newest audit entry: {e}")))?;
            (sequence, entry.hash)
        }
        None => empty_head(),
    };
    if newest != head {
        return Err(StoreError::Damaged(format!(
            "the audit log ends at entry {} but its recorded head is entry {}",
            newest.0, head.0
        )));
    }
    Ok(head)
}

/// Reads the recorded audit head, or the genesis head if none.
pub(super) fn audit_head(meta: &Tree) -> Result<(u64, String), StoreError> {
    match meta.get(META_AUDIT_HEAD).map_err(super::backend)? {
        Some(value) => serde_json::from_slice(&value)
            .map_err(|e| StoreError::Damaged(format!("the audit head is malformed: {e}"))),
        None => Ok(empty_head()),
    }
}

fn check_resources(resources: &Tree, revision: Revision) -> Result<(), StoreError> {
    for row in resources.iter() {
        let (key, value) = row.map_err(super::backend)?;
        let resource = decode_resource(&key, &value)?;
        if resource.revision > revision || resource.create_revision > resource.revision {
            return Err(StoreError::Damaged(format!(
                "resource {} claims revision {} beyond the store's {revision}",
                resource.key, resource.revision
            )));
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(&resource.document).is_err() {
            return Err(StoreError::Damaged(format!(
                "resource {} holds a document that is not JSON",
                resource.key
            )));
        }
    }
    Ok(())
}

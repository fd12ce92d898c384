//! Node revocation: a revoked node gets nothing more, and the serials of
//! every unexpired certificate it and its workloads hold go on a deny list
//! that travels to agents.

use palisade_model::{Kind, ResourceKey};

use super::records::{
    self, ISSUED_CERTIFICATE, IssuedRecord, NODE_REVOCATION, RecordError, RevocationRecord,
    RevokedSerial, encode,
};
use crate::audit::{AuditRecord, Outcome};
use crate::store::{Mutation, Precondition, Revision, Store, StoreError, WriteRequest};

/// How often a revocation is tried again when certificates are issued to
/// the node while it is being revoked.
const MAX_ATTEMPTS: usize = 8;

/// Why a revocation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("node {node} was already revoked at unix time {at}")]
    AlreadyRevoked { node: String, at: i64 },
    #[error("node {0} does not exist and holds no certificates")]
    UnknownNode(String),
    #[error("certificates kept being issued to node {0} during its revocation; try again")]
    Raced(String),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The store key of a node's revocation.
pub fn record_key(node: &str) -> String {
    records::key(NODE_REVOCATION, "", node)
}

/// The store key of an issued certificate.
pub fn issued_key(owner: &str, serial: &str) -> String {
    records::key(ISSUED_CERTIFICATE, owner, serial)
}

/// The revocation of `node`, if it was revoked.
pub async fn revoked(
    store: &dyn Store,
    node: &str,
) -> Result<Option<RevocationRecord>, RecordError> {
    let found = records::get::<RevocationRecord>(store, &record_key(node)).await?;
    Ok(found.map(|v| v.record))
}

/// Revokes `node` at `now` and returns the revision and the denied serials.
pub async fn revoke(
    store: &dyn Store,
    actor: &str,
    node: &str,
    reason: &str,
    now: i64,
) -> Result<(Revision, Vec<RevokedSerial>), RevocationError> {
    if let Some(existing) = revoked(store, node).await? {
        return Err(RevocationError::AlreadyRevoked {
            node: node.to_owned(),
            at: existing.revoked,
        });
    }

    for _ in 0..MAX_ATTEMPTS {
        let node_key = ResourceKey::new(Kind::Node, "", node).store_key();
        let node_exists = store.get(&node_key).await?.is_some();
        let read_at = store.revision();
        let serials = unexpired_serials(store, node, now).await?;
        if !node_exists && serials.is_empty() {
            return Err(RevocationError::UnknownNode(node.to_owned()));
        }

        let record = RevocationRecord {
            node: node.to_owned(),
            revoked: now,
            revoked_by: actor.to_owned(),
            reason: reason.to_owned(),
            serials,
        };
        match write(store, actor, &record, read_at).await {
            Ok(revision) => return Ok((revision, record.serials)),
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(RevocationError::Raced(node.to_owned()))
}

/// Every serial on the deny list that has not expired by `now`.
pub async fn deny_list(store: &dyn Store, now: i64) -> Result<Vec<RevokedSerial>, RecordError> {
    let revocations =
        records::list::<RevocationRecord>(store, &records::prefix(NODE_REVOCATION, None)).await?;
    let mut serials: Vec<RevokedSerial> = revocations
        .into_iter()
        .flat_map(|v| v.record.serials)
        .filter(|s| s.not_after > now)
        .collect();
    serials.sort_by(|a, b| a.serial.cmp(&b.serial));
    Ok(serials)
}

async fn unexpired_serials(
    store: &dyn Store,
    node: &str,
    now: i64,
) -> Result<Vec<RevokedSerial>, RecordError> {
    let prefix = records::prefix(ISSUED_CERTIFICATE, Some(node));
    let issued = records::list::<IssuedRecord>(store, &prefix).await?;
    Ok(issued
        .into_iter()
        .filter(|v| v.record.not_after > now)
        .map(|v| RevokedSerial {
            serial: v.record.serial,
            not_after: v.record.not_after,
        })
        .collect())
}

async fn write(
    store: &dyn Store,
    actor: &str,
    record: &RevocationRecord,
    read_at: Revision,
) -> Result<Revision, StoreError> {
    let key = record_key(&record.node);
    let node_key = ResourceKey::new(Kind::Node, "", &record.node).store_key();
    let mut targets = vec![node_key, key.clone()];
    targets.extend(
        record
            .serials
            .iter()
            .map(|s| format!("serial:{}", s.serial)),
    );
    let audit = AuditRecord::now(actor, "node revoke", Outcome::Ok)
        .with_targets(targets)
        .with_detail(record.reason.clone());

    let request = WriteRequest {
        mutations: vec![Mutation::Put {
            key: key.clone(),
            document: encode(record),
        }],
        preconditions: vec![
            Precondition::Absent { key },
            Precondition::UnchangedSince {
                prefix: records::prefix(ISSUED_CERTIFICATE, Some(&record.node)),
                revision: read_at,
            },
        ],
        audit,
    };
    store.write(request).await
}

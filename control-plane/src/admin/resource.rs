//! Translation between stored resources and the admin API's messages.

use palisade_model::{Document, Kind, ResourceKey};
use palisade_proto::admin as pb;

use super::AdminError;
use crate::store::{ChangeAction, StoredResource};

/// The namespace of a namespaced resource that names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Parses a kind named in a request.
pub fn parse_kind(kind: &str) -> Result<Kind, AdminError> {
    Kind::parse(kind).ok_or_else(|| {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        AdminError::Invalid(format!(
            "kind: {kind:?} is not a known kind (expected one of {})",
            known.join(", ")
        ))
    })
}

/// The key a request names, with the default namespace filled in.
pub fn key_for(kind: &str, namespace: &str, name: &str) -> Result<ResourceKey, AdminError> {
    let kind = parse_kind(kind)?;
    if name.is_empty() {
        return Err(AdminError::Invalid("name: must not be empty".into()));
    }

    let namespace = match (kind.is_namespaced(), namespace) {
        (true, "") => DEFAULT_NAMESPACE,
        (true, namespace) => namespace,
        (false, "") => "",
        (false, namespace) => {
            return Err(AdminError::Invalid(format!(
                "namespace: {kind} is cluster-scoped and takes no namespace (got {namespace:?})"
            )));
        }
    };
    Ok(ResourceKey::new(kind, namespace, name))
}

/// Reads a stored resource's key back.
pub fn key_of(stored: &StoredResource) -> Result<ResourceKey, AdminError> {
    ResourceKey::parse_store_key(&stored.key).ok_or_else(|| {
        AdminError::Store(crate::store::StoreError::Damaged(format!(
            "stored key {:?} is malformed",
            stored.key
        )))
    })
}

/// The stored document with its revisions filled in.
pub fn document_of(stored: &StoredResource) -> Result<Document, AdminError> {
    let mut document = Document::from_json(&stored.document).map_err(|e| {
        AdminError::Store(crate::store::StoreError::Damaged(format!(
            "{}: {e}",
            stored.key
        )))
    })?;
    document.metadata.revision = Some(stored.revision);
    document.metadata.create_revision = Some(stored.create_revision);
    Ok(document)
}

/// The admin API's view of a stored resource.
pub fn to_proto(stored: &StoredResource) -> Result<pb::Resource, AdminError> {
    let key = key_of(stored)?;
    let document = document_of(stored)?;
    Ok(pb::Resource {
        kind: key.kind.as_str().to_owned(),
        namespace: key.namespace,
        name: key.name,
        revision: stored.revision,
        document: document.to_json(),
    })
}

/// The API's name for a store change.
pub fn action_to_proto(action: ChangeAction) -> pb::ChangeAction {
    match action {
        ChangeAction::Created => pb::ChangeAction::Created,
        ChangeAction::Updated => pb::ChangeAction::Updated,
        ChangeAction::Deleted => pb::ChangeAction::Deleted,
    }
}

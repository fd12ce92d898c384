//! Delete: refused while other resources refer to the one being deleted.

use palisade_model::{Kind, ResourceKey};
use palisade_proto::admin as pb;
use tonic::{Response, Status};

use super::diff::unified_diff;
use super::resource::{document_of, key_for, key_of};
use super::{AdminError, AdminService, Caller};
use crate::audit::{AuditRecord, Outcome};
use crate::authz::{Permission, Verb};
use crate::store::{Mutation, Precondition, StoredResource, WriteRequest};

/// Resources read per page while looking for referrers.
const REFERRER_PAGE: usize = 1_000;
/// Referrers that a refusal names; it counts the rest.
const REFERRERS_NAMED: usize = 20;

impl AdminService {
    pub(super) async fn delete_resource(
        &self,
        caller: &Caller,
        request: pb::DeleteRequest,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let key = match key_for(&request.kind, &request.namespace, &request.name) {
            Ok(key) => key,
            Err(error) => return self.finish(caller, "delete", Vec::new(), Err(error)).await,
        };
        let targets = vec![key.store_key()];
        let permission = Permission::on(Verb::Delete, key.kind, &key.namespace);
        self.authorize(caller, "delete", permission, &targets)
            .await?;

        let result = self.delete_checked(caller, &key, &request).await;
        self.finish(caller, "delete", targets, result).await
    }

    async fn delete_checked(
        &self,
        caller: &Caller,
        key: &ResourceKey,
        request: &pb::DeleteRequest,
    ) -> Result<pb::DeleteResponse, AdminError> {
        let store = &self.state.store;
        let read_at = store.revision();
        let Some(current) = store.get(&key.store_key()).await? else {
            return Err(AdminError::NotFound(format!("{key} does not exist")));
        };
        if request.expected_revision != 0 && request.expected_revision != current.revision {
            return Err(AdminError::Conflict(format!(
                "{key} is at revision {}, not {}",
                current.revision, request.expected_revision
            )));
        }

        let referrers = self.referrers(key, REFERRER_PAGE).await?;
        if !referrers.is_empty() {
            return Err(AdminError::InUse(format!(
                "{key} is used by {}",
                named(&referrers)
            )));
        }

        let change = deleted_change(key, &current)?;
        if request.dry_run {
            return Ok(pb::DeleteResponse {
                revision: store.revision(),
                change: Some(change),
            });
        }

        let mut preconditions = vec![Precondition::AtRevision {
            key: key.store_key(),
            revision: current.revision,
        }];
        for prefix in referrer_prefixes(key) {
            preconditions.push(Precondition::UnchangedSince {
                prefix,
                revision: read_at,
            });
        }
        let audit = AuditRecord::now(&caller.identity, "delete", Outcome::Ok)
            .with_targets(vec![key.store_key()]);
        let mutations = vec![Mutation::Delete {
            key: key.store_key(),
        }];
        let revision = store
            .write(WriteRequest {
                mutations,
                preconditions,
                audit,
            })
            .await?;

        tracing::info!(actor = %caller.identity, revision, resource = %key, "deleted");
        Ok(pb::DeleteResponse {
            revision,
            change: Some(change),
        })
    }

    /// Every stored resource that refers to `key`, read `page_size` at a
    /// time to the end of each prefix where referrers may live: one missed
    /// would let the delete leave a dangling reference. The delete's write
    /// fails if any of those prefixes changes after the scan began.
    pub(super) async fn referrers(
        &self,
        key: &ResourceKey,
        page_size: usize,
    ) -> Result<Vec<ResourceKey>, AdminError> {
        let mut found = Vec::new();
        for prefix in referrer_prefixes(key) {
            self.referrers_under(&prefix, key, page_size, &mut found)
                .await?;
        }
        Ok(found)
    }

    /// Adds the resources under `prefix` that refer to `key` to `found`.
    async fn referrers_under(
        &self,
        prefix: &str,
        key: &ResourceKey,
        page_size: usize,
        found: &mut Vec<ResourceKey>,
    ) -> Result<(), AdminError> {
        let mut after: Option<String> = None;
        loop {
            let store = &self.state.store;
            let page = store.list(prefix, after.as_deref(), page_size).await?;
            for stored in &page.resources {
                if document_of(stored)?.references().contains(key) {
                    found.push(key_of(stored)?);
                }
            }

            if !page.more {
                return Ok(());
            }
            let Some(last) = page.resources.last() else {
                return Err(AdminError::Internal(format!(
                    "listing {prefix} returned nothing yet said more follows"
                )));
            };
            after = Some(last.key.clone());
        }
    }
}

/// The first referrers by name, and how many more there are.
fn named(referrers: &[ResourceKey]) -> String {
    let names: Vec<String> = referrers
        .iter()
        .take(REFERRERS_NAMED)
        .map(ToString::to_string)
        .collect();
    let mut text = names.join(", ");
    if referrers.len() > REFERRERS_NAMED {
        text.push_str(&format!(" and {} more", referrers.len() - REFERRERS_NAMED));
    }
    text
}

/// Where resources that may refer to `key` live.
fn referrer_prefixes(key: &ResourceKey) -> Vec<String> {
    let namespaced = |kinds: &[Kind]| -> Vec<String> {
        kinds
            .iter()
            .map(|kind| format!("{kind}/{}/", key.namespace))
            .collect()
    };
    match key.kind {
        Kind::Service => namespaced(&[
            Kind::Workload,
            Kind::AuthorizationPolicy,
            Kind::RequestAuthentication,
        ]),
        Kind::JwtIssuer => namespaced(&[Kind::RequestAuthentication]),
        Kind::Node => vec![format!("{}/", Kind::Workload)],
        Kind::AdminRole => vec![format!("{}//", Kind::AdminBinding)],
        _ => Vec::new(),
    }
}

fn deleted_change(key: &ResourceKey, current: &StoredResource) -> Result<pb::Change, AdminError> {
    let mut old = document_of(current)?;
    old.metadata.revision = None;
    old.metadata.create_revision = None;

    Ok(pb::Change {
        kind: key.kind.as_str().to_owned(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        action: pb::ChangeAction::Deleted as i32,
        diff: unified_diff(&key.store_key(), &old.to_yaml(), ""),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workloads(count: usize) -> Vec<ResourceKey> {
        (1..=count)
            .map(|i| ResourceKey::new(Kind::Workload, "shop", format!("orders-{i}")))
            .collect()
    }

    #[test]
    fn a_refusal_names_the_first_referrers_and_counts_the_rest() {
        let few = named(&workloads(2));
        let many = named(&workloads(REFERRERS_NAMED + 5));

        assert_eq!(few, "Workload shop/orders-1, Workload shop/orders-2");
        assert!(
            many.ends_with("Workload shop/orders-20 and 5 more"),
            "{many}"
        );
    }
}

//! Apply: many documents, validated together and written in one
//! transaction, or not at all.
//!
//! The plan reads what each document would replace, decides created, updated
//! or unchanged, checks revisions the documents carry and the resources they
//! refer to, and turns what it read into store preconditions. If another
//! writer changes what the plan read, the store refuses the transaction and
//! the plan is made again, unless a document carried an explicit revision, in
//! which case the caller hears ABORTED.

use std::collections::{HashMap, HashSet};

use palisade_model::{Document, Kind, ResourceKey, Spec};
use palisade_proto::admin as pb;
use tonic::{Response, Status};

use super::diff::unified_diff;
use super::resource::document_of;
use super::{AdminError, AdminService, Caller};
use crate::audit::{AuditRecord, Outcome};
use crate::authz::{Permission, Verb};
use crate::store::{Mutation, Precondition, StoreError, StoredResource, WriteRequest};

/// The largest apply accepted, in bytes of document text.
pub const MAX_APPLY_BYTES: usize = 16 * 1024 * 1024;
/// How often an apply is planned again after losing a race.
const MAX_ATTEMPTS: usize = 8;

/// One document's place in a plan.
struct Step {
    key: ResourceKey,
    action: pb::ChangeAction,
    diff: String,
    document: String,
}

/// What an apply will do, and what must still hold when it commits.
struct Plan {
    steps: Vec<Step>,
    preconditions: Vec<Precondition>,
}

impl AdminService {
    pub(super) async fn apply_documents(
        &self,
        caller: &Caller,
        request: pb::ApplyRequest,
    ) -> Result<Response<pb::ApplyResponse>, Status> {
        let action = if request.dry_run {
            "apply --dry-run"
        } else {
            "apply"
        };
        let documents = match parse(&request) {
            Ok(documents) => documents,
            Err(error) => return self.finish(caller, action, Vec::new(), Err(error)).await,
        };

        let targets: Vec<String> = documents.iter().map(|d| d.key().store_key()).collect();
        for document in &documents {
            let key = document.key();
            let permission = Permission::on(Verb::Apply, key.kind, &key.namespace);
            self.authorize(caller, action, permission, &targets).await?;
        }

        let result = self
            .apply_planned(caller, &documents, request.dry_run)
            .await;
        self.finish(caller, action, targets, result).await
    }

    async fn apply_planned(
        &self,
        caller: &Caller,
        documents: &[Document],
        dry_run: bool,
    ) -> Result<pb::ApplyResponse, AdminError> {
        let explicit = documents.iter().any(|d| d.metadata.revision.is_some());

        for _ in 0..MAX_ATTEMPTS {
            let plan = self.plan(documents).await?;
            if dry_run {
                return Ok(response(self.state.store.revision(), plan, true));
            }

            match self.commit(caller, &plan).await {
                Ok(revision) => return Ok(response(revision, plan, false)),
                Err(AdminError::Store(StoreError::Conflict { key, detail })) if !explicit => {
                    tracing::debug!(%key, %detail, "apply lost a race; planning again");
                }
                Err(AdminError::Store(StoreError::Conflict { key, detail })) => {
                    return Err(AdminError::Conflict(format!(
                        "{key} {detail}; read it again and apply the new revision"
                    )));
                }
                Err(error) => return Err(error),
            }
        }
        Err(AdminError::Conflict(
            "the resources kept changing while applying; try again".into(),
        ))
    }

    async fn plan(&self, documents: &[Document]) -> Result<Plan, AdminError> {
        let in_batch: HashSet<String> = documents.iter().map(|d| d.key().store_key()).collect();
        let mut plan = Plan {
            steps: Vec::new(),
            preconditions: Vec::new(),
        };

        for (index, document) in documents.iter().enumerate() {
            let key = document.key();
            let current = self.state.store.get(&key.store_key()).await?;
            check_revision(index, document, current.as_ref())?;
            self.check_references(index, document, &in_batch, &mut plan.preconditions)
                .await?;
            plan.steps
                .push(step(document, current.as_ref(), &mut plan.preconditions)?);
        }
        Ok(plan)
    }

    async fn check_references(
        &self,
        index: usize,
        document: &Document,
        in_batch: &HashSet<String>,
        preconditions: &mut Vec<Precondition>,
    ) -> Result<(), AdminError> {
        for reference in document.references() {
            let key = reference.store_key();
            if in_batch.contains(&key) {
                continue;
            }
            if self.state.store.get(&key).await?.is_none() {
                let field = reference_field(document, &reference);
                return Err(AdminError::Invalid(format!(
                    "doc {} ({}): {field}: {reference} does not exist",
                    index + 1,
                    document.key()
                )));
            }
            preconditions.push(Precondition::Present { key });
        }
        Ok(())
    }

    async fn commit(&self, caller: &Caller, plan: &Plan) -> Result<u64, AdminError> {
        let changed: Vec<&Step> = plan
            .steps
            .iter()
            .filter(|s| s.action != pb::ChangeAction::Unchanged)
            .collect();
        let targets: Vec<String> = changed.iter().map(|s| s.key.store_key()).collect();

        if changed.is_empty() {
            let record =
                AuditRecord::now(&caller.identity, "apply", Outcome::Ok).with_detail("no changes");
            self.state.store.audit(record).await?;
            return Ok(self.state.store.revision());
        }

        let mutations = changed
            .iter()
            .map(|s| Mutation::Put {
                key: s.key.store_key(),
                document: s.document.clone(),
            })
            .collect();
        let audit = AuditRecord::now(&caller.identity, "apply", Outcome::Ok).with_targets(targets);
        let request = WriteRequest {
            mutations,
            preconditions: plan.preconditions.clone(),
            audit,
        };

        let revision = self.state.store.write(request).await?;
        tracing::info!(actor = %caller.identity, revision, changed = changed.len(), "applied");
        Ok(revision)
    }
}

fn parse(request: &pb::ApplyRequest) -> Result<Vec<Document>, AdminError> {
    if request.content.len() > MAX_APPLY_BYTES {
        return Err(AdminError::TooLarge(format!(
            "apply of {} bytes is larger than the limit of {MAX_APPLY_BYTES}",
            request.content.len()
        )));
    }

    let source = if request.source.is_empty() {
        "request"
    } else {
        &request.source
    };
    let documents = palisade_model::parse_and_validate(&request.content).map_err(|errors| {
        let count = errors.0.len();
        let noun = if count == 1 { "error" } else { "errors" };
        AdminError::Invalid(format!(
            "{source}: {count} {noun}, nothing applied\n{errors}"
        ))
    })?;
    if documents.is_empty() {
        return Err(AdminError::Invalid(format!(
            "{source}: no documents to apply"
        )));
    }

    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, document) in documents.iter().enumerate() {
        let key = document.key();
        if let Some(first) = seen.insert(key.store_key(), index + 1) {
            return Err(AdminError::Invalid(format!(
                "{source}: doc {} ({key}): duplicates doc {first}; a resource may appear once per apply",
                index + 1
            )));
        }
    }
    Ok(documents)
}

fn check_revision(
    index: usize,
    document: &Document,
    current: Option<&StoredResource>,
) -> Result<(), AdminError> {
    let Some(expected) = document.metadata.revision else {
        return Ok(());
    };
    let found = current.map_or(0, |c| c.revision);
    if expected == found {
        return Ok(());
    }

    let key = document.key();
    let now = match current {
        Some(current) => format!("{key} is at revision {}", current.revision),
        None => format!("{key} does not exist"),
    };
    Err(AdminError::Conflict(format!(
        "doc {} ({key}): metadata.revision: {expected} is stale; {now}",
        index + 1
    )))
}

/// Decides what one document does and what must hold for it.
fn step(
    document: &Document,
    current: Option<&StoredResource>,
    preconditions: &mut Vec<Precondition>,
) -> Result<Step, AdminError> {
    let key = document.key();
    let mut stored = document.clone();
    stored.metadata.revision = None;
    stored.metadata.create_revision = None;

    let (action, old_yaml) = match current {
        None => {
            preconditions.push(Precondition::Absent {
                key: key.store_key(),
            });
            (pb::ChangeAction::Created, String::new())
        }
        Some(current) => {
            let mut old = document_of(current)?;
            let unchanged = old.same_content(&stored);
            old.metadata.revision = None;
            old.metadata.create_revision = None;
            if !unchanged {
                preconditions.push(Precondition::AtRevision {
                    key: key.store_key(),
                    revision: current.revision,
                });
            }
            let action = if unchanged {
                pb::ChangeAction::Unchanged
            } else {
                pb::ChangeAction::Updated
            };
            (action, old.to_yaml())
        }
    };

    let new_yaml = stored.to_yaml();
    let diff = match action {
        pb::ChangeAction::Unchanged => String::new(),
        _ => unified_diff(&key.store_key(), &old_yaml, &new_yaml),
    };
    Ok(Step {
        key,
        action,
        diff,
        document: stored.to_json(),
    })
}

/// The field of `document` that names `to`, with its index in a list.
fn reference_field(document: &Document, to: &ResourceKey) -> String {
    match (&document.spec, to.kind) {
        (Spec::Workload(_), Kind::Service) => "spec.service".into(),
        (Spec::Workload(_), Kind::Node) => "spec.node".into(),
        (Spec::RequestAuthentication(spec), Kind::JwtIssuer) => {
            let index = spec.issuers.iter().position(|rule| rule.issuer == to.name);
            format!("spec.issuers[{}].issuer", index.unwrap_or_default())
        }
        (_, Kind::Service) => "spec.targetService".into(),
        (_, Kind::AdminRole) => "spec.role".into(),
        _ => "spec".into(),
    }
}

fn response(revision: u64, plan: Plan, dry_run: bool) -> pb::ApplyResponse {
    let changes = plan
        .steps
        .into_iter()
        .map(|step| pb::Change {
            kind: step.key.kind.as_str().to_owned(),
            namespace: step.key.namespace,
            name: step.key.name,
            action: step.action as i32,
            diff: step.diff,
        })
        .collect();
    pb::ApplyResponse {
        revision,
        changes,
        dry_run,
    }
}

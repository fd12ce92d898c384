//! The identity schedule: rotates CAs and JWT keys on time (when automatic
//! rotation is on) and forgets records whose certificates and tokens have
//! long expired.

use std::sync::Arc;
use std::time::Duration;

use super::authority::{Authority, KeyKind, Signed};
use super::error::IdentityError;
use super::keyset;
use super::records::{
    self, AuthorityRecord, ISSUED_CERTIFICATE, IssuedRecord, JOIN_TOKEN, JoinTokenRecord,
    SigningKeyRecord,
};
use super::rotation::{KeyView, Lifecycle, PUBLICATION_WINDOW_SECS, Schedule, Step, next_step};
use crate::audit::{AuditRecord, Outcome};
use crate::store::{Mutation, Precondition, WriteRequest};
use crate::tasks::AbortOnDrop;

/// How often the schedule looks.
const TICK: Duration = Duration::from_secs(60);
/// Who the audit log says acted.
const ACTOR: &str = "palisade-cp schedule";
/// Records are kept this long past their expiry.
const KEEP_EXPIRED_SECS: i64 = 3600;
/// Used and expired join tokens are kept this long, to recognise replays.
const KEEP_TOKENS_SECS: i64 = 24 * 3600;
/// At most this many records are forgotten in one write.
const PRUNE_BATCH: usize = 500;
/// A successor is published at least this long before the schedule lets it
/// sign: well past the window that a manual activation must wait.
const MIN_PUBLISHED_SECS: i64 = 3600;
const _: () = assert!(MIN_PUBLISHED_SECS >= PUBLICATION_WINDOW_SECS);

/// Starts the schedule.
pub fn spawn(authority: Arc<Authority>) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            if authority.config().auto_rotate {
                rotate(&authority, KeyKind::Ca).await;
                rotate(&authority, KeyKind::Jwt).await;
            }
            if let Err(error) = prune(&authority).await {
                tracing::warn!(%error, "pruning expired identity records failed");
            }
        }
    }))
}

/// Takes the schedule's next step for one key set, if it is time.
async fn rotate(authority: &Authority, kind: KeyKind) {
    let step = match due(authority, kind).await {
        Ok(step) => step,
        Err(error) => {
            tracing::warn!(?kind, %error, "reading the keys for the schedule failed");
            return;
        }
    };
    let Some(step) = step else { return };

    tracing::info!(?kind, ?step, "scheduled rotation step");
    let done = match &step {
        Step::Prepare => authority.prepare(kind, ACTOR).await,
        Step::Activate(id) => authority.activate(kind, ACTOR, Some(id), false).await,
        Step::Retire(id) => authority.retire(kind, ACTOR, Some(id), false).await,
    };
    if let Err(error) = done {
        tracing::warn!(?kind, ?step, %error, "scheduled rotation step failed");
    }
}

/// The step due now for one key set.
pub async fn due(authority: &Authority, kind: KeyKind) -> Result<Option<Step>, IdentityError> {
    let config = authority.config();
    let longest_leaf = config.node_ttl.max(config.workload_ttl).as_secs() as i64;
    let schedule = Schedule {
        prepare_at: 0.5,
        activate_at: 0.75,
        min_published_secs: MIN_PUBLISHED_SECS.max(longest_leaf),
    };

    let keys = match kind {
        KeyKind::Ca => authority_views(authority).await?,
        KeyKind::Jwt => signing_key_views(authority).await?,
    };
    let views: Vec<KeyView<'_>> = keys.iter().map(OwnedView::view).collect();
    Ok(next_step(&views, authority.now(), &schedule))
}

/// What [`KeyView`] borrows, owned.
struct OwnedView {
    id: String,
    life: Lifecycle,
    not_before: i64,
    not_after: i64,
    signed_until: i64,
}

impl OwnedView {
    fn view(&self) -> KeyView<'_> {
        KeyView {
            id: &self.id,
            life: &self.life,
            not_before: self.not_before,
            not_after: self.not_after,
            signed_until: self.signed_until,
        }
    }
}

async fn authority_views(authority: &Authority) -> Result<Vec<OwnedView>, IdentityError> {
    let store = authority.store();
    let mut views = Vec::new();
    for key in keyset::load::<AuthorityRecord>(store).await? {
        views.push(OwnedView {
            signed_until: key.record.signed_until(store).await?,
            id: key.record.id,
            life: key.record.life,
            not_before: key.record.not_before,
            not_after: key.record.not_after,
        });
    }
    Ok(views)
}

async fn signing_key_views(authority: &Authority) -> Result<Vec<OwnedView>, IdentityError> {
    let store = authority.store();
    let mut views = Vec::new();
    for key in keyset::load::<SigningKeyRecord>(store).await? {
        views.push(OwnedView {
            signed_until: key.record.signed_until(store).await?,
            not_before: key.record.life.created,
            id: key.record.kid,
            life: key.record.life,
            not_after: key.record.not_after,
        });
    }
    Ok(views)
}

/// Forgets issued-certificate records long expired and old join tokens.
async fn prune(authority: &Authority) -> Result<(), IdentityError> {
    let store = authority.store();
    let now = authority.now();

    let issued =
        records::list::<IssuedRecord>(store, &records::prefix(ISSUED_CERTIFICATE, None)).await?;
    let expired_certificates = issued
        .into_iter()
        .filter(|v| v.record.not_after + KEEP_EXPIRED_SECS < now)
        .map(|v| (v.key, v.revision));
    let tokens =
        records::list::<JoinTokenRecord>(store, &records::prefix(JOIN_TOKEN, None)).await?;
    let old_tokens = tokens
        .into_iter()
        .filter(|v| v.record.expires + KEEP_TOKENS_SECS < now)
        .map(|v| (v.key, v.revision));

    let forgettable: Vec<(String, u64)> = expired_certificates.chain(old_tokens).collect();
    for batch in forgettable.chunks(PRUNE_BATCH) {
        forget(authority, batch).await?;
    }
    Ok(())
}

async fn forget(authority: &Authority, batch: &[(String, u64)]) -> Result<(), IdentityError> {
    let mutations = batch
        .iter()
        .map(|(key, _)| Mutation::Delete { key: key.clone() })
        .collect();
    let preconditions = batch
        .iter()
        .map(|(key, revision)| Precondition::AtRevision {
            key: key.clone(),
            revision: *revision,
        })
        .collect();
    let audit = AuditRecord::now(ACTOR, "prune expired records", Outcome::Ok).with_detail(format!(
        "{} records of expired certificates and join tokens",
        batch.len()
    ));

    let request = WriteRequest {
        mutations,
        preconditions,
        audit,
    };
    authority.store().write(request).await?;
    tracing::info!(records = batch.len(), "expired identity records pruned");
    Ok(())
}

#[cfg(test)]
mod tests;

//! The stored transitions of a set of rotating keys, the same for CAs and
//! JWT signing keys: add a prepared key, activate it (the active one turns
//! inactive in the same write), retire an inactive one.
//!
//! Each transition is one store write with its audit entry, conditioned on
//! the records it read being unchanged, so two admins rotating at once
//! cannot leave two active keys.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::records::{self, RecordError, Versioned, encode};
use super::rotation::{KeyState, Lifecycle};
use crate::audit::{AuditRecord, Outcome};
use crate::store::{Mutation, Precondition, Revision, Store, StoreError, WriteRequest};

/// A stored record of a rotating key.
pub trait RotatingRecord: Serialize + DeserializeOwned + Clone + Send + Sync {
    /// The record kind in the store.
    const KIND: &'static str;
    /// What the audit log and errors call the keys, e.g. "CA".
    const NOUN: &'static str;

    fn id(&self) -> &str;
    fn life(&self) -> &Lifecycle;
    fn life_mut(&mut self) -> &mut Lifecycle;
    /// Forgets the private key, when the key retires.
    fn destroy_key(&mut self);
}

/// Why a transition was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    #[error("no {noun} {id:?} exists")]
    NotFound { noun: &'static str, id: String },
    #[error("{noun} {id} is {state}, not {expected}")]
    WrongState {
        noun: &'static str,
        id: String,
        state: &'static str,
        expected: &'static str,
    },
    #[error("there is no {state} {noun}")]
    NoneInState {
        noun: &'static str,
        state: &'static str,
    },
    #[error("{noun} {id} is already prepared; activate or retire it first")]
    AlreadyPrepared { noun: &'static str, id: String },
    #[error(
        "{noun} {id} signed what stays valid until unix time {until}; \
         retire it after that, or force it"
    )]
    StillSigned {
        noun: &'static str,
        id: String,
        until: i64,
    },
    #[error("another rotation changed the {noun}s meanwhile; try again")]
    Raced { noun: &'static str },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for KeySetError {
    fn from(error: StoreError) -> Self {
        KeySetError::Store(error)
    }
}

/// Every key of the set, in key order.
pub async fn load<R: RotatingRecord>(store: &dyn Store) -> Result<Vec<Versioned<R>>, KeySetError> {
    Ok(records::list(store, &records::prefix(R::KIND, None)).await?)
}

/// The store key of a record.
pub fn record_key<R: RotatingRecord>(id: &str) -> String {
    records::key(R::KIND, "", id)
}

/// Stores a new key; a prepared key is refused while another is prepared.
pub async fn add<R: RotatingRecord>(
    store: &dyn Store,
    actor: &str,
    record: R,
) -> Result<Revision, KeySetError> {
    let existing = load::<R>(store).await?;
    if record.life().state == KeyState::Prepared
        && let Some(prepared) = in_state(&existing, KeyState::Prepared)
    {
        return Err(KeySetError::AlreadyPrepared {
            noun: R::NOUN,
            id: prepared.record.id().to_owned(),
        });
    }

    let key = record_key::<R>(record.id());
    let mut preconditions = vec![Precondition::Absent { key: key.clone() }];
    preconditions.extend(unchanged(&existing));
    let verb = match record.life().state {
        KeyState::Active => "create",
        _ => "prepare",
    };
    let mutations = vec![Mutation::Put {
        key,
        document: encode(&record),
    }];
    write::<R>(store, actor, verb, record.id(), mutations, preconditions).await
}

/// Makes the prepared key `id` (or the only prepared key) active and the
/// active one inactive; `deactivate` may note more on the old record.
pub async fn activate<R: RotatingRecord>(
    store: &dyn Store,
    actor: &str,
    id: Option<&str>,
    now: i64,
    deactivate: impl FnOnce(&mut R),
) -> Result<Revision, KeySetError> {
    let existing = load::<R>(store).await?;
    let target = pick(&existing, id, KeyState::Prepared)?;

    let mut next = target.record.clone();
    next.life_mut().activate(now);
    let mut mutations = vec![put(&next)];
    let mut preconditions = vec![at(target)];
    if let Some(current) = in_state(&existing, KeyState::Active) {
        let mut old = current.record.clone();
        old.life_mut().deactivate(now);
        deactivate(&mut old);
        mutations.push(put(&old));
        preconditions.push(at(current));
    }
    write::<R>(
        store,
        actor,
        "activate",
        next.id(),
        mutations,
        preconditions,
    )
    .await
}

/// Retires the inactive key `id`, refusing while `signed_until(record)` is
/// still ahead of `now` unless forced.
pub async fn retire<R: RotatingRecord>(
    store: &dyn Store,
    actor: &str,
    id: &str,
    force: bool,
    now: i64,
    signed_until: i64,
) -> Result<Revision, KeySetError> {
    let existing = load::<R>(store).await?;
    let target = pick(&existing, Some(id), KeyState::Inactive)?;
    if signed_until >= now && !force {
        return Err(KeySetError::StillSigned {
            noun: R::NOUN,
            id: id.to_owned(),
            until: signed_until,
        });
    }

    let mut retired = target.record.clone();
    retired.life_mut().retire(now);
    retired.destroy_key();
    let verb = if force { "retire --force" } else { "retire" };
    write::<R>(
        store,
        actor,
        verb,
        id,
        vec![put(&retired)],
        vec![at(target)],
    )
    .await
}

/// The keys in `state`.
pub fn all_in_state<R: RotatingRecord>(
    keys: &[Versioned<R>],
    state: KeyState,
) -> impl Iterator<Item = &Versioned<R>> {
    keys.iter().filter(move |k| k.record.life().state == state)
}

fn in_state<R: RotatingRecord>(keys: &[Versioned<R>], state: KeyState) -> Option<&Versioned<R>> {
    all_in_state(keys, state).next()
}

fn pick<'a, R: RotatingRecord>(
    keys: &'a [Versioned<R>],
    id: Option<&str>,
    expected: KeyState,
) -> Result<&'a Versioned<R>, KeySetError> {
    let found = match id {
        Some(id) => {
            keys.iter()
                .find(|k| k.record.id() == id)
                .ok_or_else(|| KeySetError::NotFound {
                    noun: R::NOUN,
                    id: id.to_owned(),
                })?
        }
        None => in_state(keys, expected).ok_or(KeySetError::NoneInState {
            noun: R::NOUN,
            state: expected.as_str(),
        })?,
    };

    let state = found.record.life().state;
    if state != expected {
        return Err(KeySetError::WrongState {
            noun: R::NOUN,
            id: found.record.id().to_owned(),
            state: state.as_str(),
            expected: expected.as_str(),
        });
    }
    Ok(found)
}

fn put<R: RotatingRecord>(record: &R) -> Mutation {
    Mutation::Put {
        key: record_key::<R>(record.id()),
        document: encode(record),
    }
}

fn at<R>(versioned: &Versioned<R>) -> Precondition {
    Precondition::AtRevision {
        key: versioned.key.clone(),
        revision: versioned.revision,
    }
}

fn unchanged<R>(keys: &[Versioned<R>]) -> Vec<Precondition> {
    keys.iter().map(at).collect()
}

async fn write<R: RotatingRecord>(
    store: &dyn Store,
    actor: &str,
    verb: &str,
    id: &str,
    mutations: Vec<Mutation>,
    preconditions: Vec<Precondition>,
) -> Result<Revision, KeySetError> {
    let action = format!("{} {verb}", R::NOUN.to_ascii_lowercase());
    let audit =
        AuditRecord::now(actor, &action, Outcome::Ok).with_targets(vec![record_key::<R>(id)]);
    let request = WriteRequest {
        mutations,
        preconditions,
        audit,
    };

    match store.write(request).await {
        Ok(revision) => {
            tracing::info!(actor, key = id, action, revision, "key set changed");
            Ok(revision)
        }
        Err(StoreError::Conflict { .. }) => Err(KeySetError::Raced { noun: R::NOUN }),
        Err(error) => Err(error.into()),
    }
}

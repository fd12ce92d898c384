//! The stored transitions of a set of rotating keys, the same for CAs and
//! JWT signing keys: add a prepared key, activate it (the active one turns
//! inactive in the same write), retire an inactive one.
//!
//! Each transition is one store write with its audit entry, conditioned on
//! the records it read being unchanged, so two admins rotating at once
//! cannot leave two active keys. Two guards protect holders unless forced:
//! a key activates only once it has been published long enough for holders
//! to trust it, and retires only once nothing it signed is still valid.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::records::{self, RecordError, Versioned, encode};
use super::rotation::{KeyState, Lifecycle, PUBLICATION_WINDOW_SECS, publication_wait};
use crate::audit::{AuditRecord, Outcome};
use crate::store::{Mutation, Precondition, Revision, Store, StoreError, WriteRequest};

/// A stored record of a rotating key.
pub trait RotatingRecord: Serialize + DeserializeOwned + Clone + Send + Sync {
    /// The record kind in the store.
    const KIND: &'static str;
    /// What the audit log and errors call the keys, e.g. "CA".
    const NOUN: &'static str;
    /// What publishes the keys to holders, e.g. "trust bundle".
    const PUBLISHED_IN: &'static str;

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
        "{noun} {id} was published {published_secs}s ago; holders may keep an older \
         {published_in} for up to {window}s and would reject what it signs, so it may \
         activate in {wait_secs}s, or force it",
        window = PUBLICATION_WINDOW_SECS
    )]
    NotPublishedLongEnough {
        noun: &'static str,
        id: String,
        published_in: &'static str,
        published_secs: i64,
        wait_secs: i64,
    },
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

/// Who changes a key set, and when.
#[derive(Clone, Copy, Debug)]
pub struct Change<'a> {
    pub actor: &'a str,
    /// Unix seconds.
    pub now: i64,
    /// Skips the guard that protects holders: for activation, that the key
    /// was published long enough; for retirement, that nothing it signed
    /// is still valid.
    pub force: bool,
}

impl Change<'_> {
    fn verb(&self, verb: &'static str) -> String {
        if self.force {
            format!("{verb} --force")
        } else {
            verb.to_owned()
        }
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
/// Refused, unless forced, while the key has been published for less than
/// [`PUBLICATION_WINDOW_SECS`].
pub async fn activate<R: RotatingRecord>(
    store: &dyn Store,
    change: Change<'_>,
    id: Option<&str>,
    deactivate: impl FnOnce(&mut R),
) -> Result<Revision, KeySetError> {
    let existing = load::<R>(store).await?;
    let target = pick(&existing, id, KeyState::Prepared)?;
    check_published(&target.record, change)?;

    let mut next = target.record.clone();
    next.life_mut().activate(change.now);
    let mut mutations = vec![put(&next)];
    let mut preconditions = vec![at(target)];
    if let Some(current) = in_state(&existing, KeyState::Active) {
        let mut old = current.record.clone();
        old.life_mut().deactivate(change.now);
        deactivate(&mut old);
        mutations.push(put(&old));
        preconditions.push(at(current));
    }

    let verb = change.verb("activate");
    write::<R>(
        store,
        change.actor,
        &verb,
        next.id(),
        mutations,
        preconditions,
    )
    .await
}

/// Retires the inactive key `id`, refusing while `signed_until(record)` is
/// still ahead of now unless forced.
pub async fn retire<R: RotatingRecord>(
    store: &dyn Store,
    change: Change<'_>,
    id: &str,
    signed_until: i64,
) -> Result<Revision, KeySetError> {
    let existing = load::<R>(store).await?;
    let target = pick(&existing, Some(id), KeyState::Inactive)?;
    if signed_until >= change.now && !change.force {
        return Err(KeySetError::StillSigned {
            noun: R::NOUN,
            id: id.to_owned(),
            until: signed_until,
        });
    }

    let mut retired = target.record.clone();
    retired.life_mut().retire(change.now);
    retired.destroy_key();
    let (mutations, preconditions) = (vec![put(&retired)], vec![at(target)]);
    let verb = change.verb("retire");
    write::<R>(store, change.actor, &verb, id, mutations, preconditions).await
}

/// Refuses to activate a key that holders may not trust yet, unless forced.
fn check_published<R: RotatingRecord>(record: &R, change: Change<'_>) -> Result<(), KeySetError> {
    let life = record.life();
    match publication_wait(life, change.now) {
        Some(wait_secs) if !change.force => Err(KeySetError::NotPublishedLongEnough {
            noun: R::NOUN,
            id: record.id().to_owned(),
            published_in: R::PUBLISHED_IN,
            published_secs: change.now - life.created,
            wait_secs,
        }),
        _ => Ok(()),
    }
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

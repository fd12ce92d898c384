//! The identity authority: the control plane's CAs and JWT keys, their
//! rotation, and the snapshot of key material every issuance signs with.
//!
//! Rotations are store writes; after each one the authority reloads its
//! snapshot and publishes it on a watch channel, which the TLS listener,
//! the JWKS endpoint and the data directory's bundle file follow.

use std::sync::Arc;

use tokio::sync::{Mutex, RwLock, RwLockReadGuard, watch};

use super::authorities::{self, AuthorityError};
use super::clock::{Clock, SystemClock};
use super::error::IdentityError;
use super::keyset::{self, Change, RotatingRecord};
use super::material::{KeyMaterial, MaterialError};
use super::records::{AuthorityRecord, SigningKeyRecord, Versioned};
use super::rotation::{KeyState, Lifecycle};
use super::server_certificate;
use super::signing_keys;
use crate::barrier::Barrier;
use crate::config::IdentityConfig;
use crate::store::{Revision, Store};

pub use super::clock::now_unix;

/// Which key set a rotation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Ca,
    Jwt,
}

/// One key as `status` shows it.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    pub id: String,
    pub life: Lifecycle,
    pub not_before: i64,
    pub not_after: i64,
    pub signed_until: i64,
    pub certificate_pem: String,
}

/// A key set as `status` shows it.
#[derive(Clone, Debug)]
pub struct KeySetInfo {
    pub keys: Vec<KeyInfo>,
    pub revision: Revision,
    /// The trust bundle, or the JWKS.
    pub published: String,
}

/// The control plane's signing authority.
pub struct Authority {
    store: Arc<dyn Store>,
    barrier: Arc<Barrier>,
    trust_domain: String,
    config: IdentityConfig,
    material: watch::Sender<Arc<KeyMaterial>>,
    rotating: Mutex<()>,
    /// Held shared while a JWT-SVID is dated and signed, and exclusively
    /// while the JWT signing key changes, so that no token the old key signs
    /// is dated after the bound its retirement waits for.
    minting: RwLock<()>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Loads the key material and makes sure the server's own certificate
    /// comes from the active CA.
    pub async fn open(
        store: Arc<dyn Store>,
        barrier: Arc<Barrier>,
        trust_domain: &str,
        config: IdentityConfig,
    ) -> Result<Arc<Self>, MaterialError> {
        Self::open_with_clock(store, barrier, trust_domain, config, Arc::new(SystemClock)).await
    }

    /// Opens the authority as [`Authority::open`] does, reading the time
    /// from `clock` for its decisions: rotation, expiry, token lifetimes.
    pub async fn open_with_clock(
        store: Arc<dyn Store>,
        barrier: Arc<Barrier>,
        trust_domain: &str,
        config: IdentityConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, MaterialError> {
        let material = KeyMaterial::load(&*store, &barrier, trust_domain).await?;
        let authority = Arc::new(Self {
            store,
            barrier,
            trust_domain: trust_domain.to_owned(),
            config,
            material: watch::Sender::new(Arc::new(material)),
            rotating: Mutex::new(()),
            minting: RwLock::new(()),
            clock,
        });

        authority.ensure_server_certificate().await?;
        Ok(authority)
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    pub fn barrier(&self) -> &Barrier {
        &self.barrier
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    /// The current time in Unix seconds, by the authority's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The key material now.
    pub fn current(&self) -> Arc<KeyMaterial> {
        self.material.borrow().clone()
    }

    /// Follows the key material as it changes.
    pub fn watch(&self) -> watch::Receiver<Arc<KeyMaterial>> {
        self.material.subscribe()
    }

    /// Reads the key material again and publishes it.
    pub async fn reload(&self) -> Result<(), MaterialError> {
        let material = KeyMaterial::load(&*self.store, &self.barrier, &self.trust_domain).await?;
        self.material.send_replace(Arc::new(material));
        Ok(())
    }

    /// Prepares a new CA or JWT key.
    pub async fn prepare(&self, kind: KeyKind, actor: &str) -> Result<Revision, IdentityError> {
        let _rotating = self.rotating.lock().await;
        let life = Lifecycle::prepared(self.now());

        let revision = match kind {
            KeyKind::Ca => {
                let (_, record) = authorities::create(
                    &*self.store,
                    &self.barrier,
                    &self.trust_domain,
                    self.config.ca_lifetime,
                    life,
                )
                .await
                .map_err(authority_error)?;
                keyset::add(&*self.store, actor, record).await?
            }
            KeyKind::Jwt => {
                let (_, record) =
                    signing_keys::create(&self.barrier, life, self.config.jwt_key_lifetime)
                        .map_err(|e| IdentityError::Internal(e.to_string()))?;
                keyset::add(&*self.store, actor, record).await?
            }
        };
        self.settle(kind).await?;
        Ok(revision)
    }

    /// Makes the prepared key (or the one named) the one that signs.
    /// Refused, unless forced, until the key has been published long
    /// enough for holders to trust it.
    pub async fn activate(
        &self,
        kind: KeyKind,
        actor: &str,
        id: Option<&str>,
        force: bool,
    ) -> Result<Revision, IdentityError> {
        let _rotating = self.rotating.lock().await;
        let change = Change {
            actor,
            now: self.now(),
            force,
        };

        match kind {
            KeyKind::Ca => {
                let store = &*self.store;
                let revision =
                    keyset::activate::<AuthorityRecord>(store, change, id, |_| {}).await?;
                self.settle(kind).await?;
                Ok(revision)
            }
            KeyKind::Jwt => self.activate_jwt(change, id).await,
        }
    }

    /// Activates a JWT key. Minting waits meanwhile: every token the old
    /// key signed was dated before the old key's bound was read from the
    /// clock, so none outlives it, and every token after this signs with
    /// the new key.
    async fn activate_jwt(
        &self,
        change: Change<'_>,
        id: Option<&str>,
    ) -> Result<Revision, IdentityError> {
        let _minting = self.minting.write().await;
        let valid_until = self.now() + self.config.jwt_svid_ttl.as_secs() as i64;

        let store = &*self.store;
        let revision = keyset::activate::<SigningKeyRecord>(store, change, id, |old| {
            old.tokens_valid_until = Some(valid_until);
        })
        .await?;
        self.settle(KeyKind::Jwt).await?;
        Ok(revision)
    }

    /// Waits until no JWT signing key is changing; while the guard is held,
    /// the active key is the one that signs and its bound is not yet set.
    pub(super) async fn minting(&self) -> RwLockReadGuard<'_, ()> {
        self.minting.read().await
    }

    /// Retires the key named, or every inactive key whose signatures have
    /// all expired.
    pub async fn retire(
        &self,
        kind: KeyKind,
        actor: &str,
        id: Option<&str>,
        force: bool,
    ) -> Result<Revision, IdentityError> {
        let _rotating = self.rotating.lock().await;
        let change = Change {
            actor,
            now: self.now(),
            force,
        };

        let revision = match kind {
            KeyKind::Ca => self.retire_set::<AuthorityRecord>(change, id).await?,
            KeyKind::Jwt => self.retire_set::<SigningKeyRecord>(change, id).await?,
        };
        self.settle(kind).await?;
        Ok(revision)
    }

    async fn retire_set<R: RotatingRecord + Signed>(
        &self,
        change: Change<'_>,
        id: Option<&str>,
    ) -> Result<Revision, IdentityError> {
        let keys = keyset::load::<R>(&*self.store).await?;
        let targets: Vec<&Versioned<R>> = match id {
            Some(id) => keys.iter().filter(|k| k.record.id() == id).collect(),
            None => keyset::all_in_state(&keys, KeyState::Inactive).collect(),
        };
        if targets.is_empty() {
            let error = match id {
                Some(id) => keyset::KeySetError::NotFound {
                    noun: R::NOUN,
                    id: id.to_owned(),
                },
                None => keyset::KeySetError::NoneInState {
                    noun: R::NOUN,
                    state: KeyState::Inactive.as_str(),
                },
            };
            return Err(error.into());
        }

        let mut revision = self.store.revision();
        for target in targets {
            let until = target.record.signed_until(&*self.store).await?;
            let id = target.record.id();
            revision = keyset::retire::<R>(&*self.store, change, id, until).await?;
        }
        Ok(revision)
    }

    /// Reloads after a rotation. A newly active CA first reissues the
    /// server's certificate, so that whoever follows the key material finds
    /// a certificate and key that belong together.
    async fn settle(&self, kind: KeyKind) -> Result<(), IdentityError> {
        let material = KeyMaterial::load(&*self.store, &self.barrier, &self.trust_domain)
            .await
            .map_err(material_error)?;
        if kind == KeyKind::Ca {
            server_certificate::ensure_signed_by(&*self.store, &self.barrier, &material.signer)
                .await
                .map_err(|e| material_error(e.into()))?;
        }
        self.material.send_replace(Arc::new(material));
        Ok(())
    }

    /// Reissues the server's certificate when the active CA did not sign it.
    async fn ensure_server_certificate(&self) -> Result<(), MaterialError> {
        let signer = self.current().signer.clone();
        server_certificate::ensure_signed_by(&*self.store, &self.barrier, &signer).await?;
        Ok(())
    }

    /// The keys of a set, with how long what each signed stays valid.
    pub async fn status(&self, kind: KeyKind) -> Result<KeySetInfo, IdentityError> {
        let material = self.current();
        let revision = self.store.revision();
        match kind {
            KeyKind::Ca => {
                let keys = keyset::load::<AuthorityRecord>(&*self.store).await?;
                let mut infos = Vec::new();
                for key in &keys {
                    infos.push(KeyInfo {
                        signed_until: key.record.signed_until(&*self.store).await?,
                        id: key.record.id.clone(),
                        life: key.record.life.clone(),
                        not_before: key.record.not_before,
                        not_after: key.record.not_after,
                        certificate_pem: key.record.certificate_pem.clone(),
                    });
                }
                Ok(KeySetInfo {
                    keys: infos,
                    revision,
                    published: material.bundle_pem.clone(),
                })
            }
            KeyKind::Jwt => {
                let keys = keyset::load::<SigningKeyRecord>(&*self.store).await?;
                let mut infos = Vec::new();
                for key in &keys {
                    infos.push(KeyInfo {
                        signed_until: key.record.signed_until(&*self.store).await?,
                        id: key.record.kid.clone(),
                        life: key.record.life.clone(),
                        not_before: key.record.life.created,
                        not_after: key.record.not_after,
                        certificate_pem: String::new(),
                    });
                }
                Ok(KeySetInfo {
                    keys: infos,
                    revision,
                    published: material.jwks_json.to_string(),
                })
            }
        }
    }
}

/// How long what a key signed stays valid.
#[tonic::async_trait]
pub trait Signed {
    async fn signed_until(&self, store: &dyn Store) -> Result<i64, IdentityError>;
}

#[tonic::async_trait]
impl Signed for AuthorityRecord {
    async fn signed_until(&self, store: &dyn Store) -> Result<i64, IdentityError> {
        authorities::signed_until(store, &self.id)
            .await
            .map_err(authority_error)
    }
}

#[tonic::async_trait]
impl Signed for SigningKeyRecord {
    async fn signed_until(&self, _store: &dyn Store) -> Result<i64, IdentityError> {
        Ok(match self.life.state {
            KeyState::Prepared => 0,
            KeyState::Active => i64::MAX,
            KeyState::Inactive | KeyState::Retired => self.tokens_valid_until.unwrap_or(i64::MAX),
        })
    }
}

fn authority_error(error: AuthorityError) -> IdentityError {
    match error {
        AuthorityError::Store(store) => IdentityError::Store(store),
        AuthorityError::Record(record) => record.into(),
        other => IdentityError::Internal(other.to_string()),
    }
}

fn material_error(error: MaterialError) -> IdentityError {
    match error {
        MaterialError::KeySet(keyset) => keyset.into(),
        other => IdentityError::Internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests;

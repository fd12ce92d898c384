//! The keys the control plane signs with right now and what verifiers
//! should trust, loaded from the store and unsealed: one snapshot, replaced
//! whole whenever a rotation changes it.

use std::sync::Arc;

use super::authorities::{self, AuthorityError};
use super::jwt::{Jwks, SigningKey};
use super::keyset::{self, KeySetError};
use super::records::{AuthorityRecord, SigningKeyRecord, Versioned};
use super::rotation::KeyState;
use super::server_certificate::ServerCertificateError;
use super::signing_keys::{self, SigningKeyError};
use crate::barrier::Barrier;
use crate::ca::CertificateAuthority;
use crate::store::{Revision, Store};

/// Errors loading the key material.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error(transparent)]
    KeySet(#[from] KeySetError),
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    #[error(transparent)]
    SigningKey(#[from] SigningKeyError),
    #[error(transparent)]
    ServerCertificate(#[from] ServerCertificateError),
    #[error("there is no active {0}; the data directory is incomplete")]
    NoActive(&'static str),
    #[error("there are {count} active {noun}s; the store is inconsistent")]
    SeveralActive { noun: &'static str, count: usize },
}

/// A snapshot of the CAs and JWT keys, with the active ones unsealed.
pub struct KeyMaterial {
    /// The store revision the snapshot was read at.
    pub revision: Revision,
    pub authorities: Vec<Versioned<AuthorityRecord>>,
    pub signing_keys: Vec<Versioned<SigningKeyRecord>>,
    /// The CA that signs.
    pub signer: Arc<CertificateAuthority>,
    /// Every CA certificate verifiers should trust, as PEM.
    pub bundle_pem: String,
    /// The key that signs JWT-SVIDs.
    pub jwt_signer: Arc<SigningKey>,
    pub jwks: Jwks,
    pub jwks_json: Arc<String>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("revision", &self.revision)
            .field("signer", &self.signer.id())
            .field("jwt_signer", &self.jwt_signer.kid())
            .finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// Reads the key sets and unseals the active keys.
    pub async fn load(
        store: &dyn Store,
        barrier: &Barrier,
        trust_domain: &str,
    ) -> Result<Self, MaterialError> {
        let revision = store.revision();
        let authorities = keyset::load::<AuthorityRecord>(store).await?;
        let signing_keys = keyset::load::<SigningKeyRecord>(store).await?;

        let active_ca = only_active(&authorities, "CA", |r| r.life.state)?;
        let signer = authorities::unseal(active_ca, barrier, trust_domain)?;
        let active_jwt = only_active(&signing_keys, "JWT key", |r| r.life.state)?;
        let jwt_signer = signing_keys::unseal(active_jwt, barrier)?;

        let bundle_pem = authorities::bundle(authorities.iter().map(|v| &v.record));
        let jwks = signing_keys::jwks(signing_keys.iter().map(|v| &v.record));
        Ok(Self {
            revision,
            jwks_json: Arc::new(jwks.to_json()),
            jwks,
            bundle_pem,
            signer: Arc::new(signer),
            jwt_signer: Arc::new(jwt_signer),
            authorities,
            signing_keys,
        })
    }

    /// Whether there are any CAs at all, as opposed to a store that
    /// predates them.
    pub async fn any_authority(store: &dyn Store) -> Result<bool, MaterialError> {
        Ok(!keyset::load::<AuthorityRecord>(store).await?.is_empty())
    }
}

fn only_active<'a, R>(
    keys: &'a [Versioned<R>],
    noun: &'static str,
    state: impl Fn(&R) -> KeyState,
) -> Result<&'a R, MaterialError> {
    let active: Vec<&R> = keys
        .iter()
        .map(|v| &v.record)
        .filter(|r| state(r) == KeyState::Active)
        .collect();
    match active.as_slice() {
        [one] => Ok(one),
        [] => Err(MaterialError::NoActive(noun)),
        many => Err(MaterialError::SeveralActive {
            noun,
            count: many.len(),
        }),
    }
}

//! The data directory: where each file lives, and opening an initialized
//! one (unseal the barrier, open the store, load the CA and TLS keys).
//!
//! ```text
//! <data-dir>/barrier.json     the data key, wrapped by the master key
//! <data-dir>/store/           the sled store (resources, logs, sealed keys)
//! <data-dir>/ca.pem           the trust bundle (public)
//! <data-dir>/admin/           the first admin's certificate, key and bundle
//! <data-dir>/admin.addr       the admin API's bound address, while serving
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::audit::AuditChain;
use crate::barrier::{Barrier, BarrierError, MasterKey};
use crate::ca::CertificateAuthority;
use crate::identity::authorities::{self, AuthorityError};
use crate::identity::keyset::{self, KeySetError};
use crate::identity::records::AuthorityRecord;
use crate::identity::rotation::KeyState;
use crate::store::sled::SledStore;
use crate::store::{Store, StoreError};

/// System keys in the store.
pub mod keys {
    pub const TRUST_DOMAIN: &str = "trust-domain";
    pub const SERVER_CERT: &str = "tls/server/cert";
    pub const SERVER_KEY: &str = "tls/server/key";
}

/// Errors opening a data directory.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0} is not initialized: run `palisade-cp init` first")]
    NotInitialized(PathBuf),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    #[error(transparent)]
    KeySet(#[from] KeySetError),
    #[error("the store holds no active CA; the data directory is incomplete")]
    NoActiveCa,
    #[error("the store lacks {0}; the data directory is incomplete")]
    Missing(&'static str),
}

/// Paths inside a data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn store(&self) -> PathBuf {
        self.root.join("store")
    }

    pub fn bundle(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    pub fn admin(&self) -> PathBuf {
        self.root.join("admin")
    }

    pub fn is_initialized(&self) -> bool {
        Barrier::exists(&self.root)
    }
}

/// An unsealed, open data directory.
pub struct Opened {
    pub barrier: Barrier,
    pub store: Arc<SledStore>,
    pub trust_domain: String,
}

impl Opened {
    /// Unseals the barrier with `master` and opens the store.
    pub async fn open(dir: &DataDir, master: &MasterKey) -> Result<Self, OpenError> {
        if !dir.is_initialized() {
            return Err(OpenError::NotInitialized(dir.root().to_owned()));
        }
        let barrier = Barrier::unseal(dir.root(), master)?;
        let store = SledStore::open(&dir.store(), AuditChain::new(barrier.audit_key()))?;

        let trust_domain = store
            .system_get(keys::TRUST_DOMAIN)
            .await?
            .ok_or(OpenError::Missing(keys::TRUST_DOMAIN))?;
        let trust_domain = String::from_utf8_lossy(&trust_domain).into_owned();

        Ok(Self {
            barrier,
            store: Arc::new(store),
            trust_domain,
        })
    }

    /// Loads the active CA, unsealing its key.
    pub async fn certificate_authority(&self) -> Result<CertificateAuthority, OpenError> {
        let authorities = keyset::load::<AuthorityRecord>(&*self.store).await?;
        let active = keyset::all_in_state(&authorities, KeyState::Active)
            .next()
            .ok_or(OpenError::NoActiveCa)?;
        Ok(authorities::unseal(
            &active.record,
            &self.barrier,
            &self.trust_domain,
        )?)
    }

    /// Reads a system value that must exist.
    pub async fn system(&self, key: &'static str) -> Result<Vec<u8>, OpenError> {
        self.store
            .system_get(key)
            .await?
            .ok_or(OpenError::Missing(key))
    }
}

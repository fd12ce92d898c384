//! The CAs as stored: making them (a root, or an intermediate under an
//! upstream CA), sealing and unsealing their keys, the trust bundle they
//! make together, and how long what each one signed stays valid.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::keyset::RotatingRecord;
use super::records::{
    self, AuthorityRecord, ISSUED_CERTIFICATE, IssuedRecord, RecordError, TRUST_AUTHORITY,
};
use super::rotation::Lifecycle;
use crate::barrier::{Barrier, BarrierError, SecretBytes};
use crate::ca::{CaError, CertificateAuthority};
use crate::store::{Store, StoreError};

/// System keys of the upstream CA that intermediates are made under.
pub const UPSTREAM_CHAIN: &str = "ca/upstream/chain";
pub const UPSTREAM_KEY: &str = "ca/upstream/key";

/// Errors making or opening a CA.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("CA {0} has no private key left")]
    NoKey(String),
    #[error("CA {id}'s sealed key is not base64")]
    BadSealedKey { id: String },
}

impl RotatingRecord for AuthorityRecord {
    const KIND: &'static str = TRUST_AUTHORITY;
    const NOUN: &'static str = "CA";
    const PUBLISHED_IN: &'static str = "trust bundle";

    fn id(&self) -> &str {
        &self.id
    }

    fn life(&self) -> &Lifecycle {
        &self.life
    }

    fn life_mut(&mut self) -> &mut Lifecycle {
        &mut self.life
    }

    fn destroy_key(&mut self) {
        self.sealed_key = None;
    }
}

/// An upstream CA, for running Palisade as an intermediate.
#[derive(Debug)]
pub struct Upstream {
    pub chain_pem: String,
    pub key_pem: SecretBytes,
}

/// Makes a new CA: an intermediate under the stored upstream if there is
/// one, a root otherwise. Returns it with its record, key sealed.
pub async fn create(
    store: &dyn Store,
    barrier: &Barrier,
    trust_domain: &str,
    lifetime: Duration,
    life: Lifecycle,
) -> Result<(CertificateAuthority, AuthorityRecord), AuthorityError> {
    let (ca, key) = match upstream(store, barrier).await? {
        Some(upstream) => CertificateAuthority::create_intermediate(
            trust_domain,
            &upstream.chain_pem,
            &upstream.key_pem,
            lifetime,
        )?,
        None => CertificateAuthority::create_root_with_lifetime(trust_domain, lifetime)?,
    };
    let record = seal(&ca, &key, barrier, life)?;
    Ok((ca, record))
}

/// Stores the upstream CA that later intermediates are made under, its key
/// sealed.
pub async fn store_upstream(
    store: &dyn Store,
    barrier: &Barrier,
    upstream: &Upstream,
) -> Result<(), AuthorityError> {
    let sealed = barrier.seal(UPSTREAM_KEY, upstream.key_pem.expose())?;
    store
        .system_put(UPSTREAM_CHAIN, upstream.chain_pem.as_bytes().to_vec())
        .await?;
    store.system_put(UPSTREAM_KEY, sealed).await?;
    Ok(())
}

async fn upstream(
    store: &dyn Store,
    barrier: &Barrier,
) -> Result<Option<Upstream>, AuthorityError> {
    let (Some(chain), Some(sealed)) = (
        store.system_get(UPSTREAM_CHAIN).await?,
        store.system_get(UPSTREAM_KEY).await?,
    ) else {
        return Ok(None);
    };
    Ok(Some(Upstream {
        chain_pem: String::from_utf8_lossy(&chain).into_owned(),
        key_pem: barrier.open(UPSTREAM_KEY, &sealed)?,
    }))
}

/// The record of a CA, its key sealed under a purpose that names the CA.
pub fn seal(
    ca: &CertificateAuthority,
    key: &SecretBytes,
    barrier: &Barrier,
    life: Lifecycle,
) -> Result<AuthorityRecord, AuthorityError> {
    let id = ca.id();
    let sealed = barrier.seal(&key_purpose(&id), key.expose())?;
    let upstream_part = ca
        .chain_pem()
        .strip_prefix(ca.certificate_pem())
        .unwrap_or_default()
        .to_owned();

    Ok(AuthorityRecord {
        life,
        certificate_pem: ca.certificate_pem().to_owned(),
        chain_pem: upstream_part,
        anchor_pem: ca.bundle_pem().to_owned(),
        not_before: ca.not_before().unix_timestamp(),
        not_after: ca.not_after().unix_timestamp(),
        sealed_key: Some(BASE64.encode(sealed)),
        id,
    })
}

/// Opens a stored CA so that it can sign.
pub fn unseal(
    record: &AuthorityRecord,
    barrier: &Barrier,
    trust_domain: &str,
) -> Result<CertificateAuthority, AuthorityError> {
    let sealed = record
        .sealed_key
        .as_deref()
        .ok_or_else(|| AuthorityError::NoKey(record.id.clone()))?;
    let sealed = BASE64
        .decode(sealed)
        .map_err(|_| AuthorityError::BadSealedKey {
            id: record.id.clone(),
        })?;
    let key = barrier.open(&key_purpose(&record.id), &sealed)?;

    let upstream = format!("{}{}", record.chain_pem, upstream_anchor(record));
    Ok(CertificateAuthority::load_with_chain(
        trust_domain,
        &record.certificate_pem,
        &key,
        &upstream,
    )?)
}

/// The anchor, when it is not the CA itself.
fn upstream_anchor(record: &AuthorityRecord) -> &str {
    if record.anchor_pem == record.certificate_pem {
        ""
    } else {
        &record.anchor_pem
    }
}

/// The trust bundle: the anchors of every CA that is not retired, each once.
pub fn bundle<'a>(records: impl IntoIterator<Item = &'a AuthorityRecord>) -> String {
    let mut anchors: Vec<&str> = Vec::new();
    for record in records {
        if record.life.state.is_published() && !anchors.contains(&record.anchor_pem.as_str()) {
            anchors.push(&record.anchor_pem);
        }
    }
    anchors.concat()
}

/// The last expiry of the recorded certificates that CA `id` signed; 0 if
/// none are recorded.
pub async fn signed_until(store: &dyn Store, id: &str) -> Result<i64, AuthorityError> {
    let issued =
        records::list::<IssuedRecord>(store, &records::prefix(ISSUED_CERTIFICATE, None)).await?;
    Ok(issued
        .iter()
        .filter(|v| v.record.authority == id)
        .map(|v| v.record.not_after)
        .max()
        .unwrap_or(0))
}

fn key_purpose(id: &str) -> String {
    format!("ca/{id}/key")
}

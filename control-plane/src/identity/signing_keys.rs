//! The JWT signing keys as stored: making them, sealing and unsealing them,
//! and the JWKS they publish together.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::jwt::{Jwks, JwtError, SigningKey};
use super::keyset::RotatingRecord;
use super::records::{JWT_SIGNING_KEY, SigningKeyRecord};
use super::rotation::Lifecycle;
use crate::barrier::{Barrier, BarrierError};

/// Errors making or opening a signing key.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error(transparent)]
    Jwt(#[from] JwtError),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    #[error("JWT signing key {0} has no private key left")]
    NoKey(String),
    #[error("JWT signing key {0}'s sealed key is not base64")]
    BadSealedKey(String),
}

impl RotatingRecord for SigningKeyRecord {
    const KIND: &'static str = JWT_SIGNING_KEY;
    const NOUN: &'static str = "JWT key";
    const PUBLISHED_IN: &'static str = "JWKS";

    fn id(&self) -> &str {
        &self.kid
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

/// Makes a new key and its record, key sealed. `lifetime` is how long the
/// schedule lets it sign.
pub fn create(
    barrier: &Barrier,
    life: Lifecycle,
    lifetime: Duration,
) -> Result<(SigningKey, SigningKeyRecord), SigningKeyError> {
    let key = SigningKey::generate()?;
    let sealed = barrier.seal(&key_purpose(key.kid()), key.to_pkcs8().expose())?;

    let record = SigningKeyRecord {
        kid: key.kid().to_owned(),
        not_after: life.created + lifetime.as_secs() as i64,
        life,
        public_jwk: key.public_jwk(),
        tokens_valid_until: None,
        sealed_key: Some(BASE64.encode(sealed)),
    };
    Ok((key, record))
}

/// Opens a stored key so that it can sign.
pub fn unseal(record: &SigningKeyRecord, barrier: &Barrier) -> Result<SigningKey, SigningKeyError> {
    let sealed = record
        .sealed_key
        .as_deref()
        .ok_or_else(|| SigningKeyError::NoKey(record.kid.clone()))?;
    let sealed = BASE64
        .decode(sealed)
        .map_err(|_| SigningKeyError::BadSealedKey(record.kid.clone()))?;
    let pkcs8 = barrier.open(&key_purpose(&record.kid), &sealed)?;
    Ok(SigningKey::from_pkcs8(&pkcs8)?)
}

/// The JWKS: the public keys of every key that is not retired.
pub fn jwks<'a>(records: impl IntoIterator<Item = &'a SigningKeyRecord>) -> Jwks {
    records
        .into_iter()
        .filter(|r| r.life.state.is_published())
        .map(|r| r.public_jwk.clone())
        .collect()
}

fn key_purpose(kid: &str) -> String {
    format!("jwt/{kid}/key")
}

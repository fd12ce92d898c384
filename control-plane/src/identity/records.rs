//! What identity keeps in the store beside the documents admins apply.
//!
//! The records live under kinds that no document can name, so admins neither
//! apply nor list them by accident, and every change to them is a store
//! write with its audit entry. They travel in the change log like any
//! resource: that is how every replica learns of a rotation and how the
//! deny list of revoked serials reaches agents.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::jwt::Jwk;
use super::rotation::Lifecycle;
use crate::store::{Store, StoreError, StoredResource};

/// The X.509 certificate authorities.
pub const TRUST_AUTHORITY: &str = "TrustAuthority";
/// The keys that sign JWT-SVIDs.
pub const JWT_SIGNING_KEY: &str = "JwtSigningKey";
/// One-time join tokens, by token id.
pub const JOIN_TOKEN: &str = "JoinToken";
/// Every unexpired certificate issued, by owner node and serial.
pub const ISSUED_CERTIFICATE: &str = "IssuedCertificate";
/// Revoked nodes and the serials they held.
pub const NODE_REVOCATION: &str = "NodeRevocation";

/// The owner under which admin certificates are recorded; no node can be
/// named so, because node names are DNS labels.
pub const ADMIN_OWNER: &str = "_admin";

/// Records read from the store more than this many at once are refused.
const MAX_RECORDS: usize = 100_000;

/// The store key of a record.
pub fn key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

/// The key prefix of every record of a kind, or of one namespace in it.
pub fn prefix(kind: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) => format!("{kind}/{namespace}/"),
        None => format!("{kind}/"),
    }
}

/// One certificate authority.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorityRecord {
    pub id: String,
    #[serde(flatten)]
    pub life: Lifecycle,
    pub certificate_pem: String,
    /// Certificates between this CA and its trust anchor (an upstream's
    /// intermediates); empty for a root.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chain_pem: String,
    /// What verifiers must trust for this CA: the CA itself when it is a
    /// root, the upstream's root when it is an intermediate.
    pub anchor_pem: String,
    pub not_before: i64,
    pub not_after: i64,
    /// The private key, sealed by the barrier and base64-encoded; removed
    /// when the CA retires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_key: Option<String>,
}

/// One JWT signing key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyRecord {
    pub kid: String,
    #[serde(flatten)]
    pub life: Lifecycle,
    /// The public key as a JWK.
    pub public_jwk: Jwk,
    /// When the key stops being used for rotation purposes: its creation
    /// plus the configured key lifetime.
    pub not_after: i64,
    /// Tokens it signed expire by then; set when it stops signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_valid_until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_key: Option<String>,
}

/// A join token: only a hash of its secret is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinTokenRecord {
    pub node: String,
    /// SHA-256 of the token's secret part, hex.
    pub secret_hash: String,
    pub created_by: String,
    pub created: i64,
    pub expires: i64,
    /// Set when the token was used; a used token is refused ever after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<i64>,
}

/// What kind of holder a certificate was issued to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Holder {
    Node,
    Workload,
    Admin,
}

/// One issued certificate, kept until it expires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedRecord {
    pub serial: String,
    pub spiffe_id: String,
    pub holder: Holder,
    /// The id of the CA that signed it.
    pub authority: String,
    pub requester: String,
    pub not_after: i64,
}

/// A revoked serial and when it would have expired anyway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokedSerial {
    pub serial: String,
    pub not_after: i64,
}

/// A revoked node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevocationRecord {
    pub node: String,
    pub revoked: i64,
    pub revoked_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub serials: Vec<RevokedSerial>,
}

/// Errors reading records.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored record {key} does not decode: {detail}")]
    Decode { key: String, detail: String },
    #[error("more than {MAX_RECORDS} records under {0}")]
    TooMany(String),
}

/// A decoded record and the store revision that last changed it.
#[derive(Clone, Debug)]
pub struct Versioned<T> {
    pub key: String,
    pub revision: u64,
    pub record: T,
}

/// Reads one record.
pub async fn get<T: DeserializeOwned>(
    store: &dyn Store,
    key: &str,
) -> Result<Option<Versioned<T>>, RecordError> {
    match store.get(key).await? {
        Some(stored) => Ok(Some(decode(stored)?)),
        None => Ok(None),
    }
}

/// Reads every record under `prefix`, in key order.
pub async fn list<T: DeserializeOwned>(
    store: &dyn Store,
    prefix: &str,
) -> Result<Vec<Versioned<T>>, RecordError> {
    let mut records = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list(prefix, after.as_deref(), 1000).await?;
        after = page.resources.last().map(|r| r.key.clone());
        for stored in page.resources {
            records.push(decode(stored)?);
        }
        if records.len() > MAX_RECORDS {
            return Err(RecordError::TooMany(prefix.to_owned()));
        }
        if !page.more {
            return Ok(records);
        }
    }
}

/// Encodes a record as a store document.
pub fn encode<T: Serialize>(record: &T) -> String {
    serde_json::to_string(record).expect("identity records serialize")
}

fn decode<T: DeserializeOwned>(stored: StoredResource) -> Result<Versioned<T>, RecordError> {
    let record = serde_json::from_str(&stored.document).map_err(|e| RecordError::Decode {
        key: stored.key.clone(),
        detail: e.to_string(),
    })?;
    Ok(Versioned {
        key: stored.key,
        revision: stored.revision,
        record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_live_under_kinds_no_document_can_name() {
        for kind in [
            TRUST_AUTHORITY,
            JWT_SIGNING_KEY,
            JOIN_TOKEN,
            ISSUED_CERTIFICATE,
            NODE_REVOCATION,
        ] {
            assert!(palisade_model::Kind::parse(kind).is_none(), "{kind}");
        }
    }

    #[test]
    fn admin_owner_is_not_a_node_name() {
        assert!(!palisade_model::is_dns1123_subdomain(ADMIN_OWNER));
    }
}

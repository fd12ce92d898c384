//! Certificates the agent holds: its node certificate and each local
//! workload's X.509-SVID, with keys that never left this host, published on
//! a watch channel so that listeners pick up renewals for new connections
//! without dropping established ones.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;
use x509_parser::extensions::GeneralName;
use zeroize::Zeroizing;

/// Why a certificate chain and a key do not make an SVID.
#[derive(Debug, thiserror::Error)]
pub enum SvidError {
    #[error("the chain holds no certificate")]
    Empty,
    #[error("certificate {index} of the chain: {detail}")]
    Certificate { index: usize, detail: String },
    #[error("the leaf certificate carries no spiffe:// URI SAN")]
    NoSpiffeId,
    #[error("the private key: {0}")]
    Key(String),
    #[error("the private key does not match the leaf certificate: {0}")]
    Mismatch(String),
}

/// A private key in PEM; Debug prints nothing of it, and its memory is
/// zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPem(Zeroizing<String>);

impl KeyPem {
    /// Wraps a key's PEM text.
    pub fn new(pem: String) -> Self {
        Self(Zeroizing::new(pem))
    }

    /// The PEM text, for the few places that must hand it on.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPem(<redacted>)")
    }
}

/// One certificate with its key.
#[derive(Clone)]
pub struct Svid {
    /// The identity: the leaf's `spiffe://` URI SAN.
    pub spiffe_id: String,
    /// The leaf, then the intermediates, as PEM.
    pub chain_pem: String,
    pub key_pem: KeyPem,
    /// The same, ready for rustls.
    pub certified: Arc<CertifiedKey>,
    /// The leaf's serial number, lowercase hex.
    pub serial: String,
    /// The leaf's validity, in Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

impl fmt::Debug for Svid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Svid")
            .field("spiffe_id", &self.spiffe_id)
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Svid {
    /// Reads a PEM chain (leaf first) and its PEM key, checking that the
    /// key is the leaf's.
    pub fn from_pem(chain_pem: String, key_pem: KeyPem) -> Result<Self, SvidError> {
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .enumerate()
            .map(|(index, der)| {
                der.map_err(|e| SvidError::Certificate {
                    index,
                    detail: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let leaf = chain.first().ok_or(SvidError::Empty)?;
        let facts = leaf_facts(leaf)?;

        let certified = certified_key(chain.clone(), &key_pem)?;
        Ok(Self {
            spiffe_id: facts.spiffe_id,
            chain_pem,
            key_pem,
            certified: Arc::new(certified),
            serial: facts.serial,
            not_before: facts.not_before,
            not_after: facts.not_after,
        })
    }

    /// When it should be renewed: half way through its life.
    pub fn renew_at(&self) -> i64 {
        self.not_before + (self.not_after - self.not_before) / 2
    }

    /// Whether it is no longer valid at `now` (Unix seconds).
    pub fn expired(&self, now: i64) -> bool {
        now >= self.not_after
    }
}

/// What the agent reads from a leaf certificate.
struct LeafFacts {
    spiffe_id: String,
    serial: String,
    not_before: i64,
    not_after: i64,
}

fn leaf_facts(der: &CertificateDer<'_>) -> Result<LeafFacts, SvidError> {
    let bad = |detail: String| SvidError::Certificate { index: 0, detail };
    let (_, leaf) = x509_parser::parse_x509_certificate(der).map_err(|e| bad(e.to_string()))?;
    let names = leaf
        .subject_alternative_name()
        .map_err(|e| bad(e.to_string()))?
        .map(|san| san.value.general_names.clone())
        .unwrap_or_default();
    let spiffe_id = names
        .iter()
        .find_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some((*uri).to_owned()),
            _ => None,
        })
        .ok_or(SvidError::NoSpiffeId)?;

    Ok(LeafFacts {
        spiffe_id,
        serial: hex::encode(leaf.raw_serial()),
        not_before: leaf.validity().not_before.timestamp(),
        not_after: leaf.validity().not_after.timestamp(),
    })
}

/// The chain and key for rustls, signed with the aws-lc-rs provider.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key_pem: &KeyPem,
) -> Result<CertifiedKey, SvidError> {
    let der = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes())
        .map_err(|e| SvidError::Key(e.to_string()))?;
    let signing = rustls::crypto::aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| SvidError::Key(e.to_string()))?;

    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| SvidError::Mismatch(e.to_string()))?;
    Ok(certified)
}

/// Every workload certificate, by `<namespace>/<name>`, and the bundle
/// they chain to.
#[derive(Clone, Debug, Default)]
pub struct WorkloadCertificates {
    /// The SVID of each local workload.
    pub by_workload: BTreeMap<String, Arc<Svid>>,
    /// Every CA certificate to trust, as PEM.
    pub bundle_pem: String,
}

/// The certificates, shared by listeners, SDS and the file writer.
#[derive(Clone, Debug)]
pub struct Certificates {
    current: watch::Sender<Arc<WorkloadCertificates>>,
}

impl Default for Certificates {
    fn default() -> Self {
        Self {
            current: watch::Sender::new(Arc::new(WorkloadCertificates::default())),
        }
    }
}

impl Certificates {
    /// The certificates now.
    pub fn current(&self) -> Arc<WorkloadCertificates> {
        self.current.borrow().clone()
    }

    /// Replaces the certificates at once.
    pub fn publish(&self, certificates: WorkloadCertificates) {
        self.current.send_replace(Arc::new(certificates));
    }

    /// Follows the certificates as they are renewed.
    pub fn watch(&self) -> watch::Receiver<Arc<WorkloadCertificates>> {
        self.current.subscribe()
    }
}

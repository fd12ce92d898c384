//! What the proxy trusts: the CA certificates of the bundle, and the
//! serials of the deny list. Both change while listeners run, so the TLS
//! verifiers read them through a [`TrustCell`] at each handshake.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{CertificateError, OtherError, RootCertStore};

use super::peer::{self, Peer, PeerError};
use super::verified::{Role, VerifiedChains};

/// Why a peer certificate is refused, beyond what WebPKI says.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("no trust bundle is known; every certificate is refused")]
    NoBundle,
    #[error("certificate serial {serial} is on the deny list")]
    Denied { serial: String },
    #[error("the peer is {presented}, not {expected}")]
    WrongIdentity { expected: String, presented: String },
    #[error(transparent)]
    Peer(#[from] PeerError),
}

impl From<TrustError> for rustls::Error {
    fn from(error: TrustError) -> Self {
        let certificate = match error {
            TrustError::Denied { .. } => CertificateError::Revoked,
            other => CertificateError::Other(OtherError(Arc::new(other))),
        };
        rustls::Error::InvalidCertificate(certificate)
    }
}

/// The CA certificates of one bundle, ready to verify chains.
#[derive(Debug)]
pub struct Anchors {
    /// The bundle they were read from, to tell whether it changed.
    bundle_pem: String,
    /// `None` when the bundle holds no usable certificate.
    verifiers: Option<Verifiers>,
    /// Chains these anchors verified already.
    verified: VerifiedChains,
}

#[derive(Debug)]
struct Verifiers {
    roots: Arc<RootCertStore>,
    client: Arc<dyn ClientCertVerifier>,
}

impl Anchors {
    /// Reads the CA certificates of `bundle_pem`. Certificates that do not
    /// parse are skipped and logged; with none left, every chain fails.
    pub fn new(bundle_pem: &str) -> Self {
        Self {
            bundle_pem: bundle_pem.to_owned(),
            verifiers: Verifiers::new(bundle_pem),
            verified: VerifiedChains::default(),
        }
    }

    /// Checks a client chain: it leads to one of these CAs, every
    /// certificate is within its validity at `now`, and the leaf may
    /// authenticate clients.
    pub fn verify_client(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let verifiers = self.verifiers.as_ref().ok_or(TrustError::NoBundle)?;
        self.verified
            .check(Role::Client, end_entity, intermediates, now, || {
                verifiers
                    .client
                    .verify_client_cert(end_entity, intermediates, now)
                    .map(|_| ())
            })
    }

    /// Checks a server chain as [`verify_client`](Self::verify_client)
    /// does a client's, without looking at DNS names: SVIDs have none.
    pub fn verify_server(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let verifiers = self.verifiers.as_ref().ok_or(TrustError::NoBundle)?;
        self.verified
            .check(Role::Server, end_entity, intermediates, now, || {
                let parsed = ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_cert_signed_by_trust_anchor(
                    &parsed,
                    &verifiers.roots,
                    intermediates,
                    now,
                    algorithms().all,
                )
            })
    }
}

impl Verifiers {
    fn new(bundle_pem: &str) -> Option<Self> {
        let mut roots = RootCertStore::empty();
        for (index, certificate) in
            CertificateDer::pem_slice_iter(bundle_pem.as_bytes()).enumerate()
        {
            let added = certificate
                .map_err(|error| error.to_string())
                .and_then(|der| roots.add(der).map_err(|error| error.to_string()));
            if let Err(error) = added {
                tracing::warn!(index, %error, "skipping a trust bundle certificate");
            }
        }

        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider)
            .build()
            .ok()?;
        Some(Self { roots, client })
    }
}

/// The signature algorithms that verify chains and handshakes.
pub fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
}

/// The bundle and the deny list in force.
#[derive(Debug)]
pub struct Trust {
    pub anchors: Arc<Anchors>,
    denied: BTreeSet<String>,
}

impl Default for Trust {
    fn default() -> Self {
        Self {
            anchors: Arc::new(Anchors::new("")),
            denied: BTreeSet::new(),
        }
    }
}

impl Trust {
    /// The trust of `bundle_pem` and `denied`, keeping `previous`' anchors
    /// when the bundle did not change.
    pub fn new(bundle_pem: &str, denied: BTreeSet<String>, previous: &Trust) -> Self {
        let anchors = match previous.anchors.bundle_pem == bundle_pem {
            true => previous.anchors.clone(),
            false => Arc::new(Anchors::new(bundle_pem)),
        };
        Self { anchors, denied }
    }

    /// Checks a client's chain and names the client.
    pub fn check_client(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Peer, rustls::Error> {
        self.anchors.verify_client(end_entity, intermediates, now)?;
        Ok(self.check_leaf(end_entity)?)
    }

    /// Checks a server's chain and that it is `expected`.
    pub fn check_server(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        expected: &str,
    ) -> Result<Peer, rustls::Error> {
        self.anchors.verify_server(end_entity, intermediates, now)?;
        let peer = self.check_leaf(end_entity)?;

        if peer.spiffe_id != expected {
            return Err(TrustError::WrongIdentity {
                expected: expected.to_owned(),
                presented: peer.spiffe_id,
            }
            .into());
        }
        Ok(peer)
    }

    /// Names the peer of a verified chain, unless its serial is denied.
    fn check_leaf(&self, end_entity: &CertificateDer<'_>) -> Result<Peer, TrustError> {
        let peer = peer::identify(end_entity)?;
        self.check_serial(&peer.serial)?;
        Ok(peer)
    }

    /// Refuses a serial on the deny list, written with or without leading
    /// zero bytes.
    pub fn check_serial(&self, serial: &str) -> Result<(), TrustError> {
        let mut trimmed = serial;
        while let Some(rest) = trimmed.strip_prefix("00").filter(|rest| !rest.is_empty()) {
            trimmed = rest;
        }

        match self.denied.contains(serial) || self.denied.contains(trimmed) {
            true => Err(TrustError::Denied {
                serial: serial.to_owned(),
            }),
            false => Ok(()),
        }
    }
}

/// The trust the TLS verifiers read, replaced whole on every change.
#[derive(Debug, Default)]
pub struct TrustCell {
    current: RwLock<Arc<Trust>>,
}

impl TrustCell {
    pub fn get(&self) -> Arc<Trust> {
        self.current.read().expect("trust lock").clone()
    }

    pub fn replace(&self, trust: Arc<Trust>) {
        *self.current.write().expect("trust lock") = trust;
    }
}

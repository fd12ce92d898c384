//! TLS for the admin API: the server's certificate, and client certificates
//! checked against the control plane's CA.
//!
//! The handshake asks every client for a certificate and checks that the
//! client holds its key, but it does not refuse a missing or foreign
//! certificate itself: each call checks the chain and answers with a gRPC
//! status that says what was wrong, instead of a bare handshake failure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::barrier::SecretBytes;

mod tickets;

pub use tickets::SessionTickets;

/// Errors while building TLS settings.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} is not valid PEM")]
    Pem { what: &'static str },
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(String),
}

/// Why a caller could not be identified.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("no client certificate was presented; this call requires mTLS")]
    NoCertificate,
    #[error("the client certificate is not trusted by this control plane: {0}")]
    Untrusted(String),
    #[error("the client certificate has no usable SPIFFE ID: {0}")]
    NoSpiffeId(String),
}

/// A verified caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub spiffe_id: String,
    /// The leaf certificate's serial, lowercase hex.
    pub serial: String,
}

/// Checks client certificate chains against the trust bundle and names the
/// caller. The bundle can be replaced while serving, as CAs rotate.
///
/// A chain that verified is remembered until its leaf expires or the bundle
/// changes, so that a client making many calls on one certificate costs one
/// signature check, not one per call.
#[derive(Debug, Clone)]
pub struct PeerVerifier {
    trust: Arc<RwLock<Trust>>,
    verified: Arc<Mutex<HashMap<[u8; 32], Verified>>>,
    trust_domain: String,
}

/// The bundle's verifier and a generation that changes with the bundle.
#[derive(Debug)]
struct Trust {
    webpki: Arc<dyn ClientCertVerifier>,
    generation: u64,
}

/// A chain that verified, under which bundle, and its leaf's validity.
#[derive(Clone, Debug)]
struct Verified {
    generation: u64,
    peer: Peer,
    not_before: i64,
    not_after: i64,
}

/// Chains remembered at most; beyond, the memory starts over.
const MAX_VERIFIED: usize = 16_384;

impl PeerVerifier {
    /// A verifier that trusts the CA certificates in `bundle_pem`.
    pub fn new(trust_domain: &str, bundle_pem: &str) -> Result<Self, TlsError> {
        let trust = Trust {
            webpki: webpki_verifier(bundle_pem)?,
            generation: 0,
        };
        Ok(Self {
            trust: Arc::new(RwLock::new(trust)),
            verified: Arc::new(Mutex::new(HashMap::new())),
            trust_domain: trust_domain.to_owned(),
        })
    }

    /// Trusts the CA certificates in `bundle_pem` from now on, instead of
    /// the previous bundle; chains verified under the old one are forgotten.
    pub fn set_bundle(&self, bundle_pem: &str) -> Result<(), TlsError> {
        let webpki = webpki_verifier(bundle_pem)?;
        let mut trust = self.trust.write().expect("verifier lock");
        trust.webpki = webpki;
        trust.generation += 1;
        self.verified.lock().expect("verified lock").clear();
        Ok(())
    }

    /// Returns the caller's SPIFFE ID after verifying its chain.
    pub fn identify(&self, chain: Option<&[CertificateDer<'static>]>) -> Result<String, PeerError> {
        self.identify_peer(chain).map(|peer| peer.spiffe_id)
    }

    /// Verifies the caller's chain and returns its SPIFFE ID and serial.
    pub fn identify_peer(
        &self,
        chain: Option<&[CertificateDer<'static>]>,
    ) -> Result<Peer, PeerError> {
        let Some((leaf, intermediates)) = chain.and_then(|c| c.split_first()) else {
            return Err(PeerError::NoCertificate);
        };
        let now = UnixTime::now();
        let key = chain_key(leaf, intermediates);
        let (webpki, generation) = {
            let trust = self.trust.read().expect("verifier lock");
            (trust.webpki.clone(), trust.generation)
        };
        if let Some(peer) = self.remembered(&key, generation, now) {
            return Ok(peer);
        }

        webpki
            .verify_client_cert(leaf, intermediates, now)
            .map_err(|e| PeerError::Untrusted(e.to_string()))?;
        let identity = leaf_identity(leaf).map_err(PeerError::NoSpiffeId)?;
        let expected = format!("spiffe://{}/", self.trust_domain);
        if !identity.peer.spiffe_id.starts_with(&expected) {
            return Err(PeerError::NoSpiffeId(format!(
                "{} is outside {}",
                identity.peer.spiffe_id, self.trust_domain
            )));
        }

        self.remember(key, generation, &identity);
        Ok(identity.peer)
    }

    fn remembered(&self, key: &[u8; 32], generation: u64, now: UnixTime) -> Option<Peer> {
        let verified = self.verified.lock().expect("verified lock");
        let found = verified.get(key)?;
        let now = now.as_secs() as i64;
        let valid =
            found.generation == generation && found.not_before <= now && now < found.not_after;
        valid.then(|| found.peer.clone())
    }

    fn remember(&self, key: [u8; 32], generation: u64, identity: &LeafIdentity) {
        let mut verified = self.verified.lock().expect("verified lock");
        if verified.len() >= MAX_VERIFIED {
            verified.clear();
        }
        verified.insert(
            key,
            Verified {
                generation,
                peer: identity.peer.clone(),
                not_before: identity.not_before,
                not_after: identity.not_after,
            },
        );
    }
}

/// A digest naming a whole chain, leaf first.
fn chain_key(leaf: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> [u8; 32] {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for certificate in std::iter::once(leaf).chain(intermediates) {
        context.update(&(certificate.len() as u64).to_be_bytes());
        context.update(certificate);
    }
    let digest = context.finish();
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

fn webpki_verifier(bundle_pem: &str) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let roots = root_store(bundle_pem)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))
}

/// What a verified leaf says of its holder.
struct LeafIdentity {
    peer: Peer,
    not_before: i64,
    not_after: i64,
}

/// The SPIFFE ID, serial and validity of a leaf certificate.
fn leaf_identity(certificate: &CertificateDer<'_>) -> Result<LeafIdentity, String> {
    let spiffe_id = spiffe_id(certificate)?;
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|e| format!("certificate does not parse: {e}"))?;
    let validity = parsed.validity();
    Ok(LeafIdentity {
        peer: Peer {
            spiffe_id,
            serial: hex::encode(parsed.raw_serial()),
        },
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

/// The server's certificate, replaceable while serving: when a new CA
/// activates, the control plane presents a certificate it signed.
#[derive(Debug)]
pub struct ServerCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCertificate {
    /// Loads a chain (leaf first) and its private key.
    pub fn new(chain_pem: &str, key_pem: &SecretBytes) -> Result<Self, TlsError> {
        Ok(Self {
            current: RwLock::new(certified_key(chain_pem, key_pem)?),
        })
    }

    /// Presents `chain_pem` to every new connection from now on.
    pub fn replace(&self, chain_pem: &str, key_pem: &SecretBytes) -> Result<(), TlsError> {
        let key = certified_key(chain_pem, key_pem)?;
        *self.current.write().expect("certificate lock") = key;
        Ok(())
    }
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("certificate lock").clone())
    }
}

fn certified_key(chain_pem: &str, key_pem: &SecretBytes) -> Result<Arc<CertifiedKey>, TlsError> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let key = provider
        .key_provider
        .load_private_key(private_key(key_pem)?)
        .map_err(TlsError::Rustls)?;
    let certified = CertifiedKey::new(certificates(chain_pem)?, key);
    certified.keys_match()?;
    Ok(Arc::new(certified))
}

/// The control plane's TLS: settings for the listener, the verifier that
/// names callers, and the certificate it presents.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub config: Arc<ServerConfig>,
    pub peers: PeerVerifier,
    pub certificate: Arc<ServerCertificate>,
    pub tickets: Arc<SessionTickets>,
}

/// Builds the server's TLS settings, offering `h2` for gRPC. `tickets`
/// seals the session tickets that let clients resume after a restart.
pub fn server_config(
    trust_domain: &str,
    bundle_pem: &str,
    chain_pem: &str,
    key_pem: &SecretBytes,
    tickets: Arc<SessionTickets>,
) -> Result<TlsSettings, TlsError> {
    let peers = PeerVerifier::new(trust_domain, bundle_pem)?;
    let certificate = Arc::new(ServerCertificate::new(chain_pem, key_pem)?);
    let config = build_config(&peers, &certificate, &tickets, &[b"h2"])?;
    Ok(TlsSettings {
        config,
        peers,
        certificate,
        tickets,
    })
}

/// Server settings that share the peers, certificate and tickets of
/// `settings` but offer other protocols, e.g. HTTP/1.1 for the JWKS
/// endpoint.
pub fn config_with_alpn(
    settings: &TlsSettings,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    build_config(
        &settings.peers,
        &settings.certificate,
        &settings.tickets,
        alpn,
    )
}

fn build_config(
    peers: &PeerVerifier,
    certificate: &Arc<ServerCertificate>,
    tickets: &Arc<SessionTickets>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let deferred = Arc::new(DeferredClientVerifier {
        peers: peers.clone(),
    });
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(deferred)
        .with_cert_resolver(certificate.clone());
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();

    // Resumption by ticket only, one ticket per connection: a fleet that
    // reconnects after a restart resumes instead of paying full handshakes.
    config.ticketer = tickets.clone();
    config.send_tls13_tickets = 1;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// aws-lc-rs with AES-128-GCM first: as strong as the handshake's P-256,
/// and its SHA-256 key schedule runs on the CPU's SHA extensions where
/// SHA-384's does not.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let first = rustls::CipherSuite::TLS13_AES_128_GCM_SHA256;
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != first);
    Arc::new(provider)
}

/// The single URI SAN of a certificate, which must be a SPIFFE ID.
pub fn spiffe_id(certificate: &CertificateDer<'_>) -> Result<String, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|e| format!("certificate does not parse: {e}"))?;
    let sans = parsed
        .subject_alternative_name()
        .map_err(|e| format!("bad subject alternative names: {e}"))?
        .ok_or("no subject alternative names")?;

    let uris: Vec<&str> = sans
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [uri] if uri.starts_with("spiffe://") => Ok((*uri).to_owned()),
        [uri] => Err(format!("{uri} is not a SPIFFE ID")),
        [] => Err("no URI SAN".into()),
        _ => Err("more than one URI SAN".into()),
    }
}

fn root_store(ca_pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(ca_pem)? {
        roots.add(certificate)?;
    }
    Ok(roots)
}

fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::Pem {
            what: "certificate",
        })?;
    if certificates.is_empty() {
        return Err(TlsError::Pem {
            what: "certificate",
        });
    }
    Ok(certificates)
}

fn private_key(key_pem: &SecretBytes) -> Result<PrivateKeyDer<'static>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    PrivateKeyDer::from_pem_slice(key_pem.expose()).map_err(|_| TlsError::Pem { what: "key" })
}

/// Asks for a client certificate and checks possession of its key during
/// the handshake; leaves the chain check to [`PeerVerifier::identify`].
#[derive(Debug)]
struct DeferredClientVerifier {
    peers: PeerVerifier,
}

impl DeferredClientVerifier {
    fn inner(&self) -> Arc<dyn ClientCertVerifier> {
        self.peers
            .trust
            .read()
            .expect("verifier lock")
            .webpki
            .clone()
    }
}

impl ClientCertVerifier for DeferredClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The bundle can change while serving; clients pick their
        // certificate by other means.
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner().supported_verify_schemes()
    }
}

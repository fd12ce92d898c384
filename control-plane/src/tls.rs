//! TLS for the admin API: the server's certificate, and client certificates
//! checked against the control plane's CA.
//!
//! The handshake asks every client for a certificate and checks that the
//! client holds its key, but it does not refuse a missing or foreign
//! certificate itself: each call checks the chain and answers with a gRPC
//! status that says what was wrong, instead of a bare handshake failure.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::barrier::SecretBytes;

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
    #[error("no client certificate was presented; the admin API requires mTLS")]
    NoCertificate,
    #[error("the client certificate is not trusted by this control plane: {0}")]
    Untrusted(String),
    #[error("the client certificate has no usable SPIFFE ID: {0}")]
    NoSpiffeId(String),
}

/// Checks client certificate chains against the CA and names the caller.
#[derive(Debug, Clone)]
pub struct PeerVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    trust_domain: String,
}

impl PeerVerifier {
    /// Returns the caller's SPIFFE ID after verifying its chain.
    pub fn identify(&self, chain: Option<&[CertificateDer<'static>]>) -> Result<String, PeerError> {
        let Some((leaf, intermediates)) = chain.and_then(|c| c.split_first()) else {
            return Err(PeerError::NoCertificate);
        };

        self.webpki
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map_err(|e| PeerError::Untrusted(e.to_string()))?;

        let id = spiffe_id(leaf).map_err(PeerError::NoSpiffeId)?;
        let expected = format!("spiffe://{}/", self.trust_domain);
        if !id.starts_with(&expected) {
            return Err(PeerError::NoSpiffeId(format!(
                "{id} is outside {}",
                self.trust_domain
            )));
        }
        Ok(id)
    }
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

/// Builds the admin server's TLS settings and the matching peer verifier.
pub fn server_config(
    trust_domain: &str,
    ca_pem: &str,
    certificate_pem: &str,
    key_pem: &SecretBytes,
) -> Result<(ServerConfig, PeerVerifier), TlsError> {
    let roots = root_store(ca_pem)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;

    let deferred = Arc::new(DeferredClientVerifier {
        inner: webpki.clone(),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(deferred)
        .with_single_cert(certificates(certificate_pem)?, private_key(key_pem)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];

    let verifier = PeerVerifier {
        webpki,
        trust_domain: trust_domain.to_owned(),
    };
    Ok((config, verifier))
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
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for DeferredClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
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
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

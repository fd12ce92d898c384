//! TLS settings of the data path: each side presents a local workload's
//! current SVID, and checks the peer against the current trust. Both are
//! read at each handshake, so renewals and bundle changes apply to new
//! connections without touching established ones.
//!
//! TLS 1.3 only, and no session resumption: a resumed session would skip
//! the certificate checks, the deny list among them.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, Resumption};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig};
use rustls::{SignatureScheme, crypto};

use super::presented;
use super::trust::{TrustCell, algorithms};
use crate::identity::svid::Certificates;

/// Settings for an inbound listener of `workload` (`<namespace>/<name>`).
pub fn server_config(
    workload: &str,
    certificates: &Certificates,
    trust: &Arc<TrustCell>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let verifier = Arc::new(ClientVerifier {
        trust: trust.clone(),
    });
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(WorkloadCertificate::new(workload, certificates)));

    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Settings for connections of `workload` to servers that must be
/// `expected`.
pub fn client_config(
    workload: &str,
    certificates: &Certificates,
    trust: &Arc<TrustCell>,
    expected: &str,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let verifier = Arc::new(ServerVerifier {
        trust: trust.clone(),
        expected: expected.to_owned(),
    });
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(WorkloadCertificate::new(workload, certificates)));

    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// aws-lc-rs with AES-128-GCM first: its SHA-256 transcript hash runs on
/// the CPU's SHA extensions where SHA-384 does not, which makes every
/// handshake cheaper, and both ends of a Palisade connection offer the
/// same order.
fn provider() -> Arc<crypto::CryptoProvider> {
    use crypto::aws_lc_rs::cipher_suite;

    let mut provider = crypto::aws_lc_rs::default_provider();
    provider.cipher_suites = vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(provider)
}

/// The current SVID of one workload; none while it has no certificate, and
/// then the handshake fails.
struct WorkloadCertificate {
    workload: String,
    certificates: Certificates,
}

impl WorkloadCertificate {
    fn new(workload: &str, certificates: &Certificates) -> Self {
        Self {
            workload: workload.to_owned(),
            certificates: certificates.clone(),
        }
    }

    fn current(&self) -> Option<Arc<CertifiedKey>> {
        let certificates = self.certificates.current();
        let svid = certificates.by_workload.get(&self.workload)?;
        Some(svid.certified.clone())
    }
}

impl fmt::Debug for WorkloadCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadCertificate")
            .field("workload", &self.workload)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for WorkloadCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

impl ResolvesClientCert for WorkloadCertificate {
    fn resolve(
        &self,
        _root_hints: &[&[u8]],
        _schemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.current()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Requires a client certificate that the current trust accepts; records
/// what a refused one claims (see [`presented`]).
#[derive(Debug)]
struct ClientVerifier {
    trust: Arc<TrustCell>,
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let trust = self.trust.get();
        if let Err(error) = trust.check_client(end_entity, intermediates, now) {
            presented::record(end_entity);
            return Err(error);
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }
}

/// Requires a server certificate that the current trust accepts and that
/// names the expected SPIFFE ID; the server name is not looked at.
#[derive(Debug)]
struct ServerVerifier {
    trust: Arc<TrustCell>,
    expected: String,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let trust = self.trust.get();
        trust.check_server(end_entity, intermediates, now, &self.expected)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }
}

//! A real rustls mTLS handshake between two certificate holders, the way
//! Palisade's workloads meet: each presents its SVID and checks the other's
//! chain against the trust bundle; names are SPIFFE IDs, not DNS names.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, ServerConfig,
    SignatureScheme,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One side's certificate chain and key, as PEM.
pub struct Holder<'a> {
    pub chain_pem: &'a str,
    pub key_pem: &'a str,
}

/// Runs a handshake on loopback and returns the SPIFFE IDs each side saw,
/// (server saw, client saw), or the first side's error.
pub async fn handshake(
    server: &Holder<'_>,
    client: &Holder<'_>,
    bundle_pem: &str,
) -> Result<(String, String), String> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(server, bundle_pem)?);
    let connector = tokio_rustls::TlsConnector::from(client_config(client, bundle_pem)?);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;

    let serving = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor
            .accept(tcp)
            .await
            .map_err(|e| format!("server: {e}"))?;
        let seen = peer_id(tls.get_ref().1.peer_certificates())?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte)
            .await
            .map_err(|e| format!("server read: {e}"))?;
        tls.write_all(&byte).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(seen)
    });

    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("workload.invalid").expect("a name");
    let connected =
        tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp)).await;
    let mut tls = match connected {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            let server_error = serving.await.map_err(|e| e.to_string())?.err();
            return Err(server_error.unwrap_or_else(|| format!("client: {error}")));
        }
        Err(_) => return Err("handshake timed out".into()),
    };
    let client_saw = peer_id(tls.get_ref().1.peer_certificates())?;
    tls.write_all(b"x").await.map_err(|e| e.to_string())?;
    let mut byte = [0u8; 1];
    let echoed = tls.read_exact(&mut byte).await;

    let server_saw = serving.await.map_err(|e| e.to_string())??;
    echoed.map_err(|e| format!("client read: {e}"))?;
    Ok((server_saw, client_saw))
}

fn server_config(holder: &Holder<'_>, bundle_pem: &str) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(bundle_pem)?, provider.clone())
            .build()
            .map_err(|e| e.to_string())?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain(holder.chain_pem)?, key(holder.key_pem)?)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

fn client_config(holder: &Holder<'_>, bundle_pem: &str) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        roots(bundle_pem)?,
        provider.clone(),
    )
    .build()
    .map_err(|e| e.to_string())?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier { webpki }))
        .with_client_auth_cert(chain(holder.chain_pem)?, key(holder.key_pem)?)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

/// Checks the server's chain against the bundle, but not a DNS name: SVIDs
/// carry SPIFFE IDs, which the test reads after the handshake.
#[derive(Debug)]
struct SpiffeServerVerifier {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verified =
            self.webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        match verified {
            Err(Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

fn roots(bundle_pem: &str) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for certificate in chain(bundle_pem)? {
        roots.add(certificate).map_err(|e| e.to_string())?;
    }
    Ok(Arc::new(roots))
}

fn chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate PEM: {e}"))
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| format!("key PEM: {e}"))
}

fn peer_id(certificates: Option<&[CertificateDer<'_>]>) -> Result<String, String> {
    let leaf = certificates
        .and_then(|c| c.first())
        .ok_or("no peer certificate")?;
    crate::x509::spiffe_id(leaf)
}

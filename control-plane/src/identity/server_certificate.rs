//! The control plane's own TLS certificate, kept signed by the active CA:
//! when a new CA activates, the server's certificate is reissued from it with
//! the same names, so that holders of the new bundle verify the server
//! through the new CA.

use crate::barrier::{Barrier, BarrierError};
use crate::ca::{CaError, CertificateAuthority};
use crate::data_dir::keys;
use crate::store::{Store, StoreError};

/// Errors keeping the server's certificate.
#[derive(Debug, thiserror::Error)]
pub enum ServerCertificateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("the stored server certificate does not parse: {0}")]
    Malformed(String),
}

/// Reissues the server's certificate from `signer` unless `signer` signed
/// it already. Returns whether it was reissued.
pub async fn ensure_signed_by(
    store: &dyn Store,
    barrier: &Barrier,
    signer: &CertificateAuthority,
) -> Result<bool, ServerCertificateError> {
    let Some(current) = store.system_get(keys::SERVER_CERT).await? else {
        return Err(ServerCertificateError::Malformed("it is missing".into()));
    };
    let names = match signed_names(&current, signer)? {
        Signed::ByThisCa => return Ok(false),
        Signed::ByAnother(names) => names,
    };

    let issued = signer.issue_server(&names)?;
    let chain = format!("{}{}", issued.certificate_pem, signer.chain_pem());
    let sealed = barrier.seal(keys::SERVER_KEY, issued.key_pem.expose())?;
    store.system_put(keys::SERVER_KEY, sealed).await?;
    store
        .system_put(keys::SERVER_CERT, chain.into_bytes())
        .await?;
    tracing::info!(ca = %signer.id(), "server certificate reissued from the active CA");
    Ok(true)
}

enum Signed {
    ByThisCa,
    /// Signed by another CA; these are its DNS names and IP addresses.
    ByAnother(Vec<String>),
}

fn signed_names(
    pem: &[u8],
    signer: &CertificateAuthority,
) -> Result<Signed, ServerCertificateError> {
    let malformed = |e: String| ServerCertificateError::Malformed(e);
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| malformed(e.to_string()))?;
    let leaf = block.parse_x509().map_err(|e| malformed(e.to_string()))?;
    let (_, ca) = x509_parser::parse_x509_certificate(signer.certificate_der())
        .map_err(|e| malformed(e.to_string()))?;

    if leaf.verify_signature(Some(ca.public_key())).is_ok() {
        return Ok(Signed::ByThisCa);
    }
    Ok(Signed::ByAnother(server_names(&leaf)))
}

/// The DNS names and IP addresses a server certificate names.
fn server_names(leaf: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;

    let Ok(Some(sans)) = leaf.subject_alternative_name() else {
        return Vec::new();
    };
    sans.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            GeneralName::IPAddress(bytes) => ip_text(bytes),
            _ => None,
        })
        .collect()
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

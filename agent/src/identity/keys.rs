//! Keys made on this host, and the certificate signing requests that are
//! all the control plane ever sees of them.

use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};

use super::IdentityError;
use super::svid::KeyPem;

/// A fresh key and a PEM CSR asking for one SPIFFE ID.
pub struct KeyRequest {
    /// The key, which stays on this host.
    pub key_pem: KeyPem,
    /// The CSR, which is all the control plane sees.
    pub csr_pem: String,
}

impl std::fmt::Debug for KeyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRequest").finish_non_exhaustive()
    }
}

/// Makes a P-256 key and a CSR whose only name is the URI SAN `spiffe_id`.
pub fn key_request(spiffe_id: &str) -> Result<KeyRequest, IdentityError> {
    let failed = |e: rcgen::Error| IdentityError::Key(e.to_string());
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let uri = spiffe_id
        .try_into()
        .map_err(|_| IdentityError::Key(format!("{spiffe_id:?} is not an IA5 URI")))?;

    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(uri)];
    let csr_pem = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(failed)?;

    Ok(KeyRequest {
        key_pem: KeyPem::new(key.serialize_pem()),
        csr_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csr_names_only_the_spiffe_id() {
        let request = key_request("spiffe://example.org/ns/shop/sa/orders").unwrap();

        let params = rcgen::CertificateSigningRequestParams::from_pem(&request.csr_pem).unwrap();
        let names = params.params.subject_alt_names;
        assert_eq!(names.len(), 1);
        assert!(
            matches!(&names[0], SanType::URI(uri) if uri.as_str() == "spiffe://example.org/ns/shop/sa/orders")
        );
        assert!(request.key_pem.expose().contains("PRIVATE KEY"));
        assert_eq!(format!("{request:?}"), "KeyRequest { .. }");
    }
}

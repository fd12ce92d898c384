//! Certificates for unit tests: self-signed, with the SPIFFE ID and the
//! validity a test asks for.

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use time::OffsetDateTime;

use super::svid::{KeyPem, Svid};

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).expect("a time in range")
}

/// A self-signed leaf for `spiffe_id`, valid from `not_before` to
/// `not_after` (Unix seconds).
pub fn svid(spiffe_id: &str, not_before: i64, not_after: i64) -> Svid {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(spiffe_id.try_into().unwrap())];
    params.not_before = at(not_before);
    params.not_after = at(not_after);

    let cert = params.self_signed(&key).unwrap();
    Svid::from_pem(cert.pem(), KeyPem::new(key.serialize_pem())).unwrap()
}

/// A self-signed CA certificate, as PEM.
pub fn ca_pem() -> String {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

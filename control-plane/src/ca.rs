//! The certificate authority: a root (ECDSA P-256) whose private key lives
//! behind the barrier, and the certificates it issues to the control plane's
//! own server and to admins.

use std::fmt;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::barrier::SecretBytes;

/// How long a new root stays valid.
pub const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long the control plane's server certificate stays valid.
pub const SERVER_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
/// How long an admin's client certificate stays valid.
pub const ADMIN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Leaves start this far in the past, to tolerate clock skew between hosts.
const BACKDATE: Duration = Duration::from_secs(300);

/// Errors of the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the CA private key is not valid PEM")]
    BadKey,
    #[error("random number generator failed")]
    Random,
}

/// A certificate and its private key, as PEM.
pub struct Issued {
    pub certificate_pem: String,
    pub key_pem: SecretBytes,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("key_pem", &self.key_pem)
            .finish_non_exhaustive()
    }
}

/// A CA that can sign.
pub struct CertificateAuthority {
    trust_domain: String,
    certificate_pem: String,
    not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Makes a new self-signed root for `trust_domain`. Returns the CA and its
    /// private key as PEM, for sealing.
    pub fn create_root(trust_domain: &str) -> Result<(Self, SecretBytes), CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let san = SanType::URI(format!("spiffe://{trust_domain}").try_into()?);
        let not_after = OffsetDateTime::now_utc() + ROOT_LIFETIME;

        let mut params = base_params(&format!("Palisade root CA {trust_domain}"), san, not_after)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];

        let certificate = params.self_signed(&key)?;
        let key_pem = SecretBytes::new(key.serialize_pem().into_bytes());
        let ca = Self {
            trust_domain: trust_domain.to_owned(),
            certificate_pem: certificate.pem(),
            not_after: params.not_after,
            issuer: Issuer::new(params, key),
        };
        Ok((ca, key_pem))
    }

    /// Loads a CA from its certificate and (unsealed) private key.
    pub fn load(
        trust_domain: &str,
        certificate_pem: &str,
        key_pem: &SecretBytes,
    ) -> Result<Self, CaError> {
        let key_text = std::str::from_utf8(key_pem.expose()).map_err(|_| CaError::BadKey)?;
        let key = KeyPair::from_pem(key_text).map_err(|_| CaError::BadKey)?;
        let not_after = not_after(certificate_pem)?;

        Ok(Self {
            trust_domain: trust_domain.to_owned(),
            certificate_pem: certificate_pem.to_owned(),
            not_after,
            issuer: Issuer::from_ca_cert_pem(certificate_pem, key)?,
        })
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The root certificate, which is the trust bundle.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// Issues the control plane's server certificate: the control plane's
    /// SPIFFE ID plus the DNS names and IP addresses it is reached at.
    pub fn issue_server(&self, dns_names: &[String]) -> Result<Issued, CaError> {
        let mut sans = vec![self.spiffe_san("/palisade/control-plane")?];
        for name in dns_names {
            match name.parse::<std::net::IpAddr>() {
                Ok(ip) => sans.push(SanType::IpAddress(ip)),
                Err(_) => sans.push(SanType::DnsName(name.as_str().try_into()?)),
            }
        }
        self.issue_leaf("palisade-cp", sans, SERVER_LIFETIME)
    }

    /// Issues an admin's client certificate, `spiffe://<td>/admin/<name>`.
    pub fn issue_admin(&self, name: &str) -> Result<Issued, CaError> {
        let san = self.spiffe_san(&format!("/admin/{name}"))?;
        self.issue_leaf(name, vec![san], ADMIN_LIFETIME)
    }

    fn spiffe_san(&self, path: &str) -> Result<SanType, CaError> {
        Ok(SanType::URI(
            format!("spiffe://{}{path}", self.trust_domain).try_into()?,
        ))
    }

    fn issue_leaf(
        &self,
        common_name: &str,
        sans: Vec<SanType>,
        lifetime: Duration,
    ) -> Result<Issued, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let not_after = (OffsetDateTime::now_utc() + lifetime).min(self.not_after);

        let mut params = base_params(common_name, sans[0].clone(), not_after)?;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;

        let certificate = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            certificate_pem: certificate.pem(),
            key_pem: SecretBytes::new(key.serialize_pem().into_bytes()),
        })
    }
}

/// Parameters every Palisade certificate shares: the subject, one SAN, a
/// random serial, and a validity that starts a little in the past.
fn base_params(
    common_name: &str,
    san: SanType,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Palisade");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.subject_alt_names = vec![san];
    params.not_before = OffsetDateTime::now_utc() - BACKDATE;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

fn not_after(certificate_pem: &str) -> Result<OffsetDateTime, CaError> {
    let bad = || CaError::Generate(rcgen::Error::CouldNotParseCertificate);
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes()).map_err(|_| bad())?;
    let certificate = pem.parse_x509().map_err(|_| bad())?;
    Ok(certificate.validity().not_after.to_datetime())
}

/// A random positive 128-bit serial number.
fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| CaError::Random)?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spiffe_ids(pem: &str) -> Vec<String> {
        let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let certificate = der.parse_x509().unwrap();
        let sans = certificate.subject_alternative_name().unwrap().unwrap();
        sans.value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::URI(uri) => Some(uri.to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn admin_certificate_carries_the_admin_spiffe_id() {
        let (ca, _) = CertificateAuthority::create_root("example.org").unwrap();

        let issued = ca.issue_admin("alice").unwrap();

        assert_eq!(
            spiffe_ids(&issued.certificate_pem),
            ["spiffe://example.org/admin/alice"]
        );
    }

    #[test]
    fn reloaded_ca_issues_certificates_that_chain_to_the_same_root() {
        let (ca, key) = CertificateAuthority::create_root("example.org").unwrap();
        let reloaded =
            CertificateAuthority::load("example.org", ca.certificate_pem(), &key).unwrap();

        let issued = reloaded
            .issue_server(&["localhost".into(), "127.0.0.1".into()])
            .unwrap();

        let (_, root) = x509_parser::pem::parse_x509_pem(ca.certificate_pem().as_bytes()).unwrap();
        let (_, leaf) =
            x509_parser::pem::parse_x509_pem(issued.certificate_pem.as_bytes()).unwrap();
        let root = root.parse_x509().unwrap();
        let leaf = leaf.parse_x509().unwrap();
        assert!(leaf.verify_signature(Some(root.public_key())).is_ok());
        assert_eq!(leaf.issuer(), root.subject());
    }

    #[test]
    fn issued_key_is_not_printed() {
        let (ca, _) = CertificateAuthority::create_root("example.org").unwrap();

        let issued = ca.issue_admin("alice").unwrap();

        assert!(!format!("{issued:?}").contains("PRIVATE KEY"));
    }
}

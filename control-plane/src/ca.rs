//! The certificate authority: a root (ECDSA P-256), or an intermediate under an upstream CA,
//! whose private key lives behind the barrier. It issues the control plane's own server
//! certificate, admins' client certificates, and the certificates of nodes and workloads from
//! their checked signing requests.
//!
//! A leaf holder presents its leaf followed by [`CertificateAuthority::chain_pem`]; a verifier
//! trusts [`CertificateAuthority::bundle_pem`]. For a root the chain is empty and the bundle is
//! the root itself. For an intermediate the chain is the intermediate and the upstream
//! intermediates above it, and the bundle is the last certificate of the upstream chain.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::pem::Pem;

use crate::barrier::SecretBytes;
use crate::identity::csr::CheckedCsr;

/// How long a new root stays valid.
pub const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long the control plane's server certificate stays valid.
pub const SERVER_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
/// How long an admin's client certificate stays valid.
pub const ADMIN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Leaves start this far in the past, to tolerate clock skew between hosts.
const BACKDATE: Duration = Duration::from_secs(300);
/// The longest common name X.509 allows (ub-common-name).
const MAX_COMMON_NAME: usize = 64;

/// Errors of the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the CA private key is not valid PEM")]
    BadKey,
    #[error("random number generator failed")]
    Random,
    #[error("{which} is not a valid PEM certificate")]
    BadCertificate { which: String },
    #[error("the upstream chain holds no certificate")]
    EmptyUpstreamChain,
    #[error("the private key does not match {which}")]
    KeyMismatch { which: String },
    #[error("{which} is not a CA certificate (basicConstraints cA is not true)")]
    NotACa { which: String },
    #[error("{which} may not sign certificates (its key usage lacks keyCertSign)")]
    NoCertSign { which: String },
    #[error("{which} allows only {allowed} intermediate CAs below it (pathLenConstraint)")]
    PathTooLong { which: String, allowed: u32 },
    #[error("{child} is not signed by {parent}")]
    BrokenChain { child: String, parent: String },
    #[error("{which} is not valid now (valid from {not_before} to {not_after})")]
    NotValidNow {
        which: String,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    },
    #[error("this CA expired at {not_after} and can issue no more certificates")]
    Expired { not_after: OffsetDateTime },
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

/// A certificate signed for a checked request; the key stays with whoever made the request.
pub struct SignedLeaf {
    /// The certificate alone; the holder presents it followed by the CA's chain.
    pub certificate_pem: String,
    /// The same certificate, as DER.
    pub certificate_der: Vec<u8>,
    /// The serial number in lowercase hex.
    pub serial_hex: String,
    /// The start of validity, backdated a little for clock skew; whole seconds.
    pub not_before: OffsetDateTime,
    /// The end of validity; never later than the CA's own; whole seconds.
    pub not_after: OffsetDateTime,
    /// The SPIFFE ID the certificate names.
    pub spiffe_id: String,
}

impl fmt::Debug for SignedLeaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedLeaf")
            .field("spiffe_id", &self.spiffe_id)
            .field("serial_hex", &self.serial_hex)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A CA that can sign.
pub struct CertificateAuthority {
    trust_domain: String,
    certificate_pem: String,
    certificate_der: Vec<u8>,
    chain_pem: String,
    bundle_pem: String,
    upstream_chain_pem: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("trust_domain", &self.trust_domain)
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Makes a new self-signed root for `trust_domain`, valid for [`ROOT_LIFETIME`]. Returns
    /// the CA and its private key as PEM, for sealing.
    pub fn create_root(trust_domain: &str) -> Result<(Self, SecretBytes), CaError> {
        Self::create_root_with_lifetime(trust_domain, ROOT_LIFETIME)
    }

    /// Makes a new self-signed root for `trust_domain`, valid for `lifetime`.
    pub fn create_root_with_lifetime(
        trust_domain: &str,
        lifetime: Duration,
    ) -> Result<(Self, SecretBytes), CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let common_name = format!("Palisade root CA {trust_domain}");
        let san = spiffe_san(trust_domain, "")?;

        let mut params = base_params(Some(&common_name), vec![san], expiry(lifetime))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];

        let certificate = params.self_signed(&key)?;
        let key_pem = SecretBytes::new(key.serialize_pem().into_bytes());
        let issuer = Issuer::new(params, key);
        let ca = Self::assemble(trust_domain, certificate.der().to_vec(), issuer, &[])?;
        Ok((ca, key_pem))
    }

    /// Makes a new intermediate for `trust_domain`, signed by an upstream CA. The upstream
    /// chain holds the upstream signing certificate first, then optionally the certificates
    /// above it; its last certificate becomes the trust bundle. The intermediate may sign
    /// leaves only (pathLenConstraint 0) and never outlives the upstream chain. Returns the CA
    /// and its new private key as PEM, for sealing.
    pub fn create_intermediate(
        trust_domain: &str,
        upstream_chain_pem: &str,
        upstream_key_pem: &SecretBytes,
        lifetime: Duration,
    ) -> Result<(Self, SecretBytes), CaError> {
        let upstream = decode_certificates(upstream_chain_pem, "upstream certificate")?;
        if upstream.is_empty() {
            return Err(CaError::EmptyUpstreamChain);
        }
        let (not_before, not_after) = check_upstream(&upstream)?;
        let upstream_key = parse_key(upstream_key_pem)?;
        let signer = upstream_issuer(&upstream[0], upstream_key)?;

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let common_name = format!("Palisade intermediate CA {trust_domain}");
        let san = spiffe_san(trust_domain, "")?;
        let not_after = expiry(lifetime).min(not_after);

        let mut params = base_params(Some(&common_name), vec![san], not_after)?;
        params.not_before = params.not_before.max(not_before);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.use_authority_key_identifier_extension = true;

        let certificate = params.signed_by(&key, &signer)?;
        let key_pem = SecretBytes::new(key.serialize_pem().into_bytes());
        let issuer = Issuer::new(params, key);
        let ca = Self::assemble(trust_domain, certificate.der().to_vec(), issuer, &upstream)?;
        Ok((ca, key_pem))
    }

    /// Loads a root (or any CA that is its own trust anchor) from its certificate and
    /// (unsealed) private key.
    pub fn load(
        trust_domain: &str,
        certificate_pem: &str,
        key_pem: &SecretBytes,
    ) -> Result<Self, CaError> {
        Self::load_with_chain(trust_domain, certificate_pem, key_pem, "")
    }

    /// Loads a CA from its certificate, its (unsealed) private key and the upstream chain it
    /// was signed under (empty for a root). Checks that the key matches the certificate and
    /// that each certificate is a CA signed by the next.
    pub fn load_with_chain(
        trust_domain: &str,
        certificate_pem: &str,
        key_pem: &SecretBytes,
        upstream_chain_pem: &str,
    ) -> Result<Self, CaError> {
        let own = decode_certificates(certificate_pem, "CA certificate")?;
        let [own] = <[Vec<u8>; 1]>::try_from(own).map_err(|_| CaError::BadCertificate {
            which: "the CA certificate".into(),
        })?;
        let upstream = decode_certificates(upstream_chain_pem, "upstream certificate")?;
        let key = parse_key(key_pem)?;

        let mut chain = vec![parse_named("the CA certificate".into(), &own)?];
        chain.extend(parse_upstream(&upstream)?);
        ensure_key_matches(&key, &chain[0])?;
        check_chain(&chain, 0)?;

        let issuer = Issuer::from_ca_cert_der(&own.as_slice().into(), key)?;
        Self::assemble(trust_domain, own, issuer, &upstream)
    }

    /// Builds the CA from its certificate, its issuer and the upstream chain above it.
    fn assemble(
        trust_domain: &str,
        certificate_der: Vec<u8>,
        issuer: Issuer<'static, KeyPair>,
        upstream: &[Vec<u8>],
    ) -> Result<Self, CaError> {
        let certificate = parse_named("the CA certificate".into(), &certificate_der)?;
        let validity = certificate.certificate.validity();
        let (not_before, not_after) = (validity.not_before, validity.not_after);
        let certificate_pem = pem_encode(&certificate_der);
        let upstream_chain_pem: String = upstream.iter().map(|der| pem_encode(der)).collect();

        let (chain_pem, bundle_pem) = match upstream.split_last() {
            None => (String::new(), certificate_pem.clone()),
            Some((anchor, between)) => {
                let above: String = between.iter().map(|der| pem_encode(der)).collect();
                (format!("{certificate_pem}{above}"), pem_encode(anchor))
            }
        };
        Ok(Self {
            trust_domain: trust_domain.to_owned(),
            certificate_pem,
            certificate_der,
            chain_pem,
            bundle_pem,
            upstream_chain_pem,
            not_before: not_before.to_datetime(),
            not_after: not_after.to_datetime(),
            issuer,
        })
    }

    /// The trust domain this CA names.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// This CA's own certificate. For a root it is also the trust bundle.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// This CA's own certificate, as DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// What a leaf holder presents after its leaf: nothing for a root; for an intermediate,
    /// the intermediate and the upstream intermediates above it, nearest first.
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// The trust anchor a verifier needs: the root itself, or the top of the upstream chain.
    pub fn bundle_pem(&self) -> &str {
        &self.bundle_pem
    }

    /// The upstream chain this CA was made under, nearest first, as
    /// [`CertificateAuthority::load_with_chain`] takes it; empty for a root.
    pub fn upstream_chain_pem(&self) -> &str {
        &self.upstream_chain_pem
    }

    /// A short stable id for this CA: the first 16 hex digits of its certificate's SHA-256.
    pub fn id(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.certificate_der);
        hex::encode(&digest.as_ref()[..8])
    }

    /// When this CA's certificate starts being valid.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// When this CA's certificate expires; nothing it issues outlives it.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Issues the control plane's server certificate: the control plane's
    /// SPIFFE ID plus the DNS names and IP addresses it is reached at.
    pub fn issue_server(&self, dns_names: &[String]) -> Result<Issued, CaError> {
        let mut sans = vec![spiffe_san(&self.trust_domain, "/palisade/control-plane")?];
        for name in dns_names {
            match name.parse::<std::net::IpAddr>() {
                Ok(ip) => sans.push(SanType::IpAddress(ip)),
                Err(_) => sans.push(SanType::DnsName(name.as_str().try_into()?)),
            }
        }
        self.issue_leaf("palisade-cp", sans, SERVER_LIFETIME)
    }

    /// Issues an admin's client certificate, `spiffe://<td>/admin/<name>`,
    /// valid for [`ADMIN_LIFETIME`].
    pub fn issue_admin(&self, name: &str) -> Result<Issued, CaError> {
        self.issue_admin_for(name, ADMIN_LIFETIME)
    }

    /// Issues an admin's client certificate valid for `lifetime`.
    pub fn issue_admin_for(&self, name: &str, lifetime: Duration) -> Result<Issued, CaError> {
        let san = spiffe_san(&self.trust_domain, &format!("/admin/{name}"))?;
        self.issue_leaf(name, vec![san], lifetime)
    }

    /// Signs a certificate for a checked request, valid for `lifetime` but never past this
    /// CA's own expiry. The certificate is built from scratch: the request's public key, its
    /// SPIFFE ID (which is also the common name when it fits in 64 characters) and its
    /// accepted DNS names are all it takes from the request.
    pub fn sign_csr(&self, csr: &CheckedCsr, lifetime: Duration) -> Result<SignedLeaf, CaError> {
        let mut sans = vec![SanType::URI(csr.spiffe_id().try_into()?)];
        for name in csr.dns_names() {
            sans.push(SanType::DnsName(name.as_str().try_into()?));
        }
        let common_name = Some(csr.spiffe_id()).filter(|id| id.len() <= MAX_COMMON_NAME);

        let params = self.leaf_params(common_name, sans, lifetime)?;
        let certificate = params.signed_by(csr.public_key(), &self.issuer)?;

        let serial = params.serial_number.as_ref().map(SerialNumber::to_bytes);
        Ok(SignedLeaf {
            certificate_pem: certificate.pem(),
            certificate_der: certificate.der().to_vec(),
            serial_hex: hex::encode(serial.unwrap_or_default()),
            not_before: params.not_before,
            not_after: params.not_after,
            spiffe_id: csr.spiffe_id().to_owned(),
        })
    }

    fn issue_leaf(
        &self,
        common_name: &str,
        sans: Vec<SanType>,
        lifetime: Duration,
    ) -> Result<Issued, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let params = self.leaf_params(Some(common_name), sans, lifetime)?;

        let certificate = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            certificate_pem: certificate.pem(),
            key_pem: SecretBytes::new(key.serialize_pem().into_bytes()),
        })
    }

    /// An end-entity certificate for TLS servers and clients, never outliving this CA.
    fn leaf_params(
        &self,
        common_name: Option<&str>,
        sans: Vec<SanType>,
        lifetime: Duration,
    ) -> Result<CertificateParams, CaError> {
        if OffsetDateTime::now_utc() >= self.not_after {
            return Err(CaError::Expired {
                not_after: self.not_after,
            });
        }

        let not_after = expiry(lifetime).min(self.not_after);
        let mut params = base_params(common_name, sans, not_after)?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        Ok(params)
    }
}

/// Parameters every Palisade certificate shares: O=Palisade and perhaps a common name, the
/// SANs, a random serial, and a validity in whole seconds that starts a little in the past.
fn base_params(
    common_name: Option<&str>,
    sans: Vec<SanType>,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Palisade");
    if let Some(common_name) = common_name {
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
    }

    params.subject_alt_names = sans;
    params.not_before = whole_seconds(OffsetDateTime::now_utc() - BACKDATE);
    params.not_after = whole_seconds(not_after);
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

fn spiffe_san(trust_domain: &str, path: &str) -> Result<SanType, CaError> {
    Ok(SanType::URI(
        format!("spiffe://{trust_domain}{path}").try_into()?,
    ))
}

/// Now plus `lifetime`, held to the latest time X.509 can express.
fn expiry(lifetime: Duration) -> OffsetDateTime {
    let latest = rcgen::date_time_ymd(9999, 12, 31);
    time::Duration::try_from(lifetime)
        .ok()
        .and_then(|lifetime| OffsetDateTime::now_utc().checked_add(lifetime))
        .map_or(latest, |expiry| expiry.min(latest))
}

fn whole_seconds(time: OffsetDateTime) -> OffsetDateTime {
    time.replace_nanosecond(0).unwrap_or(time)
}

/// A random positive 128-bit serial number.
fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| CaError::Random)?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn parse_key(key_pem: &SecretBytes) -> Result<KeyPair, CaError> {
    let key_text = std::str::from_utf8(key_pem.expose()).map_err(|_| CaError::BadKey)?;
    KeyPair::from_pem(key_text).map_err(|_| CaError::BadKey)
}

/// The DER of each PEM certificate in `text`, in order; errors call them `<what> <n>`.
fn decode_certificates(text: &str, what: &str) -> Result<Vec<Vec<u8>>, CaError> {
    let mut ders = Vec::new();
    for (index, block) in Pem::iter_from_buffer(text.as_bytes()).enumerate() {
        let bad = || CaError::BadCertificate {
            which: format!("{what} {}", index + 1),
        };
        let block = block.map_err(|_| bad())?;
        if block.label != "CERTIFICATE" {
            return Err(bad());
        }
        ders.push(block.contents);
    }
    Ok(ders)
}

fn pem_encode(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.extend(line.iter().map(|&byte| char::from(byte)));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// A parsed certificate and the words errors use for it.
struct Named<'a> {
    label: String,
    certificate: X509Certificate<'a>,
}

impl Named<'_> {
    fn name(&self) -> String {
        format!("{} ({})", self.label, self.certificate.subject())
    }
}

fn parse_named(label: String, der: &[u8]) -> Result<Named<'_>, CaError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], certificate)) => Ok(Named { label, certificate }),
        _ => Err(CaError::BadCertificate { which: label }),
    }
}

fn parse_upstream(upstream: &[Vec<u8>]) -> Result<Vec<Named<'_>>, CaError> {
    let label = |index: usize| format!("upstream certificate {}", index + 1);
    upstream
        .iter()
        .enumerate()
        .map(|(index, der)| parse_named(label(index), der))
        .collect()
}

/// Checks an upstream chain that a new intermediate will go under; returns the span of time
/// in which the whole chain is valid.
fn check_upstream(upstream: &[Vec<u8>]) -> Result<(OffsetDateTime, OffsetDateTime), CaError> {
    let chain = parse_upstream(upstream)?;
    check_chain(&chain, 1)?;

    let mut span = (
        OffsetDateTime::UNIX_EPOCH,
        rcgen::date_time_ymd(9999, 12, 31),
    );
    for link in &chain {
        let validity = link.certificate.validity();
        let (not_before, not_after) = (
            validity.not_before.to_datetime(),
            validity.not_after.to_datetime(),
        );
        if !validity.is_valid() {
            let which = link.name();
            return Err(CaError::NotValidNow {
                which,
                not_before,
                not_after,
            });
        }
        span = (span.0.max(not_before), span.1.min(not_after));
    }
    Ok(span)
}

/// Checks that each certificate of `chain` (nearest first) is a CA that may sign and is
/// signed by the next, and that path length constraints allow `below` more CAs under the
/// first.
fn check_chain(chain: &[Named<'_>], below: u32) -> Result<(), CaError> {
    for (depth, link) in (below..).zip(chain) {
        ensure_can_sign(link, depth)?;
    }
    for pair in chain.windows(2) {
        ensure_signed_by(&pair[0], &pair[1])?;
    }
    Ok(())
}

/// Checks that a certificate is a CA allowed to sign certificates with `depth` CAs below it.
fn ensure_can_sign(link: &Named<'_>, depth: u32) -> Result<(), CaError> {
    let certificate = &link.certificate;
    let constraints = certificate.basic_constraints().ok().flatten();
    let Some(constraints) = constraints.filter(|c| c.value.ca) else {
        return Err(CaError::NotACa { which: link.name() });
    };
    if let Some(allowed) = constraints.value.path_len_constraint.filter(|n| *n < depth) {
        return Err(CaError::PathTooLong {
            which: link.name(),
            allowed,
        });
    }

    let key_usage = certificate.key_usage().ok().flatten();
    if key_usage.is_some_and(|usage| !usage.value.key_cert_sign()) {
        return Err(CaError::NoCertSign { which: link.name() });
    }
    Ok(())
}

fn ensure_signed_by(child: &Named<'_>, parent: &Named<'_>) -> Result<(), CaError> {
    let names_match = child.certificate.issuer() == parent.certificate.subject();
    let public_key = parent.certificate.public_key();
    if names_match && child.certificate.verify_signature(Some(public_key)).is_ok() {
        return Ok(());
    }
    Err(CaError::BrokenChain {
        child: child.name(),
        parent: parent.name(),
    })
}

fn ensure_key_matches(key: &KeyPair, link: &Named<'_>) -> Result<(), CaError> {
    let certified = &link.certificate.public_key().subject_public_key.data;
    if key.der_bytes() == certified.as_ref() {
        return Ok(());
    }
    Err(CaError::KeyMismatch { which: link.name() })
}

/// The signer for a new intermediate: the upstream key, which must match the upstream
/// signing certificate.
fn upstream_issuer(der: &[u8], key: KeyPair) -> Result<Issuer<'static, KeyPair>, CaError> {
    let signing = parse_named("upstream certificate 1".into(), der)?;
    ensure_key_matches(&key, &signing)?;
    Ok(Issuer::from_ca_cert_der(&der.into(), key)?)
}

#[cfg(test)]
mod tests;

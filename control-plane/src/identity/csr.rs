//! Certificate signing requests: parsing and the checks they must pass.
//!
//! A node sends a CSR for itself or for one of its workloads. [`check`] reads it (PEM or DER),
//! verifies its self-signature and checks that it asks for exactly the identity the caller
//! expects and nothing more. What comes out, a [`CheckedCsr`], holds only the public key and the
//! names that passed: the CA builds the certificate from those alone, so nothing else in the
//! request can reach a certificate.
//!
//! What a request may hold:
//!
//! - **Key**: ECDSA P-256 or Ed25519. RSA keys of any size and other curves are refused.
//! - **URI SAN**: exactly one, equal byte for byte to the expected SPIFFE ID.
//! - **DNS SANs**: any number, each declared by the workload's Service. A declared wildcard
//!   `*.example.com` covers the name `*.example.com` itself and any name that puts exactly one
//!   label in place of the `*` (`api.example.com`; not `a.b.example.com`, not `example.com`).
//!   Names compare without regard to ASCII case and come out in lowercase.
//! - **Other SAN types** (IP addresses, emails, directory names...): refused.
//! - **Extensions**: subjectAltName is checked as above. keyUsage, extendedKeyUsage and a
//!   basicConstraints with cA=false are ignored, since the CA sets its own. A basicConstraints
//!   with cA=true and every other extension are refused. A requested extension is ignored or
//!   refused, never honoured.
//! - **Subject name and attributes** other than the extension request (a challengePassword,
//!   say): ignored.

use std::borrow::Cow;
use std::fmt;

use rcgen::SubjectPublicKeyInfo;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::der_parser::oid::Oid;
use x509_parser::error::X509Error;
use x509_parser::extensions::{GeneralName, ParsedExtension, X509Extension};
use x509_parser::nom;
use x509_parser::objects::{oid_registry, oid2sn};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS,
    OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509;

/// The largest request accepted, PEM or DER. Real ones are well under 2 KiB.
pub const MAX_CSR_BYTES: usize = 16 * 1024;

/// PEM labels a request may carry; the second is an older spelling some tools still write.
const PEM_LABELS: [&str; 2] = ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"];

/// Strings taken from a request are cut to this many characters in error messages.
const EXCERPT_CHARS: usize = 200;

const ACCEPTED_KEYS: &str = "use an ECDSA P-256 or Ed25519 key";

/// Why a request was refused. Messages name what was wrong and never include key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrError {
    #[error("certificate signing request is empty")]
    Empty,
    #[error("certificate signing request is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("certificate signing request is not valid PEM: {0}")]
    MalformedPem(String),
    #[error("certificate signing request is not valid DER: {0}")]
    MalformedDer(String),
    #[error("RSA keys are not accepted (this one has {bits} bits); {ACCEPTED_KEYS}")]
    RsaKey { bits: usize },
    #[error("ECDSA keys on curve {curve} are not accepted; {ACCEPTED_KEYS}")]
    UnsupportedCurve { curve: String },
    #[error("keys of algorithm {algorithm} are not accepted; {ACCEPTED_KEYS}")]
    UnsupportedKeyAlgorithm { algorithm: String },
    #[error("certificate signing request is signed with unsupported algorithm {algorithm}")]
    UnsupportedSignatureAlgorithm { algorithm: String },
    #[error("certificate signing request signature does not verify")]
    BadSignature,
    #[error("certificate signing request has no URI SAN; expected {expected:?}")]
    NoUri { expected: String },
    #[error("certificate signing request has {count} URI SANs; only one, {expected:?}, is allowed")]
    SeveralUris { count: usize, expected: String },
    #[error(
        "URI SAN {found:?} is in trust domain {found_domain:?}, not {expected_domain:?}; \
         expected {expected:?}"
    )]
    ForeignTrustDomain {
        expected: String,
        found: String,
        expected_domain: String,
        found_domain: String,
    },
    #[error("URI SAN {found:?} is not the expected SPIFFE ID {expected:?}")]
    WrongSpiffeId { expected: String, found: String },
    #[error("DNS SAN {name:?} is not declared by the service ({})", declared_list(.declared))]
    UndeclaredDnsName { name: String, declared: Vec<String> },
    #[error("{kind} SANs are not accepted; only the SPIFFE ID and the service's DNS names")]
    ForbiddenSan { kind: &'static str },
    #[error("certificate signing request asks for CA rights (basicConstraints cA=true)")]
    CaRequested,
    #[error("certificate signing request asks for extension {extension}, which is not accepted")]
    ForbiddenExtension { extension: String },
    #[error("certificate signing request has a malformed {extension} extension")]
    MalformedExtension { extension: String },
    #[error("certificate signing request repeats {what}")]
    Repeated { what: String },
}

/// What the caller expects a request to ask for.
#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    /// The one SPIFFE ID the certificate may carry.
    pub spiffe_id: &'a str,
    /// The DNS names the workload's Service declares; entries may be wildcards (`*.example.com`).
    pub dns_names: &'a [String],
}

/// The kinds of key a request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on the NIST P-256 curve.
    EcdsaP256,
    /// EdDSA on Curve25519.
    Ed25519,
}

/// A request that passed every check: its public key and the names it may have.
pub struct CheckedCsr {
    public_key: SubjectPublicKeyInfo,
    key_algorithm: KeyAlgorithm,
    spiffe_id: String,
    dns_names: Vec<String>,
}

impl fmt::Debug for CheckedCsr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedCsr")
            .field("key_algorithm", &self.key_algorithm)
            .field("spiffe_id", &self.spiffe_id)
            .field("dns_names", &self.dns_names)
            .finish_non_exhaustive()
    }
}

impl CheckedCsr {
    /// The subject's public key, ready for the CA to sign.
    pub fn public_key(&self) -> &SubjectPublicKeyInfo {
        &self.public_key
    }

    /// The kind of the subject's key.
    pub fn key_algorithm(&self) -> KeyAlgorithm {
        self.key_algorithm
    }

    /// The SPIFFE ID, equal to the expected one.
    pub fn spiffe_id(&self) -> &str {
        &self.spiffe_id
    }

    /// The DNS names that passed, in lowercase, in the request's order, without repeats.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }
}

/// Parses `input` (PEM or DER) and checks it against what the caller expects.
pub fn check(input: &[u8], expected: &Expectation<'_>) -> Result<CheckedCsr, CsrError> {
    let der = decode(input)?;
    let csr = parse_der(&der)?;
    let spki = &csr.certification_request_info.subject_pki;
    let key_algorithm = key_algorithm(spki)?;
    verify_signature(&csr)?;

    let requested = requested_names(&csr)?;
    let spiffe_id = check_spiffe_id(&requested.uris, expected.spiffe_id)?;
    let dns_names = check_dns_names(&requested.dns_names, expected.dns_names)?;

    let public_key = SubjectPublicKeyInfo::from_der(spki.raw)
        .map_err(|_| CsrError::MalformedDer("the subject public key cannot be read".into()))?;
    Ok(CheckedCsr {
        public_key,
        key_algorithm,
        spiffe_id,
        dns_names,
    })
}

/// Returns the DER of a request given as DER (which starts with a SEQUENCE tag) or as PEM.
fn decode(input: &[u8]) -> Result<Cow<'_, [u8]>, CsrError> {
    if input.is_empty() {
        return Err(CsrError::Empty);
    }
    if input.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge {
            size: input.len(),
            limit: MAX_CSR_BYTES,
        });
    }
    if input[0] == 0x30 {
        return Ok(Cow::Borrowed(input));
    }
    decode_pem(input).map(Cow::Owned)
}

fn decode_pem(input: &[u8]) -> Result<Vec<u8>, CsrError> {
    let (rest, pem) = x509_parser::pem::parse_x509_pem(input).map_err(|error| {
        let reason = match error {
            nom::Err::Error(e) | nom::Err::Failure(e) => e.to_string(),
            nom::Err::Incomplete(_) => "incomplete PEM".to_owned(),
        };
        CsrError::MalformedPem(reason)
    })?;

    if !PEM_LABELS.contains(&pem.label.as_str()) {
        let label = excerpt(&pem.label);
        return Err(CsrError::MalformedPem(format!(
            "the block is labelled {label:?}, not \"CERTIFICATE REQUEST\""
        )));
    }
    if !rest.iter().all(u8::is_ascii_whitespace) {
        return Err(CsrError::MalformedPem(
            "there is more after the END line".into(),
        ));
    }
    Ok(pem.contents)
}

fn parse_der(der: &[u8]) -> Result<X509CertificationRequest<'_>, CsrError> {
    let (rest, csr) = X509CertificationRequest::from_der(der).map_err(|error| {
        let reason = match error {
            nom::Err::Error(e) | nom::Err::Failure(e) => e.to_string(),
            nom::Err::Incomplete(_) => "the request is truncated".to_owned(),
        };
        CsrError::MalformedDer(reason)
    })?;

    if !rest.is_empty() {
        return Err(CsrError::MalformedDer(
            "there are bytes after the request".into(),
        ));
    }
    Ok(csr)
}

/// Accepts ECDSA P-256 and Ed25519 keys, and says what it found otherwise.
fn key_algorithm(spki: &x509::SubjectPublicKeyInfo<'_>) -> Result<KeyAlgorithm, CsrError> {
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == OID_SIG_ED25519 {
        return Ok(KeyAlgorithm::Ed25519);
    }
    if *algorithm == OID_PKCS1_RSAENCRYPTION || *algorithm == OID_PKCS1_RSASSAPSS {
        let bits = spki.parsed().map_or(0, |key| key.key_size());
        return Err(CsrError::RsaKey { bits });
    }
    if *algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        return Err(CsrError::UnsupportedKeyAlgorithm {
            algorithm: describe(algorithm),
        });
    }

    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    match curve {
        Some(curve) if curve == OID_EC_P256 => Ok(KeyAlgorithm::EcdsaP256),
        Some(curve) => Err(CsrError::UnsupportedCurve {
            curve: describe(&curve),
        }),
        None => Err(CsrError::UnsupportedCurve {
            curve: "(not named)".into(),
        }),
    }
}

fn verify_signature(csr: &X509CertificationRequest<'_>) -> Result<(), CsrError> {
    csr.verify_signature().map_err(|error| match error {
        X509Error::SignatureUnsupportedAlgorithm => CsrError::UnsupportedSignatureAlgorithm {
            algorithm: describe(&csr.signature_algorithm.algorithm),
        },
        _ => CsrError::BadSignature,
    })
}

/// The names a request's subjectAltName asks for, sorted by kind.
#[derive(Default)]
struct RequestedNames<'a> {
    uris: Vec<&'a str>,
    dns_names: Vec<&'a str>,
}

/// Walks the requested extensions, refusing what may not be asked for, and returns the SANs.
fn requested_names<'a>(
    csr: &'a X509CertificationRequest<'a>,
) -> Result<RequestedNames<'a>, CsrError> {
    let mut names = RequestedNames::default();
    let mut seen: Vec<&Oid<'_>> = Vec::new();

    for extension in requested_extensions(csr)? {
        if seen.contains(&&extension.oid) {
            return Err(CsrError::Repeated {
                what: format!("extension {}", describe(&extension.oid)),
            });
        }
        seen.push(&extension.oid);
        if let Some(general_names) = judge_extension(extension)? {
            names = sort_names(general_names)?;
        }
    }
    Ok(names)
}

/// The extensions of the one extensionRequest attribute, if there is one.
fn requested_extensions<'a>(
    csr: &'a X509CertificationRequest<'a>,
) -> Result<&'a [X509Extension<'a>], CsrError> {
    let mut requests = csr
        .certification_request_info
        .iter_attributes()
        .filter_map(|attribute| match attribute.parsed_attribute() {
            ParsedCriAttribute::ExtensionRequest(request) => Some(&request.extensions[..]),
            _ => None,
        });

    let extensions = requests.next().unwrap_or_default();
    if requests.next().is_some() {
        return Err(CsrError::Repeated {
            what: "the extensionRequest attribute".into(),
        });
    }
    Ok(extensions)
}

/// Refuses an extension that may not be asked for; returns the names of a subjectAltName.
fn judge_extension<'a>(
    extension: &'a X509Extension<'a>,
) -> Result<Option<&'a [GeneralName<'a>]>, CsrError> {
    match extension.parsed_extension() {
        ParsedExtension::SubjectAlternativeName(san) => Ok(Some(&san.general_names)),
        ParsedExtension::BasicConstraints(constraints) if constraints.ca => {
            Err(CsrError::CaRequested)
        }
        ParsedExtension::BasicConstraints(_)
        | ParsedExtension::KeyUsage(_)
        | ParsedExtension::ExtendedKeyUsage(_) => Ok(None),
        ParsedExtension::ParseError { .. } => Err(CsrError::MalformedExtension {
            extension: describe(&extension.oid),
        }),
        _ => Err(CsrError::ForbiddenExtension {
            extension: describe(&extension.oid),
        }),
    }
}

fn sort_names<'a>(general_names: &'a [GeneralName<'a>]) -> Result<RequestedNames<'a>, CsrError> {
    let mut names = RequestedNames::default();
    for name in general_names {
        let kind = match name {
            GeneralName::URI(uri) => {
                names.uris.push(uri);
                continue;
            }
            GeneralName::DNSName(dns_name) => {
                names.dns_names.push(dns_name);
                continue;
            }
            GeneralName::Invalid(..) => {
                return Err(CsrError::MalformedExtension {
                    extension: "subjectAltName".into(),
                });
            }
            GeneralName::IPAddress(_) => "IP address",
            GeneralName::RFC822Name(_) => "email",
            GeneralName::DirectoryName(_) => "directory name",
            GeneralName::OtherName(..) => "other-name",
            GeneralName::RegisteredID(_) => "registered ID",
            GeneralName::X400Address(_) => "X.400 address",
            GeneralName::EDIPartyName(_) => "EDI party name",
        };
        return Err(CsrError::ForbiddenSan { kind });
    }
    Ok(names)
}

fn check_spiffe_id(uris: &[&str], expected: &str) -> Result<String, CsrError> {
    let found = match uris {
        [] => {
            return Err(CsrError::NoUri {
                expected: expected.to_owned(),
            });
        }
        [found] => *found,
        _ => {
            return Err(CsrError::SeveralUris {
                count: uris.len(),
                expected: expected.to_owned(),
            });
        }
    };
    if found == expected {
        return Ok(found.to_owned());
    }

    match (trust_domain(expected), trust_domain(found)) {
        (Some(expected_domain), Some(found_domain)) if expected_domain != found_domain => {
            Err(CsrError::ForeignTrustDomain {
                expected: expected.to_owned(),
                found: excerpt(found),
                expected_domain: expected_domain.to_owned(),
                found_domain: excerpt(found_domain),
            })
        }
        _ => Err(CsrError::WrongSpiffeId {
            expected: expected.to_owned(),
            found: excerpt(found),
        }),
    }
}

/// The trust domain of a `spiffe://` URI.
fn trust_domain(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("spiffe://")?;
    Some(rest.split_once('/').map_or(rest, |(domain, _)| domain))
}

fn check_dns_names(requested: &[&str], declared: &[String]) -> Result<Vec<String>, CsrError> {
    let mut accepted: Vec<String> = Vec::with_capacity(requested.len());
    for name in requested {
        let name = name.to_ascii_lowercase();
        if !declared.iter().any(|pattern| covers(pattern, &name)) {
            return Err(CsrError::UndeclaredDnsName {
                name: excerpt(&name),
                declared: declared.to_vec(),
            });
        }
        if !accepted.contains(&name) {
            accepted.push(name);
        }
    }
    Ok(accepted)
}

/// Whether a declared name (perhaps `*.suffix`) covers a lowercase requested name.
fn covers(declared: &str, name: &str) -> bool {
    let declared = declared.to_ascii_lowercase();
    if declared == name {
        return true;
    }

    let Some(suffix) = declared.strip_prefix("*.") else {
        return false;
    };
    let Some((label, rest)) = name.split_once('.') else {
        return false;
    };
    rest == suffix && is_dns_label(label)
}

fn is_dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// An OID by its short name when known, with its dotted form: `secp384r1 (1.3.132.0.34)`.
fn describe(oid: &Oid<'_>) -> String {
    let dotted = oid.to_id_string();
    match oid2sn(oid, oid_registry()) {
        Ok(name) => format!("{name} ({dotted})"),
        Err(_) => dotted,
    }
}

fn declared_list(declared: &[String]) -> String {
    if declared.is_empty() {
        return "it declares none".to_owned();
    }
    format!("it declares {}", declared.join(", "))
}

/// A string from a request, cut short for an error message.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// Builders of requests for tests, here and in the CA.
#[cfg(test)]
pub(crate) mod testing {
    use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};

    use super::{CheckedCsr, Expectation, check};

    /// A PEM request signed by `key`, asking for `sans`.
    pub(crate) fn request(key: &KeyPair, sans: Vec<SanType>) -> String {
        request_with(key, params(sans))
    }

    /// A PEM request signed by `key`, asking for what `params` hold.
    pub(crate) fn request_with(key: &KeyPair, params: CertificateParams) -> String {
        params.serialize_request(key).unwrap().pem().unwrap()
    }

    /// Request parameters asking for `sans` and nothing else.
    pub(crate) fn params(sans: Vec<SanType>) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params
    }

    pub(crate) fn uri(uri: &str) -> SanType {
        SanType::URI(uri.try_into().unwrap())
    }

    pub(crate) fn dns(name: &str) -> SanType {
        SanType::DnsName(name.try_into().unwrap())
    }

    /// A checked P-256 request for `spiffe_id` and `dns_names`.
    pub(crate) fn checked(spiffe_id: &str, dns_names: &[String]) -> CheckedCsr {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut sans = vec![uri(spiffe_id)];
        sans.extend(dns_names.iter().map(|name| dns(name)));
        let expected = Expectation {
            spiffe_id,
            dns_names,
        };
        check(request(&key, sans).as_bytes(), &expected).unwrap()
    }
}

#[cfg(test)]
mod tests;

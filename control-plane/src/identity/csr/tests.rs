use std::net::{IpAddr, Ipv4Addr};

use rcgen::{
    BasicConstraints, CustomExtension, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PKCS_RSA_SHA256, RsaKeySize,
    SanType,
};

use super::testing::{dns, params, request, request_with, uri};
use super::*;

const ID: &str = "spiffe://example.org/ns/shop/sa/cart";

fn p256() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()
}

fn declared(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

fn check_against(input: &[u8], dns_names: &[String]) -> Result<CheckedCsr, CsrError> {
    let expected = Expectation {
        spiffe_id: ID,
        dns_names,
    };
    check(input, &expected)
}

fn check_sans(sans: Vec<SanType>) -> Result<CheckedCsr, CsrError> {
    let pem = request(&p256(), sans);
    check_against(
        pem.as_bytes(),
        &declared(&["cart.shop.svc", "*.cart.example.com"]),
    )
}

fn der_of(pem: &str) -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    pem.contents
}

#[test]
fn p256_request_passes_and_names_the_spiffe_id() {
    let checked = check_sans(vec![uri(ID), dns("cart.shop.svc")]).unwrap();

    assert_eq!(checked.spiffe_id(), ID);
    assert_eq!(checked.dns_names(), ["cart.shop.svc"]);
    assert_eq!(checked.key_algorithm(), KeyAlgorithm::EcdsaP256);
}

#[test]
fn ed25519_request_passes_and_names_the_spiffe_id() {
    let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let pem = request(&key, vec![uri(ID)]);

    let checked = check_against(pem.as_bytes(), &[]).unwrap();

    assert_eq!(checked.spiffe_id(), ID);
    assert_eq!(checked.key_algorithm(), KeyAlgorithm::Ed25519);
}

#[test]
fn der_request_passes() {
    let pem = request(&p256(), vec![uri(ID)]);

    let checked = check_against(&der_of(&pem), &[]).unwrap();

    assert_eq!(checked.spiffe_id(), ID);
}

#[test]
fn checked_key_is_the_requests_key() {
    let key = p256();
    let pem = request(&key, vec![uri(ID)]);

    let checked = check_against(pem.as_bytes(), &[]).unwrap();

    use rcgen::PublicKeyData;
    assert_eq!(
        checked.public_key().subject_public_key_info(),
        key.subject_public_key_info()
    );
}

#[test]
fn wildcard_covers_one_label_and_itself() {
    let checked = check_sans(vec![
        uri(ID),
        dns("API.cart.example.com"),
        dns("*.cart.example.com"),
        dns("api.cart.example.com"),
    ])
    .unwrap();

    assert_eq!(
        checked.dns_names(),
        ["api.cart.example.com", "*.cart.example.com"]
    );
}

#[test]
fn wildcard_covers_neither_two_labels_nor_the_bare_domain() {
    for name in [
        "a.b.cart.example.com",
        "cart.example.com",
        "-x.cart.example.com",
    ] {
        let refused = check_sans(vec![uri(ID), dns(name)]).unwrap_err();

        assert!(
            matches!(refused, CsrError::UndeclaredDnsName { .. }),
            "{name}: {refused}"
        );
    }
}

#[test]
fn undeclared_dns_name_is_refused_with_the_declared_ones() {
    let refused = check_sans(vec![uri(ID), dns("evil.example.net")]).unwrap_err();

    assert!(matches!(refused, CsrError::UndeclaredDnsName { .. }));
    let message = refused.to_string();
    assert!(message.contains("\"evil.example.net\""), "{message}");
    assert!(
        message.contains("cart.shop.svc, *.cart.example.com"),
        "{message}"
    );
}

#[test]
fn declared_name_that_is_not_a_wildcard_only_covers_itself() {
    let refused = check_sans(vec![uri(ID), dns("x.cart.shop.svc")]).unwrap_err();

    assert!(matches!(refused, CsrError::UndeclaredDnsName { .. }));
}

#[test]
fn oversized_request_is_refused() {
    let input = vec![b'-'; MAX_CSR_BYTES + 1];

    let refused = check_against(&input, &[]).unwrap_err();

    assert_eq!(
        refused,
        CsrError::TooLarge {
            size: MAX_CSR_BYTES + 1,
            limit: MAX_CSR_BYTES
        }
    );
}

#[test]
fn empty_request_is_refused() {
    assert_eq!(check_against(b"", &[]).unwrap_err(), CsrError::Empty);
}

#[test]
fn malformed_pem_is_refused() {
    let bad_base64 =
        "-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n";
    let no_end = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n";

    for input in ["not a request", bad_base64, no_end] {
        let refused = check_against(input.as_bytes(), &[]).unwrap_err();

        assert!(matches!(refused, CsrError::MalformedPem(_)), "{refused}");
    }
}

#[test]
fn pem_block_of_another_kind_is_refused() {
    let key = p256();
    let certificate = params(vec![uri(ID)]).self_signed(&key).unwrap().pem();

    let refused = check_against(certificate.as_bytes(), &[]).unwrap_err();

    assert!(matches!(refused, CsrError::MalformedPem(_)));
    assert!(refused.to_string().contains("\"CERTIFICATE\""), "{refused}");
}

#[test]
fn second_pem_block_is_refused() {
    let key = p256();
    let pem = request(&key, vec![uri(ID)]);
    let twice = format!("{pem}{pem}");

    let refused = check_against(twice.as_bytes(), &[]).unwrap_err();

    assert!(matches!(refused, CsrError::MalformedPem(_)));
}

#[test]
fn truncated_der_is_refused() {
    let der = der_of(&request(&p256(), vec![uri(ID)]));

    let refused = check_against(&der[..der.len() / 2], &[]).unwrap_err();

    assert!(matches!(refused, CsrError::MalformedDer(_)), "{refused}");
}

#[test]
fn bytes_after_the_der_are_refused() {
    let mut der = der_of(&request(&p256(), vec![uri(ID)]));
    der.push(0);

    let refused = check_against(&der, &[]).unwrap_err();

    assert!(matches!(refused, CsrError::MalformedDer(_)), "{refused}");
}

#[test]
fn flipped_signature_is_refused() {
    let ed25519 = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    for key in [p256(), ed25519] {
        let mut der = der_of(&request(&key, vec![uri(ID)]));
        let last = der.len() - 1;
        der[last] ^= 0x01;

        let refused = check_against(&der, &[]).unwrap_err();

        assert_eq!(refused, CsrError::BadSignature);
    }
}

#[test]
fn altered_request_body_is_refused() {
    let other = "spiffe://example.org/ns/shop/sa/carx";
    let mut der = der_of(&request(&p256(), vec![uri(other)]));
    let at = der
        .windows(other.len())
        .position(|w| w == other.as_bytes())
        .unwrap();
    der[at + other.len() - 1] = b't';

    let refused = check_against(&der, &[]).unwrap_err();

    assert_eq!(refused, CsrError::BadSignature);
}

#[test]
fn rsa_key_is_refused_naming_the_accepted_keys() {
    let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap();
    let pem = request(&key, vec![uri(ID)]);

    let refused = check_against(pem.as_bytes(), &[]).unwrap_err();

    assert_eq!(refused, CsrError::RsaKey { bits: 2048 });
    let message = refused.to_string();
    assert!(message.contains("RSA keys are not accepted"), "{message}");
    assert!(message.contains("ECDSA P-256 or Ed25519"), "{message}");
}

#[test]
fn p384_key_is_refused() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let pem = request(&key, vec![uri(ID)]);

    let refused = check_against(pem.as_bytes(), &[]).unwrap_err();

    assert!(matches!(refused, CsrError::UnsupportedCurve { .. }));
    assert!(refused.to_string().contains("secp384r1"), "{refused}");
}

#[test]
fn request_without_uri_is_refused() {
    let refused = check_sans(vec![dns("cart.shop.svc")]).unwrap_err();

    assert!(matches!(refused, CsrError::NoUri { .. }));
}

#[test]
fn request_without_extensions_is_refused() {
    let refused = check_sans(vec![]).unwrap_err();

    assert!(matches!(refused, CsrError::NoUri { .. }));
}

#[test]
fn two_uris_are_refused() {
    let refused = check_sans(vec![uri(ID), uri("spiffe://example.org/other")]).unwrap_err();

    assert!(matches!(refused, CsrError::SeveralUris { count: 2, .. }));
}

#[test]
fn uri_in_another_trust_domain_is_refused_naming_both() {
    let refused = check_sans(vec![uri("spiffe://evil.org/ns/shop/sa/cart")]).unwrap_err();

    assert!(matches!(refused, CsrError::ForeignTrustDomain { .. }));
    let message = refused.to_string();
    assert!(message.contains("\"evil.org\""), "{message}");
    assert!(message.contains("\"example.org\""), "{message}");
    assert!(message.contains(ID), "{message}");
}

#[test]
fn other_spiffe_id_in_the_same_trust_domain_is_refused() {
    let refused = check_sans(vec![uri("spiffe://example.org/ns/shop/sa/admin")]).unwrap_err();

    assert_eq!(
        refused,
        CsrError::WrongSpiffeId {
            expected: ID.into(),
            found: "spiffe://example.org/ns/shop/sa/admin".into()
        }
    );
}

#[test]
fn uri_of_another_scheme_is_refused() {
    let refused = check_sans(vec![uri("https://example.org/ns/shop/sa/cart")]).unwrap_err();

    assert!(matches!(refused, CsrError::WrongSpiffeId { .. }));
}

#[test]
fn ip_and_email_sans_are_refused() {
    let ip = SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let email = SanType::Rfc822Name("cart@example.org".try_into().unwrap());

    for (san, kind) in [(ip, "IP address"), (email, "email")] {
        let refused = check_sans(vec![uri(ID), san]).unwrap_err();

        assert_eq!(refused, CsrError::ForbiddenSan { kind });
    }
}

#[test]
fn request_for_ca_rights_is_refused() {
    let mut params = params(vec![uri(ID)]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let pem = request_with(&p256(), params);

    let refused = check_against(pem.as_bytes(), &[]).unwrap_err();

    assert_eq!(refused, CsrError::CaRequested);
}

#[test]
fn requested_key_usages_and_no_ca_are_ignored() {
    let mut params = params(vec![uri(ID)]);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let pem = request_with(&p256(), params);

    let checked = check_against(pem.as_bytes(), &[]).unwrap();

    assert_eq!(checked.spiffe_id(), ID);
}

#[test]
fn other_requested_extension_is_refused() {
    let mut params = params(vec![uri(ID)]);
    let der_null = vec![0x05, 0x00];
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 4, 1, 55555, 1],
        der_null,
    )];
    let pem = request_with(&p256(), params);

    let refused = check_against(pem.as_bytes(), &[]).unwrap_err();

    assert_eq!(
        refused,
        CsrError::ForbiddenExtension {
            extension: "1.3.6.1.4.1.55555.1".into()
        }
    );
}

#[test]
fn repeated_extension_is_refused() {
    let mut params = params(vec![uri(ID)]);
    let second_san = vec![0x30, 0x00];
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        &[2, 5, 29, 17],
        second_san,
    )];
    let pem = request_with(&p256(), params);

    let refused = check_against(pem.as_bytes(), &[]).unwrap_err();

    assert!(matches!(refused, CsrError::Repeated { .. }), "{refused}");
}

#[test]
fn debug_does_not_print_the_key() {
    let key = p256();
    let pem = request(&key, vec![uri(ID)]);
    let checked = check_against(pem.as_bytes(), &[]).unwrap();

    let printed = format!("{checked:?}");

    assert!(printed.contains(ID));
    assert!(!printed.contains("public_key"), "{printed}");
    assert!(!printed.contains(&format!("{:?}", key.public_key_raw())));
}

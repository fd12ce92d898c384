use rcgen::{CertificateParams, KeyPair};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::*;
use crate::identity::csr::testing::checked;

const TD: &str = "example.org";
const ID: &str = "spiffe://example.org/ns/shop/sa/cart";
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn ders(pem: &str) -> Vec<Vec<u8>> {
    Pem::iter_from_buffer(pem.as_bytes())
        .map(|block| block.unwrap().contents)
        .collect()
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    x509_parser::parse_x509_certificate(der).unwrap().1
}

fn signed_by(child: &[u8], parent: &[u8]) -> bool {
    let (child, parent) = (parse(child), parse(parent));
    child.issuer() == parent.subject() && child.verify_signature(Some(parent.public_key())).is_ok()
}

fn sans(der: &[u8]) -> Vec<String> {
    let certificate = parse(der);
    let sans = certificate.subject_alternative_name().unwrap().unwrap();
    sans.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::URI(uri) => format!("URI:{uri}"),
            GeneralName::DNSName(dns) => format!("DNS:{dns}"),
            GeneralName::IPAddress(_) => "IP".to_owned(),
            other => format!("{other:?}"),
        })
        .collect()
}

fn spiffe_ids(pem: &str) -> Vec<String> {
    let der = &ders(pem)[0];
    sans(der)
        .into_iter()
        .filter_map(|san| san.strip_prefix("URI:").map(str::to_owned))
        .collect()
}

fn key_of(key_pem: &SecretBytes) -> KeyPair {
    KeyPair::from_pem(std::str::from_utf8(key_pem.expose()).unwrap()).unwrap()
}

/// An upstream intermediate, unconstrained in path length, under a fresh root; returns the
/// upstream chain PEM (intermediate then root), the intermediate's key and the root PEM.
fn upstream_with_intermediate() -> (String, SecretBytes, String) {
    let (root, root_key) = CertificateAuthority::create_root("corp.example").unwrap();
    let root_issuer = Issuer::from_ca_cert_pem(root.certificate_pem(), key_of(&root_key)).unwrap();

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "Corp issuing CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = OffsetDateTime::now_utc() - DAY;
    params.not_after = OffsetDateTime::now_utc() + 30 * DAY;
    params.use_authority_key_identifier_extension = true;
    let certificate = params.signed_by(&key, &root_issuer).unwrap();

    let chain = format!("{}{}", certificate.pem(), root.certificate_pem());
    let key_pem = SecretBytes::new(key.serialize_pem().into_bytes());
    (chain, key_pem, root.certificate_pem().to_owned())
}

#[test]
fn admin_certificate_carries_the_admin_spiffe_id() {
    let (ca, _) = CertificateAuthority::create_root(TD).unwrap();

    let issued = ca.issue_admin("alice").unwrap();

    assert_eq!(
        spiffe_ids(&issued.certificate_pem),
        ["spiffe://example.org/admin/alice"]
    );
}

#[test]
fn reloaded_ca_issues_certificates_that_chain_to_the_same_root() {
    let (ca, key) = CertificateAuthority::create_root(TD).unwrap();
    let reloaded = CertificateAuthority::load(TD, ca.certificate_pem(), &key).unwrap();

    let issued = reloaded
        .issue_server(&["localhost".into(), "127.0.0.1".into()])
        .unwrap();

    assert!(signed_by(
        &ders(&issued.certificate_pem)[0],
        ca.certificate_der()
    ));
    assert_eq!(reloaded.id(), ca.id());
}

#[test]
fn issued_key_is_not_printed() {
    let (ca, _) = CertificateAuthority::create_root(TD).unwrap();

    let issued = ca.issue_admin("alice").unwrap();

    assert!(!format!("{issued:?}").contains("PRIVATE KEY"));
}

#[test]
fn root_presents_no_chain_and_is_its_own_bundle() {
    let (ca, _) = CertificateAuthority::create_root(TD).unwrap();

    assert_eq!(ca.chain_pem(), "");
    assert_eq!(ca.upstream_chain_pem(), "");
    assert_eq!(ca.bundle_pem(), ca.certificate_pem());
    assert_eq!(ders(ca.certificate_pem()), [ca.certificate_der().to_vec()]);
}

#[test]
fn id_is_sixteen_hex_digits_of_the_certificate_digest() {
    let (ca, _) = CertificateAuthority::create_root(TD).unwrap();
    let (other, _) = CertificateAuthority::create_root(TD).unwrap();

    let id = ca.id();

    assert_eq!(id.len(), 16);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_ne!(id, other.id());
}

#[test]
fn root_lifetime_sets_its_validity() {
    let before = OffsetDateTime::now_utc();

    let (ca, _) = CertificateAuthority::create_root_with_lifetime(TD, DAY).unwrap();

    let expected = before + DAY;
    assert!((ca.not_after() - expected).abs() < time::Duration::seconds(5));
    assert!(ca.not_before() <= before - BACKDATE + time::Duration::seconds(1));
}

#[test]
fn load_refuses_a_key_that_does_not_match() {
    let (ca, _) = CertificateAuthority::create_root(TD).unwrap();
    let (_, other_key) = CertificateAuthority::create_root(TD).unwrap();

    let refused = CertificateAuthority::load(TD, ca.certificate_pem(), &other_key).unwrap_err();

    assert!(matches!(refused, CaError::KeyMismatch { .. }), "{refused}");
}

#[test]
fn load_refuses_a_certificate_that_is_not_a_ca() {
    let (ca, _) = CertificateAuthority::create_root(TD).unwrap();
    let server = ca.issue_server(&["localhost".into()]).unwrap();

    let refused =
        CertificateAuthority::load(TD, &server.certificate_pem, &server.key_pem).unwrap_err();

    assert!(matches!(refused, CaError::NotACa { .. }), "{refused}");
}

#[test]
fn signed_leaf_is_an_end_entity_for_servers_and_clients() {
    let (ca, _) = CertificateAuthority::create_root(TD).unwrap();

    let leaf = ca.sign_csr(&checked(ID, &[]), HOUR).unwrap();

    let certificate = parse(&leaf.certificate_der);
    assert!(!certificate.is_ca());
    let constraints = certificate.basic_constraints().unwrap().unwrap();
    assert!(constraints.critical && !constraints.value.ca);
    let usage = certificate.key_usage().unwrap().unwrap();
    assert!(usage.critical && usage.value.digital_signature());
    assert_eq!(usage.value.flags.count_ones(), 1);
    let eku = certificate.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth && !eku.code_signing && !eku.any);
}

#[test]
fn signed_leaf_names_the_spiffe_id_first_then_the_dns_names() {
    let (ca, _) = CertificateAuthority::create_root(TD).unwrap();
    let names = vec!["cart.shop.svc".to_owned(), "api.example.com".to_owned()];

    let leaf = ca.sign_csr(&checked(ID, &names), HOUR).unwrap();

    assert_eq!(
        sans(&leaf.certificate_der),
        [
            format!("URI:{ID}"),
            "DNS:cart.shop.svc".into(),
            "DNS:api.example.com".into()
        ]
    );
    assert_eq!(leaf.spiffe_id, ID);
    let subject = parse(&leaf.certificate_der).subject().to_string();
    assert_eq!(subject, format!("O=Palisade, CN={ID}"));
}

#[test]
fn long_spiffe_id_is_left_out_of_the_common_name() {
    let (ca, _) = CertificateAuthority::create_root(TD).unwrap();
    let id = format!("spiffe://example.org/ns/{}/sa/cart", "x".repeat(60));

    let leaf = ca.sign_csr(&checked(&id, &[]), HOUR).unwrap();

    assert_eq!(
        parse(&leaf.certificate_der).subject().to_string(),
        "O=Palisade"
    );
    assert_eq!(sans(&leaf.certificate_der), [format!("URI:{id}")]);
}

#[test]
fn signed_leaf_verifies_against_the_ca_and_names_its_keys() {
    let (ca, _) = CertificateAuthority::create_root(TD).unwrap();

    let leaf = ca.sign_csr(&checked(ID, &[]), HOUR).unwrap();

    assert!(signed_by(&leaf.certificate_der, ca.certificate_der()));
    let root = parse(ca.certificate_der());
    let certificate = parse(&leaf.certificate_der);
    let root_ski = root
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        });
    let leaf_aki = certificate
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|id| id.0.to_vec())
            }
            _ => None,
        });
    let leaf_has_ski = certificate.extensions().iter().any(|e| {
        matches!(
            e.parsed_extension(),
            ParsedExtension::SubjectKeyIdentifier(_)
        )
    });
    assert!(root_ski.is_some());
    assert_eq!(leaf_aki, root_ski);
    assert!(leaf_has_ski);
}

#[test]
fn signed_leaf_reports_its_serial_and_validity() {
    let (ca, _) = CertificateAuthority::create_root(TD).unwrap();

    let leaf = ca.sign_csr(&checked(ID, &[]), HOUR).unwrap();

    let certificate = parse(&leaf.certificate_der);
    assert_eq!(
        leaf.serial_hex,
        certificate.raw_serial_as_string().replace(':', "")
    );
    assert_eq!(
        leaf.not_before,
        certificate.validity().not_before.to_datetime()
    );
    assert_eq!(
        leaf.not_after,
        certificate.validity().not_after.to_datetime()
    );
    assert_eq!(leaf.not_after - leaf.not_before, HOUR + BACKDATE);
    assert_eq!(
        ders(&leaf.certificate_pem),
        std::slice::from_ref(&leaf.certificate_der)
    );
}

#[test]
fn signed_leaf_never_outlives_the_ca() {
    let (ca, _) = CertificateAuthority::create_root_with_lifetime(TD, HOUR).unwrap();

    let leaf = ca.sign_csr(&checked(ID, &[]), DAY).unwrap();

    assert_eq!(leaf.not_after, ca.not_after());
    assert_eq!(
        parse(&leaf.certificate_der)
            .validity()
            .not_after
            .to_datetime(),
        ca.not_after()
    );
}

#[test]
fn expired_ca_refuses_to_sign() {
    let (ca, _) = CertificateAuthority::create_root_with_lifetime(TD, Duration::ZERO).unwrap();

    let refused = ca.sign_csr(&checked(ID, &[]), HOUR).unwrap_err();

    assert!(matches!(refused, CaError::Expired { .. }), "{refused}");
}

#[test]
fn intermediate_leaves_chain_up_to_the_upstream_root() {
    let (root, root_key) = CertificateAuthority::create_root("corp.example").unwrap();
    let (ca, _) =
        CertificateAuthority::create_intermediate(TD, root.certificate_pem(), &root_key, DAY)
            .unwrap();

    let leaf = ca.sign_csr(&checked(ID, &[]), HOUR).unwrap();

    let chain = ders(ca.chain_pem());
    assert_eq!(chain, [ca.certificate_der().to_vec()]);
    assert_eq!(ca.bundle_pem(), root.certificate_pem());
    assert!(signed_by(&leaf.certificate_der, &chain[0]));
    assert!(signed_by(&chain[0], root.certificate_der()));
    assert_eq!(spiffe_ids(ca.certificate_pem()), ["spiffe://example.org"]);
}

#[test]
fn intermediate_is_a_ca_for_leaves_only() {
    let (root, root_key) = CertificateAuthority::create_root("corp.example").unwrap();

    let (ca, _) =
        CertificateAuthority::create_intermediate(TD, root.certificate_pem(), &root_key, DAY)
            .unwrap();

    let certificate = parse(ca.certificate_der());
    let constraints = certificate.basic_constraints().unwrap().unwrap().value;
    assert!(constraints.ca);
    assert_eq!(constraints.path_len_constraint, Some(0));
    let usage = certificate.key_usage().unwrap().unwrap().value;
    assert!(usage.key_cert_sign() && usage.crl_sign() && !usage.digital_signature());
}

#[test]
fn intermediate_under_an_upstream_intermediate_presents_both() {
    let (upstream, upstream_key, root_pem) = upstream_with_intermediate();

    let (ca, _) =
        CertificateAuthority::create_intermediate(TD, &upstream, &upstream_key, DAY).unwrap();
    let leaf = ca.sign_csr(&checked(ID, &[]), HOUR).unwrap();

    let chain = ders(ca.chain_pem());
    let upstream = ders(&upstream);
    assert_eq!(chain, [ca.certificate_der().to_vec(), upstream[0].clone()]);
    assert_eq!(ca.bundle_pem(), root_pem);
    assert!(signed_by(&leaf.certificate_der, &chain[0]));
    assert!(signed_by(&chain[0], &chain[1]));
    assert!(signed_by(&chain[1], &ders(&root_pem)[0]));
}

#[test]
fn intermediate_never_outlives_its_upstream() {
    let (root, root_key) =
        CertificateAuthority::create_root_with_lifetime("corp.example", DAY).unwrap();

    let (ca, _) =
        CertificateAuthority::create_intermediate(TD, root.certificate_pem(), &root_key, 30 * DAY)
            .unwrap();

    assert_eq!(ca.not_after(), root.not_after());
}

#[test]
fn reloaded_intermediate_keeps_its_chain_and_bundle() {
    let (upstream, upstream_key, _) = upstream_with_intermediate();
    let (ca, key) =
        CertificateAuthority::create_intermediate(TD, &upstream, &upstream_key, DAY).unwrap();

    let reloaded =
        CertificateAuthority::load_with_chain(TD, ca.certificate_pem(), &key, &upstream).unwrap();

    assert_eq!(ders(ca.upstream_chain_pem()), ders(&upstream));
    assert_eq!(reloaded.chain_pem(), ca.chain_pem());
    assert_eq!(reloaded.bundle_pem(), ca.bundle_pem());
    assert_eq!(reloaded.id(), ca.id());
    let leaf = reloaded.sign_csr(&checked(ID, &[]), HOUR).unwrap();
    assert!(signed_by(&leaf.certificate_der, ca.certificate_der()));
}

#[test]
fn load_refuses_an_upstream_chain_that_did_not_sign_the_ca() {
    let (upstream, upstream_key, _) = upstream_with_intermediate();
    let (ca, key) =
        CertificateAuthority::create_intermediate(TD, &upstream, &upstream_key, DAY).unwrap();
    let (stranger, _) = CertificateAuthority::create_root("corp.example").unwrap();

    let refused = CertificateAuthority::load_with_chain(
        TD,
        ca.certificate_pem(),
        &key,
        stranger.certificate_pem(),
    )
    .unwrap_err();

    assert!(matches!(refused, CaError::BrokenChain { .. }), "{refused}");
}

#[test]
fn upstream_key_must_match_the_upstream_certificate() {
    let (root, _) = CertificateAuthority::create_root("corp.example").unwrap();
    let (_, other_key) = CertificateAuthority::create_root("corp.example").unwrap();

    let refused =
        CertificateAuthority::create_intermediate(TD, root.certificate_pem(), &other_key, DAY)
            .unwrap_err();

    assert!(matches!(refused, CaError::KeyMismatch { .. }), "{refused}");
}

#[test]
fn upstream_must_be_a_ca() {
    let (root, _) = CertificateAuthority::create_root("corp.example").unwrap();
    let server = root.issue_server(&["localhost".into()]).unwrap();

    let refused = CertificateAuthority::create_intermediate(
        TD,
        &server.certificate_pem,
        &server.key_pem,
        DAY,
    )
    .unwrap_err();

    assert!(matches!(refused, CaError::NotACa { .. }), "{refused}");
}

#[test]
fn upstream_limited_to_leaves_cannot_take_an_intermediate() {
    let (root, root_key) = CertificateAuthority::create_root("corp.example").unwrap();
    let (upstream, upstream_key) = CertificateAuthority::create_intermediate(
        "corp.example",
        root.certificate_pem(),
        &root_key,
        DAY,
    )
    .unwrap();

    let refused =
        CertificateAuthority::create_intermediate(TD, upstream.chain_pem(), &upstream_key, DAY)
            .unwrap_err();

    assert!(
        matches!(refused, CaError::PathTooLong { allowed: 0, .. }),
        "{refused}"
    );
}

#[test]
fn upstream_chain_must_link() {
    let (upstream, upstream_key, _) = upstream_with_intermediate();
    let (stranger, _) = CertificateAuthority::create_root("corp.example").unwrap();
    let issuing = Pem::iter_from_buffer(upstream.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let broken = format!(
        "{}{}",
        pem_encode(&issuing.contents),
        stranger.certificate_pem()
    );

    let refused =
        CertificateAuthority::create_intermediate(TD, &broken, &upstream_key, DAY).unwrap_err();

    assert!(matches!(refused, CaError::BrokenChain { .. }), "{refused}");
}

#[test]
fn expired_upstream_is_refused() {
    let (root, root_key) =
        CertificateAuthority::create_root_with_lifetime("corp.example", Duration::ZERO).unwrap();

    let refused =
        CertificateAuthority::create_intermediate(TD, root.certificate_pem(), &root_key, DAY)
            .unwrap_err();

    assert!(matches!(refused, CaError::NotValidNow { .. }), "{refused}");
}

#[test]
fn empty_upstream_chain_is_refused() {
    let (_, key) = CertificateAuthority::create_root("corp.example").unwrap();

    let refused = CertificateAuthority::create_intermediate(TD, "", &key, DAY).unwrap_err();

    assert!(matches!(refused, CaError::EmptyUpstreamChain), "{refused}");
}

//! Issuance against a real store: what is handed out belongs to what
//! signed it, and nothing is handed out past a revocation.

use super::*;
use crate::identity::authority::KeyKind;
use crate::identity::csr::testing::checked;
use crate::identity::testing::{Fixture, SHOP, TRUST_DOMAIN, short_lived};

const ADMIN: &str = "spiffe://fixture.test/admin/admin";
const ORDERS: &str = "spiffe://fixture.test/ns/shop/sa/orders";

fn node_id() -> String {
    palisade_model::node_spiffe_id(TRUST_DOMAIN, "web-1")
}

#[tokio::test]
async fn leaf_comes_with_the_chain_of_the_ca_that_signed_it_across_an_activation() {
    let fixture = Fixture::intermediate(short_lived()).await;
    fixture.apply(SHOP).await;
    let authority = &*fixture.authority;
    let signed = authority
        .sign(&checked(&node_id(), &[]), Duration::from_secs(60))
        .unwrap();
    let signer_chain = signed.signer.chain_pem().to_owned();

    authority.prepare(KeyKind::Ca, ADMIN).await.unwrap();
    authority
        .activate(KeyKind::Ca, ADMIN, None, true)
        .await
        .unwrap();
    let entry = Entry::new(authority, "renew node", "web-1", Holder::Node);
    let issued = authority.record(entry, &signed).await.unwrap();

    let new_chain = authority.current().signer.chain_pem().to_owned();
    assert_ne!(new_chain, signer_chain, "a new intermediate signs now");
    let expected = format!("{}{signer_chain}", signed.leaf.certificate_pem);
    assert_eq!(issued.chain_pem, expected);
}

#[tokio::test]
async fn minted_token_is_audited_with_the_node_the_workload_and_the_key() {
    let fixture = Fixture::new(short_lived()).await;
    fixture.apply(SHOP).await;
    let authority = &*fixture.authority;

    let audiences = vec!["spiffe://fixture.test/ns/shop/sa/payments".to_owned()];
    authority
        .mint_jwt_svid("web-1", "shop", "orders-1", audiences, None)
        .await
        .unwrap();

    let entries = fixture.audit().await;
    let last = &entries.last().unwrap().record;
    let kid = format!("kid:{}", authority.current().jwt_signer.kid());
    assert_eq!(last.action, "mint jwt-svid");
    assert_eq!(last.actor, node_id());
    assert_eq!(last.targets, [ORDERS.to_owned(), kid]);
}

#[tokio::test]
async fn token_minted_while_its_node_is_revoked_is_refused_and_not_audited() {
    let fixture = Fixture::new(short_lived()).await;
    fixture.apply(SHOP).await;
    let authority = &*fixture.authority;
    let assigned = authority
        .assigned("web-1", "shop", "orders-1")
        .await
        .unwrap();
    let audiences = vec!["spiffe://fixture.test/ns/shop/sa/payments".to_owned()];
    let (_, audit) = authority.mint("web-1", &assigned, audiences, None).unwrap();

    authority
        .revoke_node(ADMIN, "web-1", "stolen")
        .await
        .unwrap();
    let refused = authority.record_mint("web-1", &assigned, audit).await;

    let Err(IdentityError::Denied(message)) = refused else {
        panic!("expected a refusal, got {refused:?}");
    };
    assert_eq!(message, "node web-1 was revoked");
    let entries = fixture.audit().await;
    assert!(
        entries.iter().all(|e| e.record.action != "mint jwt-svid"),
        "{entries:?}"
    );
}

#[tokio::test]
async fn refused_attestation_names_the_node_and_the_token_id_but_never_the_secret() {
    let fixture = Fixture::new(short_lived()).await;
    fixture.apply(SHOP).await;
    let authority = &*fixture.authority;
    let (token, _) = authority
        .create_join_token(ADMIN, "web-1", None)
        .await
        .unwrap();
    let secret = token.text.split_once('.').unwrap().1.to_owned();
    let forged = format!("{}.{}", token.id, "A".repeat(43));
    let csr = crate::identity::csr::testing::request(
        &rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        vec![crate::identity::csr::testing::uri(&node_id())],
    );

    let refused = authority.attest(&forged, csr.as_bytes()).await.unwrap_err();
    let malformed = authority.attest("nodot", csr.as_bytes()).await.unwrap_err();

    let expected = ["Node//web-1".to_owned(), format!("join-token:{}", token.id)];
    assert_eq!(refused.targets, expected);
    assert!(refused.targets.iter().all(|t| !t.contains(&secret)));
    assert!(matches!(refused.error, IdentityError::Denied(_)));
    assert!(malformed.targets.is_empty(), "{:?}", malformed.targets);
}

//! Manual rotation steps against a real store, on a manual clock.

use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;

use super::*;
use crate::identity::clock::ManualClock;
use crate::identity::rotation::PUBLICATION_WINDOW_SECS;
use crate::identity::testing::{Fixture, SHOP, short_lived};

const ADMIN: &str = "spiffe://fixture.test/admin/admin";

async fn prepared_id(authority: &Authority, kind: KeyKind) -> String {
    let set = authority.status(kind).await.unwrap();
    let prepared = set.keys.iter().find(|k| k.life.state == KeyState::Prepared);
    prepared.expect("a prepared key").id.clone()
}

#[tokio::test]
async fn activation_is_refused_until_the_prepared_ca_was_published_for_the_window() {
    let fixture = Fixture::new(short_lived()).await;
    let authority = &*fixture.authority;
    authority.prepare(KeyKind::Ca, ADMIN).await.unwrap();
    let id = prepared_id(authority, KeyKind::Ca).await;
    let signer = authority.current().signer.id();

    fixture.clock.advance(10);
    let early = authority.activate(KeyKind::Ca, ADMIN, None, false).await;

    let Err(IdentityError::Precondition(message)) = early else {
        panic!("expected a refusal, got {early:?}");
    };
    let wait = PUBLICATION_WINDOW_SECS - 10;
    assert!(message.contains("published 10s ago"), "{message}");
    assert!(message.contains("trust bundle"), "{message}");
    assert!(
        message.contains(&format!("activate in {wait}s")),
        "{message}"
    );
    assert_eq!(authority.current().signer.id(), signer, "the old CA signs");

    fixture.clock.advance(wait);
    authority
        .activate(KeyKind::Ca, ADMIN, None, false)
        .await
        .unwrap();
    assert_eq!(authority.current().signer.id(), id);
}

#[tokio::test]
async fn forced_early_activation_is_audited_as_forced() {
    let fixture = Fixture::new(short_lived()).await;
    let authority = &*fixture.authority;
    authority.prepare(KeyKind::Jwt, ADMIN).await.unwrap();
    let id = prepared_id(authority, KeyKind::Jwt).await;

    authority
        .activate(KeyKind::Jwt, ADMIN, None, true)
        .await
        .unwrap();

    assert_eq!(authority.current().jwt_signer.kid(), id);
    let entries = fixture.audit().await;
    let last = &entries.last().unwrap().record;
    assert_eq!(last.action, "jwt key activate --force");
    assert_eq!(last.actor, ADMIN);
}

/// Mints JWT-SVIDs back to back until `stop`, moving the clock on a second
/// before each, so that any token signed while an activation is under way
/// is dated later than the activation began. Returns the tokens.
async fn mint_until(
    authority: Arc<Authority>,
    clock: Arc<ManualClock>,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let mut tokens = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        clock.advance(1);
        let audiences = vec!["spiffe://fixture.test/ns/shop/sa/payments".to_owned()];
        let minted = authority
            .mint_jwt_svid("web-1", "shop", "orders-1", audiences, None)
            .await
            .unwrap();
        tokens.push(minted.token);
        tokio::task::yield_now().await;
    }
    tokens
}

/// The key id and the expiry of a token, read without checking it.
fn kid_and_expiry(token: &str) -> (String, i64) {
    let decode = |segment: &str| -> serde_json::Value {
        serde_json::from_slice(&BASE64URL.decode(segment).unwrap()).unwrap()
    };
    let mut segments = token.split('.');
    let header = decode(segments.next().unwrap());
    let claims = decode(segments.next().unwrap());
    let kid = header["kid"].as_str().unwrap().to_owned();
    (kid, claims["exp"].as_i64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_minted_during_an_activation_outlives_the_bound_recorded_for_its_key() {
    let fixture = Fixture::new(short_lived()).await;
    fixture.apply(SHOP).await;
    let authority = fixture.authority.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let minting = tokio::spawn(mint_until(
        authority.clone(),
        fixture.clock.clone(),
        stop.clone(),
    ));

    for _ in 0..5 {
        authority.prepare(KeyKind::Jwt, ADMIN).await.unwrap();
        authority
            .activate(KeyKind::Jwt, ADMIN, None, true)
            .await
            .unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let tokens = minting.await.unwrap();

    let keys = keyset::load::<SigningKeyRecord>(&*fixture.store)
        .await
        .unwrap();
    let mut checked = 0;
    for token in &tokens {
        let (kid, expiry) = kid_and_expiry(token);
        let key = keys.iter().find(|k| k.record.kid == kid).unwrap();
        if let Some(bound) = key.record.tokens_valid_until {
            assert!(
                expiry <= bound,
                "key {kid} signed a token valid until {expiry}, past its bound {bound}"
            );
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "no token of a deactivated key among {}",
        tokens.len()
    );
}

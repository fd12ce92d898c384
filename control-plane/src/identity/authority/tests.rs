//! Manual rotation steps against a real store, on a manual clock.

use super::*;
use crate::identity::rotation::PUBLICATION_WINDOW_SECS;
use crate::identity::testing::{Fixture, short_lived};

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

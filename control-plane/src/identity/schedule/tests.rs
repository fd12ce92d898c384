//! The schedule against a real store, on a manual clock: each step is due
//! at its time, taken, and leaves the keys and the audit log as it should.

use super::*;
use crate::config::IdentityConfig;
use crate::identity::authority::{KeyInfo, KeySetInfo};
use crate::identity::join_token;
use crate::identity::records::{Holder, encode};
use crate::identity::revocation;
use crate::identity::rotation::KeyState;
use crate::identity::testing::{Fixture, short_lived};

/// The one key of a set in `state`.
async fn only(authority: &Authority, kind: KeyKind, state: KeyState) -> KeyInfo {
    let set = authority.status(kind).await.unwrap();
    let mut found = set.keys.into_iter().filter(|k| k.life.state == state);
    let key = found.next().expect("a key in that state");
    assert!(found.next().is_none(), "more than one {state:?} key");
    key
}

fn state_of(set: &KeySetInfo, id: &str) -> KeyState {
    let key = set.keys.iter().find(|k| k.id == id).expect("the key");
    key.life.state
}

/// The time at `fraction` of a key's life, rounded up.
fn lived(key: &KeyInfo, fraction: f64) -> i64 {
    let span = (key.not_after - key.not_before) as f64;
    key.not_before + (span * fraction).ceil() as i64
}

fn certificates(pem: &str) -> usize {
    pem.matches("-----BEGIN CERTIFICATE-----").count()
}

/// Records a certificate that CA `authority` signed, valid until `not_after`.
async fn issued(fixture: &Fixture, authority: &str, serial: &str, not_after: i64) {
    let record = IssuedRecord {
        serial: serial.into(),
        spiffe_id: "spiffe://fixture.test/ns/shop/sa/orders".into(),
        holder: Holder::Workload,
        authority: authority.into(),
        requester: "spiffe://fixture.test/node/web-1".into(),
        not_after,
    };
    let key = revocation::issued_key("web-1", serial);
    fixture.put(key, encode(&record)).await;
}

async fn join_token_expiring(fixture: &Fixture, id: &str, expires: i64) {
    let record = JoinTokenRecord {
        node: "web-1".into(),
        secret_hash: "00".repeat(32),
        created_by: "spiffe://fixture.test/admin/admin".into(),
        created: expires - 3600,
        expires,
        used: None,
    };
    fixture
        .put(join_token::record_key(id), encode(&record))
        .await;
}

async fn scheduled_actions(fixture: &Fixture) -> Vec<String> {
    let entries = fixture.audit().await;
    let scheduled = entries.into_iter().filter(|e| e.record.actor == ACTOR);
    scheduled.map(|e| e.record.action).collect()
}

#[tokio::test]
async fn schedule_prepares_activates_and_retires_a_ca_on_time() {
    // A new CA's certificate is dated by the system's clock, which this test
    // leaves years behind; a long lifetime keeps the successor young on the
    // test's clock.
    let config = IdentityConfig {
        ca_lifetime: Duration::from_secs(40 * 365 * 24 * 3600),
        ..short_lived()
    };
    let fixture = Fixture::new(config).await;
    let (authority, clock) = (&*fixture.authority, &fixture.clock);
    let first = only(authority, KeyKind::Ca, KeyState::Active).await;

    // Young: nothing is due.
    clock.set(lived(&first, 0.49));
    assert_eq!(due(authority, KeyKind::Ca).await.unwrap(), None);

    // Half its life: a successor joins the bundle but signs nothing.
    clock.set(lived(&first, 0.5));
    assert_eq!(
        due(authority, KeyKind::Ca).await.unwrap(),
        Some(Step::Prepare)
    );
    rotate(authority, KeyKind::Ca).await;
    let next = only(authority, KeyKind::Ca, KeyState::Prepared).await;
    assert_eq!(certificates(&authority.current().bundle_pem), 2);
    assert_eq!(authority.current().signer.id(), first.id);
    assert_eq!(due(authority, KeyKind::Ca).await.unwrap(), None);

    // Three quarters: the successor signs; the old CA stays in the bundle
    // while a certificate it signed just before is valid.
    let activated = lived(&first, 0.75);
    clock.set(activated);
    issued(&fixture, &first.id, "0a", activated + 60).await;
    let step = due(authority, KeyKind::Ca).await.unwrap();
    assert_eq!(step, Some(Step::Activate(next.id.clone())));
    rotate(authority, KeyKind::Ca).await;
    assert_eq!(authority.current().signer.id(), next.id);
    assert_eq!(certificates(&authority.current().bundle_pem), 2);
    clock.set(activated + 60);
    assert_eq!(due(authority, KeyKind::Ca).await.unwrap(), None);

    // Once that certificate expired: the old CA retires and leaves the bundle.
    clock.set(activated + 61);
    let step = due(authority, KeyKind::Ca).await.unwrap();
    assert_eq!(step, Some(Step::Retire(first.id.clone())));
    rotate(authority, KeyKind::Ca).await;
    let set = authority.status(KeyKind::Ca).await.unwrap();
    assert_eq!(state_of(&set, &first.id), KeyState::Retired);
    assert_eq!(authority.current().bundle_pem, next.certificate_pem);
    assert_eq!(
        scheduled_actions(&fixture).await,
        ["ca prepare", "ca activate", "ca retire"]
    );
}

#[tokio::test]
async fn schedule_retires_a_jwt_key_once_its_last_tokens_expired() {
    let fixture = Fixture::new(short_lived()).await;
    let (authority, clock) = (&*fixture.authority, &fixture.clock);
    let first = only(authority, KeyKind::Jwt, KeyState::Active).await;

    clock.set(lived(&first, 0.5));
    rotate(authority, KeyKind::Jwt).await;
    let next = only(authority, KeyKind::Jwt, KeyState::Prepared).await;
    assert_eq!(
        authority.current().jwks.keys.len(),
        2,
        "both keys are published"
    );
    assert_eq!(authority.current().jwt_signer.kid(), first.id);

    let activated = lived(&first, 0.75);
    clock.set(activated);
    rotate(authority, KeyKind::Jwt).await;
    assert_eq!(authority.current().jwt_signer.kid(), next.id);

    // Tokens the old key signed last up to a JWT-SVID lifetime (30 s).
    clock.set(activated + 30);
    assert_eq!(due(authority, KeyKind::Jwt).await.unwrap(), None);
    clock.set(activated + 31);
    rotate(authority, KeyKind::Jwt).await;
    let set = authority.status(KeyKind::Jwt).await.unwrap();
    assert_eq!(state_of(&set, &first.id), KeyState::Retired);
    assert_eq!(authority.current().jwks.keys.len(), 1);
    assert_eq!(
        scheduled_actions(&fixture).await,
        ["jwt key prepare", "jwt key activate", "jwt key retire"]
    );
}

#[tokio::test]
async fn schedule_waits_for_a_prepared_key_to_be_published_long_enough() {
    let fixture = Fixture::new(short_lived()).await;
    let (authority, clock) = (&*fixture.authority, &fixture.clock);
    let first = only(authority, KeyKind::Jwt, KeyState::Active).await;

    // Prepared by hand late in the active key's life.
    clock.set(lived(&first, 0.9));
    authority.prepare(KeyKind::Jwt, "admin").await.unwrap();
    let next = only(authority, KeyKind::Jwt, KeyState::Prepared).await;

    clock.advance(MIN_PUBLISHED_SECS - 1);
    assert_eq!(due(authority, KeyKind::Jwt).await.unwrap(), None);
    clock.advance(1);
    let step = due(authority, KeyKind::Jwt).await.unwrap();
    assert_eq!(step, Some(Step::Activate(next.id)));
}

#[tokio::test]
async fn prune_forgets_long_expired_certificates_and_old_join_tokens_only() {
    let fixture = Fixture::new(short_lived()).await;
    let now = fixture.authority.now();
    issued(&fixture, "ca", "01", now - KEEP_EXPIRED_SECS - 1).await;
    issued(&fixture, "ca", "02", now - KEEP_EXPIRED_SECS + 1).await;
    issued(&fixture, "ca", "03", now + 60).await;
    join_token_expiring(&fixture, "00000000000000a1", now - KEEP_TOKENS_SECS - 1).await;
    join_token_expiring(&fixture, "00000000000000a2", now - 1).await;

    prune(&fixture.authority).await.unwrap();

    let store = fixture.authority.store();
    let certificates = records::prefix(ISSUED_CERTIFICATE, Some("web-1"));
    let kept = records::list::<IssuedRecord>(store, &certificates)
        .await
        .unwrap();
    let serials: Vec<&str> = kept.iter().map(|v| v.record.serial.as_str()).collect();
    assert_eq!(serials, ["02", "03"]);
    let tokens = records::list::<JoinTokenRecord>(store, &records::prefix(JOIN_TOKEN, None))
        .await
        .unwrap();
    let ids: Vec<&str> = tokens.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(ids, [join_token::record_key("00000000000000a2")]);
    let entries = fixture.audit().await;
    let last = &entries.last().unwrap().record;
    assert_eq!(
        (last.actor.as_str(), last.action.as_str()),
        (ACTOR, "prune expired records")
    );
    assert!(last.detail.starts_with("2 records"), "{}", last.detail);
}

#[tokio::test]
async fn prune_with_nothing_expired_writes_nothing() {
    let fixture = Fixture::new(short_lived()).await;
    let revision = fixture.authority.store().revision();
    let entries = fixture.audit().await.len();

    prune(&fixture.authority).await.unwrap();

    assert_eq!(fixture.authority.store().revision(), revision);
    assert_eq!(fixture.audit().await.len(), entries);
}

//! Tests of the sled backend against a real database on disk.

use std::sync::Arc;

use aws_lc_rs::hmac;

use super::SledStore;
use super::group::Group;
use crate::audit::{AuditChain, AuditRecord, Outcome};
use crate::store::{ChangeAction, Mutation, Precondition, Store, StoreError, WriteRequest, watch};

fn chain() -> AuditChain {
    AuditChain::new(hmac::Key::new(hmac::HMAC_SHA256, b"store test key"))
}

fn open(dir: &tempfile::TempDir) -> SledStore {
    SledStore::open(&dir.path().join("store"), chain()).unwrap()
}

fn put(key: &str, preconditions: Vec<Precondition>) -> WriteRequest {
    WriteRequest {
        mutations: vec![Mutation::Put {
            key: key.into(),
            document: format!(r#"{{"k":"{key}"}}"#),
        }],
        preconditions,
        audit: AuditRecord::now("spiffe://td/admin/test", "apply", Outcome::Ok),
    }
}

#[tokio::test]
async fn writes_bump_the_revision_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);

    let first = store.write(put("Node//a", vec![])).await.unwrap();
    let second = store.write(put("Node//a", vec![])).await.unwrap();

    assert_eq!((first, second), (1, 2));
    let stored = store.get("Node//a").await.unwrap().unwrap();
    assert_eq!((stored.revision, stored.create_revision), (2, 1));
    assert_eq!(store.revision(), 2);
}

#[tokio::test]
async fn failed_precondition_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.write(put("Node//a", vec![])).await.unwrap();

    let absent = Precondition::Absent {
        key: "Node//a".into(),
    };
    let stale = Precondition::AtRevision {
        key: "Node//a".into(),
        revision: 7,
    };
    let first = store.write(put("Node//b", vec![absent])).await.unwrap_err();
    let second = store.write(put("Node//b", vec![stale])).await.unwrap_err();

    assert!(matches!(first, StoreError::Conflict { .. }), "{first}");
    assert!(
        second.to_string().contains("is at revision 1, not 7"),
        "{second}"
    );
    assert!(store.get("Node//b").await.unwrap().is_none());
    assert_eq!(store.revision(), 1);
    assert_eq!(store.audit_entries(0, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn conditional_audit_is_appended_only_while_its_preconditions_hold() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let minted = || AuditRecord::now("spiffe://td/node/a", "mint jwt-svid", Outcome::Ok);
    let not_revoked = || {
        vec![Precondition::Absent {
            key: "NodeRevocation//a".into(),
        }]
    };

    let first = store.audit_if(minted(), not_revoked()).await.unwrap();
    store.write(put("NodeRevocation//a", vec![])).await.unwrap();
    let refused = store.audit_if(minted(), not_revoked()).await.unwrap_err();

    assert_eq!(first, 1);
    assert!(matches!(refused, StoreError::Conflict { .. }), "{refused}");
    let entries = store.audit_entries(0, 10).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.record.action.as_str()).collect();
    assert_eq!(actions, ["mint jwt-svid", "apply"]);
    assert_eq!(
        store.revision(),
        1,
        "an audit entry alone changes no revision"
    );
}

#[tokio::test]
async fn new_resource_under_a_prefix_fails_unchanged_since() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let read_at = store.revision();
    store.write(put("Workload/shop/w1", vec![])).await.unwrap();

    let guard = Precondition::UnchangedSince {
        prefix: "Workload/shop/".into(),
        revision: read_at,
    };
    let error = store
        .write(put("Service/shop/web", vec![guard]))
        .await
        .unwrap_err();

    assert!(error.to_string().contains("Workload/shop/w1"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_all_commit_with_distinct_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));

    let writers: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.write(put(&format!("Node//n{i}"), vec![])).await })
        })
        .collect();
    let mut revisions = Vec::new();
    for writer in writers {
        revisions.push(writer.await.unwrap().unwrap());
    }

    revisions.sort();
    assert_eq!(revisions, (1..=64).collect::<Vec<u64>>());
    let log = store.changes_after(0, 1000).await.unwrap();
    assert_eq!(
        log.iter().map(|b| b.revision).collect::<Vec<_>>(),
        revisions
    );
}

#[tokio::test]
async fn each_durable_round_is_counted_and_a_refused_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let present = Precondition::Present {
        key: "Node//missing".into(),
    };

    store.write(put("Node//a", vec![])).await.unwrap();
    store.audit(put("Node//a", vec![]).audit).await.unwrap();
    store
        .write(put("Node//b", vec![present]))
        .await
        .unwrap_err();

    assert_eq!(store.commit_rounds(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commit_rounds_and_syncs() {
    const WRITERS: u64 = 64;
    const WRITES_EACH: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| tokio::spawn(write_in_turn(store.clone(), writer, WRITES_EACH)))
        .collect();
    let mut revisions = Vec::new();
    for writer in writers {
        revisions.extend(writer.await.unwrap());
    }

    let writes = WRITERS * WRITES_EACH;
    revisions.sort();
    assert_eq!(revisions, (1..=writes).collect::<Vec<u64>>());
    let rounds = store.commit_rounds();
    assert!(rounds >= writes.div_ceil(512), "{rounds} rounds");
    assert!(
        rounds < writes / 4,
        "{writes} writes took {rounds} rounds; they should share syncs"
    );
}

/// Writes `count` resources one after another, each once the last is
/// durable, and returns their revisions.
async fn write_in_turn(store: Arc<SledStore>, writer: u64, count: u64) -> Vec<u64> {
    let mut revisions = Vec::new();
    for write in 0..count {
        let key = format!("Node//w{writer}-{write}");
        revisions.push(store.write(put(&key, vec![])).await.unwrap());
    }
    revisions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_from_the_log_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(open(&dir));
    let mut follower = watch::changes(store.clone(), 0);

    let writes = super::CHANGE_CHANNEL as u64 + 500;
    for i in 0..writes {
        store
            .write(put(&format!("Node//n{}", i % 7), vec![]))
            .await
            .unwrap();
    }

    for expected in 1..=writes {
        let batch = follower.recv().await.unwrap().unwrap();
        assert_eq!(batch.revision, expected);
    }
}

#[tokio::test]
async fn deletion_is_logged_with_the_last_state() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(open(&dir));
    store.write(put("Node//a", vec![])).await.unwrap();

    let delete = WriteRequest {
        mutations: vec![Mutation::Delete {
            key: "Node//a".into(),
        }],
        preconditions: vec![],
        audit: AuditRecord::now("spiffe://td/admin/test", "delete", Outcome::Ok),
    };
    store.write(delete).await.unwrap();

    let log = store.changes_after(1, 10).await.unwrap();
    assert_eq!(log[0].events[0].action, ChangeAction::Deleted);
    assert_eq!(log[0].events[0].resource.document, r#"{"k":"Node//a"}"#);
    assert!(store.get("Node//a").await.unwrap().is_none());
}

#[tokio::test]
async fn reopened_store_keeps_resources_and_an_intact_audit_chain() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for i in 0..10 {
        store
            .write(put(&format!("Node//n{i}"), vec![]))
            .await
            .unwrap();
    }
    store
        .audit(AuditRecord::now("x", "get", Outcome::Denied))
        .await
        .unwrap();
    drop(store);

    let store = open(&dir);

    assert_eq!(store.revision(), 10);
    assert_eq!(
        store
            .list("Node//", None, 100)
            .await
            .unwrap()
            .resources
            .len(),
        10
    );
    let verification = store.verify_audit().await.unwrap();
    assert_eq!(
        (verification.entries_checked, verification.broken),
        (11, None)
    );
}

#[tokio::test]
async fn store_whose_revision_disagrees_with_its_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.write(put("Node//a", vec![])).await.unwrap();
    drop(store);

    let db = ::sled::open(dir.path().join("store")).unwrap();
    db.open_tree("meta")
        .unwrap()
        .insert("revision", &9u64.to_be_bytes())
        .unwrap();
    db.flush().unwrap();
    drop(db);

    let error = SledStore::open(&dir.path().join("store"), chain()).unwrap_err();
    assert!(matches!(error, StoreError::Damaged(_)), "{error}");
    assert!(
        error.to_string().contains("change log ends at 1"),
        "{error}"
    );
}

#[tokio::test]
async fn store_whose_log_ends_before_what_it_acknowledged_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for key in ["Node//a", "Node//b", "Node//c"] {
        store.write(put(key, vec![])).await.unwrap();
    }
    drop(store);
    let acknowledged = dir.path().join("store/acknowledged");
    let recorded = std::fs::read_to_string(&acknowledged).unwrap();
    assert_eq!(recorded, format!("{:020} {:020}\n", 3, 3));

    std::fs::write(&acknowledged, format!("{:020} {:020}\n", 5, 5)).unwrap();
    let error = SledStore::open(&dir.path().join("store"), chain()).unwrap_err();

    assert!(matches!(error, StoreError::Damaged(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("ends at revision 3 and audit entry 3, but revision 5"),
        "{error}"
    );
}

#[tokio::test]
async fn list_pages_stop_at_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for key in ["Node//a", "Node//b", "Node//c", "Service/x/a"] {
        store.write(put(key, vec![])).await.unwrap();
    }

    let first = store.list("Node//", None, 2).await.unwrap();
    let rest = store.list("Node//", Some("Node//b"), 2).await.unwrap();

    assert!(first.more);
    assert_eq!(rest.resources.len(), 1);
    assert!(!rest.more);
}

/// Runs `test` on a group over a fresh store's trees, so that several writes
/// are sure to share one round.
fn in_one_round(test: impl FnOnce(Group<'_>)) {
    let dir = tempfile::tempdir().unwrap();
    let trees = super::open_trees(&dir.path().join("store")).unwrap();
    let head = super::integrity::check(&trees, None).unwrap();
    let chain = chain();

    test(Group::new(&trees, &chain, &head));
}

#[test]
fn a_write_sees_the_writes_staged_before_it_in_its_round() {
    in_one_round(|mut group| {
        let absent = || Precondition::Absent {
            key: "Node//a".into(),
        };
        let at_first = Precondition::AtRevision {
            key: "Node//a".into(),
            revision: 1,
        };

        assert_eq!(
            group.stage_write(put("Node//a", vec![absent()])).unwrap(),
            1
        );
        let refused = group
            .stage_write(put("Node//a", vec![absent()]))
            .unwrap_err();
        assert_eq!(
            group.stage_write(put("Node//a", vec![at_first])).unwrap(),
            2
        );
        group.commit().unwrap();

        assert!(matches!(refused, StoreError::Conflict { .. }), "{refused}");
        let (head, batches) = group.finish();
        assert_eq!((head.revision, head.audit_sequence), (2, 2));
        let update = &batches[1].events[0];
        assert_eq!(update.action, ChangeAction::Updated);
        assert_eq!(update.resource.create_revision, 1);
    });
}

#[test]
fn a_staged_write_under_a_prefix_fails_unchanged_since() {
    in_one_round(|mut group| {
        let guard = Precondition::UnchangedSince {
            prefix: "Workload/shop/".into(),
            revision: 0,
        };

        group.stage_write(put("Workload/shop/w1", vec![])).unwrap();
        let error = group
            .stage_write(put("Service/shop/web", vec![guard]))
            .unwrap_err();

        assert!(error.to_string().contains("Workload/shop/w1"), "{error}");
    });
}

#[tokio::test]
async fn a_reader_settles_only_once_the_round_it_may_have_seen_is_durable() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.write(put("Node//a", vec![])).await.unwrap();

    // A round is between its commit and its disk sync.
    let round = store.inner.rounds_begun.fetch_add(1, SeqCst) + 1;
    let reading = store.clone();
    let reader = tokio::spawn(async move {
        let found = reading.get("Node//a").await;
        reading.settled().await.map(|()| found)
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !reader.is_finished(),
        "the read answered before the round was durable"
    );

    super::committer::settle(&store.inner, round);
    let found = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
        .await
        .expect("the read waits only for the round")
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(found.is_some());
}

#[tokio::test]
async fn settling_fails_rather_than_waits_once_a_sync_failed() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.inner.rounds_begun.fetch_add(1, SeqCst);

    let _ = store.inner.failure.set("disk gone".into());
    store.inner.settled.notify_waiters();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), store.settled())
        .await
        .expect("a failed store answers at once");

    assert!(matches!(read, Err(StoreError::Failed(_))), "{read:?}");
}

use std::sync::Arc;

use super::*;
use crate::identity::testing::ca_pem;
use crate::state::types;
use crate::xds::testing::{bundle, response, workload, workloads};
use palisade_proto::xds as pb;

struct Bed {
    _root: tempfile::TempDir,
    dir: DataDir,
    state: State,
    node: NodeIdentity,
    applier: Applier,
}

fn bed() -> Bed {
    let root = tempfile::tempdir().unwrap();
    let dir = DataDir::open(&root.path().join("data")).unwrap();
    let bootstrap = root.path().join("ca.pem");
    std::fs::write(&bootstrap, ca_pem()).unwrap();
    let node = NodeIdentity::load(&dir, "web-1", &bootstrap, 0).unwrap();
    let state = State::new();
    let status = Status {
        node: "web-1".into(),
        ..Status::default()
    };
    let applier = Applier::new(
        state.clone(),
        Resources::default(),
        dir.clone(),
        node.clone(),
        StatusFile::new(dir.clone(), status),
    );
    Bed {
        _root: root,
        dir,
        state,
        node,
        applier,
    }
}

fn saved_status(dir: &DataDir) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.status()).unwrap()).unwrap()
}

#[tokio::test]
async fn an_accepted_response_is_applied_persisted_then_acknowledged() {
    let mut bed = bed();
    let response = workloads("1", &[&workload("orders-1")]);

    let answers = bed.applier.apply(&[response], "https://cp:7443", 100).await;

    assert_eq!(answers[0].rejection, None);
    assert_eq!(answers[0].nonce, "1");
    let applied = bed.state.current().unwrap();
    assert!(applied.workloads.contains_key("shop/orders-1"));
    let saved = LastKnownGood::load(&bed.dir).unwrap().unwrap();
    assert_eq!(&saved.resources, bed.applier.held());
    assert_eq!(saved.revision, 3);
    let status = saved_status(&bed.dir);
    assert_eq!(status["source"], "control-plane");
    assert_eq!(status["revision"], 3);
    assert_eq!(status["connected_to"], "https://cp:7443");
}

#[tokio::test]
async fn a_rejected_response_keeps_the_previous_configuration() {
    let mut bed = bed();
    bed.applier
        .apply(&[workloads("1", &[&workload("orders-1")])], "cp", 100)
        .await;
    let before = bed.state.current().unwrap();
    let mut broken = workload("orders-2");
    broken.app_port = 0;

    let answers = bed
        .applier
        .apply(&[workloads("2", &[&broken])], "cp", 200)
        .await;

    let reason = "Workload shop/orders-2: app_port: must be 1 to 65535, not 0";
    assert_eq!(answers[0].rejection.as_deref(), Some(reason));
    assert!(Arc::ptr_eq(&before, &bed.state.current().unwrap()));
    let saved = LastKnownGood::load(&bed.dir).unwrap().unwrap();
    assert_eq!(saved.saved_at_unix, 100);
    assert_eq!(saved_status(&bed.dir)["last_rejection"], reason);
}

#[tokio::test]
async fn one_rejected_response_of_a_batch_leaves_the_others_applied() {
    let mut bed = bed();
    let mut broken = bundle();
    broken.trust_domain.clear();
    let batch = [
        response(types::TRUST_BUNDLE, "1", &[("bundle", &broken)], &[]),
        workloads("2", &[&workload("orders-1")]),
    ];

    let answers = bed.applier.apply(&batch, "cp", 100).await;

    assert_eq!(
        answers[0].rejection.as_deref(),
        Some("TrustBundle bundle: trust_domain: empty")
    );
    assert_eq!(answers[1].rejection, None);
    let applied = bed.state.current().unwrap();
    assert!(applied.bundle.is_none());
    assert_eq!(applied.workloads.len(), 1);
}

#[tokio::test]
async fn a_first_sync_with_nothing_in_it_still_ends_the_refuse_everything_state() {
    let mut bed = bed();
    let empty = response::<pb::Workload>(types::WORKLOAD, "1", &[], &[]);

    bed.applier.apply(&[empty], "cp", 100).await;

    assert_eq!(bed.state.current().unwrap().workloads.len(), 0);
}

#[tokio::test]
async fn a_new_trust_bundle_is_handed_to_the_control_plane_channel() {
    let mut bed = bed();
    let mut material = bed.node.watch();
    let rotated = bundle();

    bed.applier
        .apply(
            &[response(
                types::TRUST_BUNDLE,
                "1",
                &[("bundle", &rotated)],
                &[],
            )],
            "cp",
            100,
        )
        .await;

    assert!(material.has_changed().unwrap());
    assert_eq!(material.borrow_and_update().bundle_pem, rotated.x509_pem);
    assert_eq!(
        std::fs::read_to_string(bed.dir.node_bundle()).unwrap(),
        rotated.x509_pem
    );
}

#[tokio::test]
async fn an_unchanged_resume_is_not_applied_again() {
    let mut bed = bed();
    bed.applier
        .apply(&[workloads("1", &[&workload("orders-1")])], "cp", 100)
        .await;
    let before = bed.state.current().unwrap();

    let nothing = response::<pb::Workload>(types::WORKLOAD, "2", &[], &[]);
    bed.applier.disconnected().await;
    bed.applier.apply(&[nothing], "cp-2", 200).await;

    assert!(Arc::ptr_eq(&before, &bed.state.current().unwrap()));
    assert_eq!(saved_status(&bed.dir)["connected_to"], "cp-2");
}

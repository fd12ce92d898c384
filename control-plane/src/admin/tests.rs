//! Nothing unaudited happens: a refused call is answered with its refusal
//! only once the refusal is in the audit log, and an apply whose write
//! (which carries its audit entry) fails is not acknowledged. The service
//! runs over the real store of a freshly initialised data directory; a thin
//! wrapper can make that store's audits or writes fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use palisade_model::{Kind, ResourceKey};
use palisade_proto::admin as pb;
use palisade_proto::admin::admin_server::{Admin, AdminServer};
use prost::Message as _;
use tokio::sync::{broadcast, watch};
use tonic::{Code, Request};
use tower::{Layer as _, Service as _};

use super::{AdminService, EarlyRefusalLayer, PeerMode};
use crate::audit::{AuditEntry, AuditRecord, Outcome, Verification};
use crate::identity::testing::{Fixture, TRUST_DOMAIN, short_lived};
use crate::server::Planes;
use crate::store::{
    ChangeBatch, Precondition, ResourcePage, Revision, Store, StoreError, StoredResource,
    WriteRequest,
};
use crate::xds::runtime::Xds;

const NEW_NODE: &str = "kind: Node\nmetadata: {name: web-2}\nspec: {}\n";
const NEW_NODE_KEY: &str = "Node//web-2";
const INJECTED: &str = "the disk refused the write";

/// The real store, whose audits or writes fail while a test says so.
struct Faulty {
    store: Arc<dyn Store>,
    audits_fail: AtomicBool,
    writes_fail: AtomicBool,
    settling_fails: AtomicBool,
}

impl Faulty {
    fn fail_audits(&self) {
        self.audits_fail.store(true, Ordering::SeqCst);
    }

    fn fail_writes(&self) {
        self.writes_fail.store(true, Ordering::SeqCst);
    }

    fn fail_settling(&self) {
        self.settling_fails.store(true, Ordering::SeqCst);
    }
}

fn injected() -> StoreError {
    StoreError::Backend(INJECTED.into())
}

#[async_trait]
impl Store for Faulty {
    async fn write(&self, request: WriteRequest) -> Result<Revision, StoreError> {
        if self.writes_fail.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.store.write(request).await
    }

    async fn audit(&self, record: AuditRecord) -> Result<u64, StoreError> {
        if self.audits_fail.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.store.audit(record).await
    }

    async fn audit_if(
        &self,
        record: AuditRecord,
        preconditions: Vec<Precondition>,
    ) -> Result<u64, StoreError> {
        self.store.audit_if(record, preconditions).await
    }

    async fn get(&self, key: &str) -> Result<Option<StoredResource>, StoreError> {
        self.store.get(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ResourcePage, StoreError> {
        self.store.list(prefix, start_after, limit).await
    }

    fn revision(&self) -> Revision {
        self.store.revision()
    }

    async fn settled(&self) -> Result<(), StoreError> {
        if self.settling_fails.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.store.settled().await
    }

    async fn changes_after(
        &self,
        after: Revision,
        limit: usize,
    ) -> Result<Vec<Arc<ChangeBatch>>, StoreError> {
        self.store.changes_after(after, limit).await
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeBatch>> {
        self.store.subscribe()
    }

    async fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.store.audit_entries(after, limit).await
    }

    async fn audit_head(&self) -> Result<u64, StoreError> {
        self.store.audit_head().await
    }

    async fn verify_audit(&self) -> Result<Verification, StoreError> {
        self.store.verify_audit().await
    }

    async fn system_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.system_get(key).await
    }

    async fn system_put(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.store.system_put(key, value).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.store.flush().await
    }
}

/// A control plane over a fresh data directory, with `viewer` bound to the
/// built-in viewer role and `stranger` bound to nothing.
struct Harness {
    fixture: Fixture,
    store: Arc<Faulty>,
    xds: Arc<Xds>,
}

/// What a call could have changed: resources, revision and audit log.
#[derive(Debug, PartialEq)]
struct Snapshot {
    revision: Revision,
    resources: Vec<StoredResource>,
    audit_head: u64,
}

impl Harness {
    async fn new() -> Self {
        let fixture = Fixture::new(short_lived()).await;
        fixture.apply(&viewer_binding()).await;

        let store = Arc::new(Faulty {
            store: fixture.store.clone(),
            audits_fail: AtomicBool::new(false),
            writes_fail: AtomicBool::new(false),
            settling_fails: AtomicBool::new(false),
        });
        let xds = Xds::start(fixture.store.clone(), fixture.authority.clone())
            .await
            .unwrap();
        Self {
            fixture,
            store,
            xds: Arc::new(xds),
        }
    }

    /// The admin service, with every caller taken to be `name`.
    fn service_for(&self, name: &str) -> AdminService {
        let planes = Planes {
            authority: self.fixture.authority.clone(),
            xds: self.xds.clone(),
        };
        let peers = PeerMode::Plaintext {
            identity: identity(name),
        };
        AdminService::new(self.store.clone(), planes, peers, watch::channel(false).1)
    }

    async fn apply_as(
        &self,
        name: &str,
        content: &str,
    ) -> Result<pb::ApplyResponse, tonic::Status> {
        let request = Request::new(pb::ApplyRequest {
            source: "test".into(),
            content: content.into(),
            dry_run: false,
        });
        let reply = self.service_for(name).apply(request).await;
        reply.map(tonic::Response::into_inner)
    }

    /// Sends one gRPC message to `method` through the admin service as the
    /// server mounts it, as `name`; returns the status the call ended with.
    async fn call_as(&self, name: &str, method: &str, message: &[u8]) -> tonic::Status {
        let admin = self.service_for(name);
        let mut server = EarlyRefusalLayer::new(admin.clone()).layer(AdminServer::new(admin));
        let request = http::Request::post(format!("/palisade.admin.v1.Admin/{method}"))
            .header("content-type", "application/grpc")
            .body(tonic::body::Body::new(grpc_frame(message)))
            .unwrap();

        let response = server.call(request).await.unwrap();

        tonic::Status::from_header_map(response.headers()).expect("a status in the headers")
    }

    async fn snapshot(&self) -> Snapshot {
        let store = &self.fixture.store;
        Snapshot {
            revision: store.revision(),
            resources: store.list("", None, 10_000).await.unwrap().resources,
            audit_head: store.audit_head().await.unwrap(),
        }
    }

    async fn last_audit_entry(&self) -> AuditRecord {
        let entries = self.fixture.audit().await;
        entries.last().unwrap().record.clone()
    }
}

/// One gRPC message with its length prefix, as a request body. The tests'
/// messages are ASCII, so the body can be a string.
fn grpc_frame(message: &[u8]) -> String {
    let mut frame = vec![0];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    String::from_utf8(frame).expect("an ASCII message")
}

fn identity(name: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/admin/{name}")
}

fn viewer_binding() -> String {
    format!(
        "kind: AdminBinding\nmetadata: {{name: viewers}}\n\
         spec: {{role: viewer, subjects: [\"{}\"]}}\n",
        identity("viewer")
    )
}

#[tokio::test]
async fn a_refused_apply_is_answered_with_the_refusal_once_it_is_audited() {
    let harness = Harness::new().await;
    let before = harness.snapshot().await;

    for name in ["stranger", "viewer"] {
        let status = harness.apply_as(name, NEW_NODE).await.unwrap_err();

        assert_eq!(status.code(), Code::PermissionDenied, "{name}: {status:?}");
        let entry = harness.last_audit_entry().await;
        assert_eq!(entry.actor, identity(name));
        assert_eq!(entry.outcome, Outcome::Denied);
        assert_eq!(entry.targets, vec![NEW_NODE_KEY.to_owned()]);
    }

    let after = harness.snapshot().await;
    assert_eq!(after.audit_head, before.audit_head + 2);
    assert_eq!(
        (after.revision, after.resources),
        (before.revision, before.resources)
    );
}

#[tokio::test]
async fn a_refusal_that_cannot_be_audited_is_an_error_and_changes_nothing() {
    let harness = Harness::new().await;
    let before = harness.snapshot().await;
    harness.store.fail_audits();

    for name in ["stranger", "viewer"] {
        let status = harness.apply_as(name, NEW_NODE).await.unwrap_err();

        assert_eq!(status.code(), Code::Internal, "{name}: {status:?}");
    }

    assert_eq!(harness.snapshot().await, before);
}

#[tokio::test]
async fn an_apply_whose_write_fails_is_not_acknowledged_and_changes_nothing() {
    let harness = Harness::new().await;
    let before = harness.snapshot().await;
    harness.store.fail_writes();

    let status = harness.apply_as("admin", NEW_NODE).await.unwrap_err();

    assert_eq!(status.code(), Code::Internal, "{status:?}");
    let after = harness.snapshot().await;
    assert_eq!(
        (after.revision, after.resources),
        (before.revision, before.resources)
    );
    let entry = harness.last_audit_entry().await;
    assert_eq!(
        (entry.actor, entry.outcome),
        (identity("admin"), Outcome::Error)
    );
    assert!(entry.detail.contains(INJECTED), "{}", entry.detail);
}

#[tokio::test]
async fn an_apply_is_acknowledged_once_written_with_its_audit_entry() {
    let harness = Harness::new().await;
    let before = harness.snapshot().await;

    let reply = harness.apply_as("admin", NEW_NODE).await.unwrap();

    let after = harness.snapshot().await;
    assert_eq!(reply.revision, before.revision + 1);
    assert_eq!(after.revision, reply.revision);
    assert!(after.resources.iter().any(|r| r.key == NEW_NODE_KEY));
    let entries = harness.fixture.audit().await;
    let entry = entries.last().unwrap();
    assert_eq!(
        (entry.revision, entry.record.outcome),
        (reply.revision, Outcome::Ok)
    );
    assert_eq!(entry.record.targets, vec![NEW_NODE_KEY.to_owned()]);
}

#[tokio::test]
async fn reads_answer_only_once_what_they_read_is_durable() {
    let harness = Harness::new().await;
    harness.apply_as("admin", NEW_NODE).await.unwrap();
    harness.store.fail_settling();
    let admin = harness.service_for("admin");

    let get = pb::GetRequest {
        kind: "Node".into(),
        name: "web-2".into(),
        ..Default::default()
    };
    let list = pb::ListRequest {
        kind: "Node".into(),
        ..Default::default()
    };
    let audit = pb::ListAuditRequest::default();
    let statuses = [
        admin.get(Request::new(get)).await.map(|_| ()).unwrap_err(),
        admin
            .list(Request::new(list))
            .await
            .map(|_| ())
            .unwrap_err(),
        admin
            .list_audit(Request::new(audit))
            .await
            .map(|_| ())
            .unwrap_err(),
    ];

    for status in statuses {
        assert_eq!(status.code(), Code::Internal, "{status:?}");
    }
}

#[tokio::test]
async fn a_message_that_does_not_decode_is_refused_and_audited_before_any_handler() {
    let harness = Harness::new().await;
    let before = harness.snapshot().await;

    // Field 1 with wire type 7, which protobuf does not have.
    let status = harness.call_as("admin", "Apply", b"\x0f").await;

    assert_ne!(status.code(), Code::Ok);
    let after = harness.snapshot().await;
    assert_eq!(after.audit_head, before.audit_head + 1);
    assert_eq!(
        (after.revision, after.resources),
        (before.revision, before.resources)
    );
    let entry = harness.last_audit_entry().await;
    assert_eq!(
        (entry.actor.as_str(), entry.action.as_str(), entry.outcome),
        (identity("admin").as_str(), "apply", Outcome::Invalid)
    );
    assert!(entry.detail.contains("decode"), "{}", entry.detail);
}

#[tokio::test]
async fn an_unknown_method_is_refused_and_audited_by_its_path() {
    let harness = Harness::new().await;

    let status = harness.call_as("stranger", "Shutdown", b"").await;

    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    let entry = harness.last_audit_entry().await;
    assert_eq!(
        (entry.actor, entry.action.as_str(), entry.outcome),
        (
            identity("stranger"),
            "/palisade.admin.v1.Admin/Shutdown",
            Outcome::Invalid
        )
    );
}

#[tokio::test]
async fn an_early_refusal_that_cannot_be_audited_fails_as_a_store_error() {
    let harness = Harness::new().await;
    let before = harness.snapshot().await;
    harness.store.fail_audits();

    let status = harness.call_as("admin", "Shutdown", b"").await;

    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(status.message().contains("store failed"), "{status:?}");
    assert_eq!(harness.snapshot().await, before);
}

#[tokio::test]
async fn a_refusal_its_handler_audited_is_not_audited_again() {
    let harness = Harness::new().await;
    let before = harness.snapshot().await;
    let request = pb::ApplyRequest {
        source: "test".into(),
        content: NEW_NODE.into(),
        dry_run: false,
    };

    let status = harness
        .call_as("stranger", "Apply", &request.encode_to_vec())
        .await;

    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(harness.snapshot().await.audit_head, before.audit_head + 1);
    assert_eq!(harness.last_audit_entry().await.outcome, Outcome::Denied);
}

#[tokio::test]
async fn referrers_are_found_past_the_first_page() {
    let harness = Harness::new().await;
    let mut documents = String::from(
        "kind: Node\nmetadata: {name: web-1}\nspec: {}\n---\n\
         kind: Service\nmetadata: {name: orders, namespace: shop}\nspec: {}\n---\n\
         kind: Service\nmetadata: {name: payments, namespace: shop}\nspec: {}\n",
    );
    // Only the last workload, on the third page of two, refers to orders.
    let workloads = ["payments", "payments", "payments", "payments", "orders"];
    for (name, service) in ["a", "b", "c", "d", "e"].into_iter().zip(workloads) {
        documents.push_str(&format!(
            "---\nkind: Workload\nmetadata: {{name: {name}, namespace: shop}}\n\
             spec: {{service: {service}, node: web-1, appPort: 8080, inboundPort: 15008}}\n"
        ));
    }
    harness.fixture.apply(&documents).await;
    let orders = ResourceKey::new(Kind::Service, "shop", "orders");

    let referrers = harness
        .service_for("admin")
        .referrers(&orders, 2)
        .await
        .unwrap();

    assert_eq!(referrers, [ResourceKey::new(Kind::Workload, "shop", "e")]);
}

//! A real authority for tests: a data directory made by `init` in a
//! temporary directory, its sled store, and a manual clock.

use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use super::authorities::Upstream;
use super::authority::Authority;
use super::clock::{ManualClock, now_unix};
use crate::audit::{AuditEntry, AuditRecord, Outcome};
use crate::barrier::MasterKey;
use crate::ca::CertificateAuthority;
use crate::config::IdentityConfig;
use crate::data_dir::DataDir;
use crate::init::{InitOptions, initialize};
use crate::store::{Mutation, Store, WriteRequest};

pub(crate) const TRUST_DOMAIN: &str = "fixture.test";

/// A node, a service and a workload of that service on the node.
pub(crate) const SHOP: &str = r#"
kind: Node
metadata: {name: web-1}
spec: {}
---
kind: Service
metadata: {name: orders, namespace: shop}
spec:
  ports: [{port: 9090, protocol: grpc}]
---
kind: Workload
metadata: {name: orders-1, namespace: shop}
spec: {service: orders, node: web-1, appPort: 9090, inboundPort: 15008}
"#;

/// An authority over a fresh data directory; its clock starts at the
/// system's time and moves only when a test moves it.
pub(crate) struct Fixture {
    pub authority: Arc<Authority>,
    /// The store the authority keeps its state in.
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    _dir: TempDir,
}

impl Fixture {
    /// Palisade with its own root CA.
    pub async fn new(config: IdentityConfig) -> Self {
        Self::with_upstream(config, None).await
    }

    /// Palisade as an intermediate under a root of the test's making.
    pub async fn intermediate(config: IdentityConfig) -> Self {
        let (root, key_pem) = CertificateAuthority::create_root("upstream.test").unwrap();
        let upstream = Upstream {
            chain_pem: root.certificate_pem().to_owned(),
            key_pem,
        };
        Self::with_upstream(config, Some(upstream)).await
    }

    async fn with_upstream(config: IdentityConfig, upstream: Option<Upstream>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let options = InitOptions {
            data_dir: DataDir::new(dir.path().join("data")),
            trust_domain: TRUST_DOMAIN.into(),
            server_names: Vec::new(),
            admin_name: "admin".into(),
            admin_ttl: Duration::from_secs(3600),
            upstream,
        };
        let opened = initialize(&options, &MasterKey::generate().unwrap())
            .await
            .unwrap();

        let clock = Arc::new(ManualClock::at(now_unix()));
        let store: Arc<dyn Store> = opened.store;
        let barrier = Arc::new(opened.barrier);
        let authority =
            Authority::open_with_clock(store.clone(), barrier, TRUST_DOMAIN, config, clock.clone())
                .await
                .unwrap();
        Self {
            authority,
            store,
            clock,
            _dir: dir,
        }
    }

    /// Writes documents straight to the store, unchecked.
    pub async fn apply(&self, yaml: &str) {
        for document in palisade_model::parse_documents(yaml).unwrap() {
            self.put(document.key().store_key(), document.to_json())
                .await;
        }
    }

    /// Writes one resource or record straight to the store.
    pub async fn put(&self, key: String, document: String) {
        let request = WriteRequest {
            mutations: vec![Mutation::Put { key, document }],
            preconditions: Vec::new(),
            audit: AuditRecord::now("test", "seed", Outcome::Ok),
        };
        self.authority.store().write(request).await.unwrap();
    }

    /// The whole audit log.
    pub async fn audit(&self) -> Vec<AuditEntry> {
        self.authority
            .store()
            .audit_entries(0, 10_000)
            .await
            .unwrap()
    }
}

/// The lifetimes of `palisade-cp serve` but for leaves of a minute and
/// JWT-SVIDs of half of one.
pub(crate) fn short_lived() -> IdentityConfig {
    IdentityConfig {
        workload_ttl: Duration::from_secs(60),
        node_ttl: Duration::from_secs(60),
        jwt_svid_ttl: Duration::from_secs(30),
        jwks_listen: None,
        ..IdentityConfig::default()
    }
}

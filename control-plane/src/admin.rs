//! The admin API: a thin gRPC layer over the store. Each call names its
//! caller from the client certificate, checks the caller's grants, does its
//! work in a submodule, and audits every refusal before answering.

use std::sync::Arc;

use palisade_proto::admin as pb;
use palisade_proto::admin::admin_server::Admin;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::audit::AuditRecord;
use crate::authz::{Grants, Permission};
use crate::identity::authority::Authority;
use crate::server::Planes;
use crate::store::Store;
use crate::tls::PeerVerifier;
use crate::xds::runtime::Xds;

mod apply;
mod audit_log;
mod delete;
mod diff;
mod early_refusal;
mod error;
mod fleet;
mod keys;
mod read;
mod resource;
mod selector;
mod subscribe;
#[cfg(test)]
mod tests;

pub use early_refusal::EarlyRefusalLayer;
use early_refusal::HandlerReached;
pub use error::AdminError;

/// How callers are identified.
#[derive(Clone, Debug)]
pub enum PeerMode {
    /// By their client certificate (the default).
    Mtls(PeerVerifier),
    /// Development only: every caller is this identity.
    Plaintext { identity: String },
}

/// The admin service.
#[derive(Clone)]
pub struct AdminService {
    state: Arc<State>,
}

struct State {
    store: Arc<dyn Store>,
    authority: Arc<Authority>,
    xds: Arc<Xds>,
    peers: PeerMode,
    shutdown: watch::Receiver<bool>,
}

/// An identified caller and what it may do.
pub(crate) struct Caller {
    pub identity: String,
    pub grants: Grants,
}

impl AdminService {
    /// `shutdown` turns true when the server drains; open watches then end.
    pub fn new(
        store: Arc<dyn Store>,
        planes: Planes,
        peers: PeerMode,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            state: Arc::new(State {
                store,
                authority: planes.authority,
                xds: planes.xds,
                peers,
                shutdown,
            }),
        }
    }

    /// Identifies the caller, auditing the refusal if it cannot be.
    async fn caller<T>(&self, request: &Request<T>, action: &str) -> Result<Caller, Status> {
        HandlerReached::mark(request);
        let identity = match self.identify(request) {
            Ok(identity) => identity,
            Err((actor, error)) => {
                return Err(self.refuse(&actor, action, Vec::new(), error).await);
            }
        };

        let grants = match self.grants(&identity).await {
            Ok(grants) => grants,
            Err(error) => return Err(self.refuse(&identity, action, Vec::new(), error).await),
        };
        Ok(Caller { identity, grants })
    }

    /// The caller's SPIFFE ID, or the actor to audit instead (the peer's
    /// address) and why the caller is not authenticated.
    fn identify<T>(&self, request: &Request<T>) -> Result<String, (String, AdminError)> {
        let verifier = match &self.state.peers {
            PeerMode::Plaintext { identity } => return Ok(identity.clone()),
            PeerMode::Mtls(verifier) => verifier,
        };

        let chain = request.peer_certs();
        verifier
            .identify(chain.as_deref().map(Vec::as_slice))
            .map_err(|error| {
                let peer = request
                    .remote_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let actor = format!("unauthenticated {peer}");
                (actor, AdminError::Unauthenticated(error.to_string()))
            })
    }

    /// Refuses unless the caller holds `permission`.
    async fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        permission: Permission,
        targets: &[String],
    ) -> Result<(), Status> {
        if caller.grants.allows(&permission) {
            return Ok(());
        }
        let error = AdminError::Denied {
            identity: caller.identity.clone(),
            permission: permission.to_string(),
        };
        Err(self
            .refuse(&caller.identity, action, targets.to_vec(), error)
            .await)
    }

    /// Audits a refused call, then turns the error into a status. A refusal
    /// that cannot be audited fails as a store error instead.
    async fn refuse(
        &self,
        actor: &str,
        action: &str,
        targets: Vec<String>,
        error: AdminError,
    ) -> Status {
        let record = AuditRecord::now(actor, action, error.outcome())
            .with_targets(targets)
            .with_detail(error.to_string());
        match self.audit_refusal(record).await {
            Ok(()) => error.into(),
            Err(failed) => failed,
        }
    }

    /// Writes a refusal's audit entry and logs it; if the entry cannot be
    /// written, the status to answer with instead.
    async fn audit_refusal(&self, record: AuditRecord) -> Result<(), Status> {
        let (actor, action, outcome) =
            (record.actor.clone(), record.action.clone(), record.outcome);
        if let Err(store) = self.state.store.audit(record).await {
            return Err(AdminError::Store(store).into());
        }

        tracing::info!(
            actor,
            action,
            outcome = outcome.as_str(),
            "admin call refused"
        );
        Ok(())
    }

    /// Finishes a call: a failure is audited and becomes a status.
    async fn finish<T>(
        &self,
        caller: &Caller,
        action: &str,
        targets: Vec<String>,
        result: Result<T, AdminError>,
    ) -> Result<Response<T>, Status> {
        match result {
            Ok(reply) => Ok(Response::new(reply)),
            Err(error) => Err(self.refuse(&caller.identity, action, targets, error).await),
        }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn apply(
        &self,
        request: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyResponse>, Status> {
        let caller = self.caller(&request, "apply").await?;
        self.apply_documents(&caller, request.into_inner()).await
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::Resource>, Status> {
        let caller = self.caller(&request, "get").await?;
        self.get_resource(&caller, request.into_inner()).await
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let caller = self.caller(&request, "list").await?;
        self.list_resources(&caller, request.into_inner()).await
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let caller = self.caller(&request, "delete").await?;
        self.delete_resource(&caller, request.into_inner()).await
    }

    type WatchStream = subscribe::WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = self.caller(&request, "watch").await?;
        self.watch_changes(caller, request.into_inner()).await
    }

    async fn list_audit(
        &self,
        request: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        let caller = self.caller(&request, "audit list").await?;
        self.list_audit_entries(&caller, request.into_inner()).await
    }

    async fn verify_audit(
        &self,
        request: Request<pb::VerifyAuditRequest>,
    ) -> Result<Response<pb::VerifyAuditResponse>, Status> {
        let caller = self.caller(&request, "audit verify").await?;
        self.verify_audit_chain(&caller).await
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let caller = self.caller(&request, "whoami").await?;
        Ok(Response::new(pb::WhoAmIResponse {
            identity: caller.identity,
            roles: caller.grants.roles,
        }))
    }

    async fn fleet_status(
        &self,
        request: Request<pb::FleetStatusRequest>,
    ) -> Result<Response<pb::FleetStatusResponse>, Status> {
        let caller = self.caller(&request, "status").await?;
        self.fleet_status(&caller, request.into_inner()).await
    }

    async fn create_join_token(
        &self,
        request: Request<pb::CreateJoinTokenRequest>,
    ) -> Result<Response<pb::JoinToken>, Status> {
        let caller = self.caller(&request, "node token create").await?;
        self.create_join_token(&caller, request.into_inner()).await
    }

    async fn revoke_node(
        &self,
        request: Request<pb::RevokeNodeRequest>,
    ) -> Result<Response<pb::RevokeNodeResponse>, Status> {
        let caller = self.caller(&request, "node revoke").await?;
        self.revoke_node(&caller, request.into_inner()).await
    }

    async fn key_status(
        &self,
        request: Request<pb::KeyStatusRequest>,
    ) -> Result<Response<pb::KeySet>, Status> {
        let caller = self.caller(&request, "key status").await?;
        self.key_status(&caller, request.into_inner()).await
    }

    async fn prepare_key(
        &self,
        request: Request<pb::PrepareKeyRequest>,
    ) -> Result<Response<pb::KeySet>, Status> {
        let caller = self.caller(&request, "key prepare").await?;
        let kind = request.get_ref().kind;
        self.rotate(&caller, kind, keys::Step::Prepare).await
    }

    async fn activate_key(
        &self,
        request: Request<pb::ActivateKeyRequest>,
    ) -> Result<Response<pb::KeySet>, Status> {
        let caller = self.caller(&request, "key activate").await?;
        let request = request.into_inner();
        let step = keys::Step::Activate {
            id: request.id,
            force: request.force,
        };
        self.rotate(&caller, request.kind, step).await
    }

    async fn retire_key(
        &self,
        request: Request<pb::RetireKeyRequest>,
    ) -> Result<Response<pb::KeySet>, Status> {
        let caller = self.caller(&request, "key retire").await?;
        let request = request.into_inner();
        let step = keys::Step::Retire {
            id: request.id,
            force: request.force,
        };
        self.rotate(&caller, request.kind, step).await
    }
}

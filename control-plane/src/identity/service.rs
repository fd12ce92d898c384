//! The identity API over gRPC: a thin layer that names the calling node
//! from its certificate, hands the request to the [`Authority`], and audits
//! every refusal before answering.

use std::sync::Arc;
use std::time::Duration;

use palisade_proto::identity as pb;
use palisade_proto::identity::identity_server::Identity;
use tonic::{Request, Response, Status};

use super::authority::Authority;
use super::error::IdentityError;
use super::issue::Issuance;
use super::rotation::BUNDLE_REFRESH_SECS;
use crate::audit::AuditRecord;
use crate::tls::PeerVerifier;

/// The largest identity request accepted; CSRs are a few hundred bytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The identity service.
#[derive(Clone)]
pub struct IdentityService {
    authority: Arc<Authority>,
    /// `None` when the server runs without TLS: then only attestation and
    /// the bundle are served.
    peers: Option<PeerVerifier>,
}

impl IdentityService {
    pub fn new(authority: Arc<Authority>, peers: Option<PeerVerifier>) -> Self {
        Self { authority, peers }
    }

    /// Names the calling node from its certificate, auditing a refusal.
    async fn node<T>(&self, request: &Request<T>, action: &str) -> Result<String, Status> {
        let peer = remote(request);
        let identified = match &self.peers {
            None => Err(IdentityError::Unauthenticated(
                "this call needs mTLS, and the control plane serves plaintext".into(),
            )),
            Some(peers) => {
                let chain = request.peer_certs();
                peers
                    .identify_peer(chain.as_deref().map(Vec::as_slice))
                    .map_err(|e| IdentityError::Unauthenticated(e.to_string()))
            }
        };
        let spiffe_id = match identified {
            Ok(found) => found.spiffe_id,
            Err(error) => return Err(self.refuse(&peer, action, Vec::new(), error).await),
        };

        match node_name(self.authority.trust_domain(), &spiffe_id) {
            Some(node) => Ok(node.to_owned()),
            None => {
                let error = IdentityError::Denied(format!(
                    "{spiffe_id} is not a node identity; only nodes may call {action}"
                ));
                Err(self.refuse(&spiffe_id, action, Vec::new(), error).await)
            }
        }
    }

    /// Audits a refused call, then turns the error into a status.
    async fn refuse(
        &self,
        actor: &str,
        action: &str,
        targets: Vec<String>,
        error: IdentityError,
    ) -> Status {
        let record = AuditRecord::now(actor, action, error.outcome())
            .with_targets(targets)
            .with_detail(error.to_string());
        if let Err(store) = self.authority.store().audit(record).await {
            return IdentityError::Store(store).into();
        }

        tracing::info!(actor, action, outcome = error.outcome().as_str(), %error, "identity call refused");
        error.into()
    }

    /// Answers with `result`, auditing a failure first.
    async fn finish<T>(
        &self,
        actor: &str,
        action: &str,
        targets: Vec<String>,
        result: Result<T, IdentityError>,
    ) -> Result<Response<T>, Status> {
        match result {
            Ok(reply) => Ok(Response::new(reply)),
            Err(error) => Err(self.refuse(actor, action, targets, error).await),
        }
    }

    fn bundle(&self) -> pb::TrustBundle {
        let material = self.authority.current();
        pb::TrustBundle {
            trust_domain: self.authority.trust_domain().to_owned(),
            x509_authorities_pem: material.bundle_pem.clone(),
            jwks_json: material.jwks_json.to_string(),
            revision: material.revision,
            refresh_hint_seconds: BUNDLE_REFRESH_SECS,
        }
    }

    fn node_certificate(&self, issued: Issuance) -> pb::NodeCertificate {
        pb::NodeCertificate {
            spiffe_id: issued.spiffe_id,
            certificate_chain_pem: issued.chain_pem,
            serial: issued.serial,
            expires_at_unix: issued.not_after,
            bundle: Some(self.bundle()),
        }
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn attest(
        &self,
        request: Request<pb::AttestRequest>,
    ) -> Result<Response<pb::NodeCertificate>, Status> {
        let actor = format!("attest from {}", remote(&request));
        let request = request.into_inner();

        let authority = &self.authority;
        match authority.attest(&request.join_token, &request.csr).await {
            Ok(issued) => {
                tracing::info!(node = %issued.spiffe_id, serial = %issued.serial, "node attested");
                Ok(Response::new(self.node_certificate(issued)))
            }
            Err(refused) => {
                let (targets, error) = (refused.targets, refused.error);
                Err(self.refuse(&actor, "attest", targets, error).await)
            }
        }
    }

    async fn renew_node(
        &self,
        request: Request<pb::RenewNodeRequest>,
    ) -> Result<Response<pb::NodeCertificate>, Status> {
        let node = self.node(&request, "renew node").await?;
        let actor = palisade_model::node_spiffe_id(self.authority.trust_domain(), &node);

        let result = self
            .authority
            .renew_node(&node, &request.get_ref().csr)
            .await
            .map(|issued| self.node_certificate(issued));
        self.finish(&actor, "renew node", vec![actor.clone()], result)
            .await
    }

    async fn sign_workload(
        &self,
        request: Request<pb::SignWorkloadRequest>,
    ) -> Result<Response<pb::WorkloadCertificate>, Status> {
        let node = self.node(&request, "sign workload").await?;
        let actor = palisade_model::node_spiffe_id(self.authority.trust_domain(), &node);
        let request = request.into_inner();
        let target = format!("Workload/{}/{}", request.namespace, request.workload);

        let result = self
            .authority
            .sign_workload(&node, &request.namespace, &request.workload, &request.csr)
            .await
            .map(|issued| pb::WorkloadCertificate {
                spiffe_id: issued.spiffe_id,
                certificate_chain_pem: issued.chain_pem,
                serial: issued.serial,
                expires_at_unix: issued.not_after,
                bundle: Some(self.bundle()),
            });
        self.finish(&actor, "sign workload", vec![target], result)
            .await
    }

    async fn mint_jwt_svid(
        &self,
        request: Request<pb::MintJwtSvidRequest>,
    ) -> Result<Response<pb::JwtSvid>, Status> {
        let node = self.node(&request, "mint jwt-svid").await?;
        let actor = palisade_model::node_spiffe_id(self.authority.trust_domain(), &node);
        let request = request.into_inner();
        let target = format!("Workload/{}/{}", request.namespace, request.workload);
        let ttl =
            (request.ttl_seconds > 0).then(|| Duration::from_secs(request.ttl_seconds.into()));

        let result = self
            .authority
            .mint_jwt_svid(
                &node,
                &request.namespace,
                &request.workload,
                request.audiences,
                ttl,
            )
            .await
            .map(|minted| pb::JwtSvid {
                spiffe_id: minted.spiffe_id,
                token: minted.token,
                expires_at_unix: minted.expires,
            });
        self.finish(&actor, "mint jwt-svid", vec![target], result)
            .await
    }

    async fn bundle(
        &self,
        _request: Request<pb::BundleRequest>,
    ) -> Result<Response<pb::TrustBundle>, Status> {
        Ok(Response::new(IdentityService::bundle(self)))
    }
}

/// The node name in `spiffe://<td>/node/<name>`, if that is what `id` is.
pub fn node_name<'a>(trust_domain: &str, id: &'a str) -> Option<&'a str> {
    let rest = id.strip_prefix("spiffe://")?.strip_prefix(trust_domain)?;
    let name = rest.strip_prefix("/node/")?;
    palisade_model::is_dns1123_subdomain(name).then_some(name)
}

fn remote<T>(request: &Request<T>) -> String {
    request
        .remote_addr()
        .map_or_else(|| "an unknown peer".into(), |a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_come_only_from_node_ids_of_this_trust_domain() {
        assert_eq!(node_name("td", "spiffe://td/node/web-1"), Some("web-1"));
        assert_eq!(
            node_name("td", "spiffe://td/node/web-1.dc"),
            Some("web-1.dc")
        );
        assert_eq!(node_name("td", "spiffe://other/node/web-1"), None);
        assert_eq!(node_name("td", "spiffe://td/admin/web-1"), None);
        assert_eq!(node_name("td", "spiffe://td/node/web-1/x"), None);
        assert_eq!(node_name("td", "spiffe://tdx/node/web-1"), None);
    }
}

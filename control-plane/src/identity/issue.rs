//! Issuance: what a node may be given, checked and recorded.
//!
//! Every certificate issued is written to the store as an
//! [`IssuedRecord`] in the same transaction as its audit entry, and the
//! answer waits until that write is durable. The write is conditioned on
//! the node not being revoked and on the workload still being assigned to
//! the node, so an issuance racing a revocation or a reassignment loses.
//! A JWT-SVID leaves no record, but its audit entry carries the same
//! conditions.

use std::sync::Arc;
use std::time::Duration;

use palisade_model::{Document, Kind, ResourceKey, Spec, WorkloadSpec};

use super::authority::Authority;
use super::csr::{self, CheckedCsr, Expectation};
use super::error::IdentityError;
use super::join_token;
use super::jwt::JwtSvidClaims;
use super::records::{Holder, IssuedRecord, JoinTokenRecord, encode};
use super::revocation;
use crate::audit::{AuditRecord, Outcome};
use crate::ca::{CertificateAuthority, SignedLeaf};
use crate::store::{Mutation, Precondition, StoreError, StoredResource, WriteRequest};

/// At most this many audiences in one JWT-SVID.
const MAX_AUDIENCES: usize = 16;
/// And each at most this long.
const MAX_AUDIENCE_LEN: usize = 256;

/// A certificate as handed out: the chain to present, and facts about it.
#[derive(Clone, Debug)]
pub struct Issuance {
    pub spiffe_id: String,
    pub chain_pem: String,
    pub serial: String,
    pub not_after: i64,
    pub bundle_pem: String,
}

/// A minted JWT-SVID.
pub struct MintedToken {
    pub spiffe_id: String,
    pub token: String,
    pub expires: i64,
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedToken")
            .field("spiffe_id", &self.spiffe_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// A refused attestation, with what it named as far as that was known: the
/// node and the join token's id, never its secret.
#[derive(Debug)]
pub struct AttestRefusal {
    pub error: IdentityError,
    /// Audit targets: `Node//<name>` and `join-token:<id>`, when known.
    pub targets: Vec<String>,
}

/// What an attestation has named so far.
#[derive(Default)]
struct Attempt {
    token_id: Option<String>,
    node: Option<String>,
}

impl Attempt {
    fn targets(self) -> Vec<String> {
        let node = self
            .node
            .map(|node| ResourceKey::new(Kind::Node, "", &node).store_key());
        let token = self.token_id.map(|id| format!("join-token:{id}"));
        node.into_iter().chain(token).collect()
    }
}

/// A leaf and the CA that signed it.
struct SignedBy {
    leaf: SignedLeaf,
    signer: Arc<CertificateAuthority>,
}

/// What one issuance writes besides the certificate's record.
struct Entry<'a> {
    actor: String,
    action: &'static str,
    node: &'a str,
    holder: Holder,
    detail: String,
    mutations: Vec<Mutation>,
    preconditions: Vec<Precondition>,
}

impl<'a> Entry<'a> {
    fn new(authority: &Authority, action: &'static str, node: &'a str, holder: Holder) -> Self {
        Self {
            actor: palisade_model::node_spiffe_id(authority.trust_domain(), node),
            action,
            node,
            holder,
            detail: String::new(),
            mutations: Vec::new(),
            preconditions: Vec::new(),
        }
    }
}

/// A workload a node asked about, with what its identity needs.
struct Assigned {
    key: String,
    revision: u64,
    spiffe_id: String,
    dns_names: Vec<String>,
}

impl Authority {
    /// Trades a join token and a CSR for a node certificate. A refusal
    /// names the node and the token's id, when they are known.
    pub async fn attest(&self, token: &str, csr_bytes: &[u8]) -> Result<Issuance, AttestRefusal> {
        let mut attempt = Attempt::default();
        let result = self.attest_as(token, csr_bytes, &mut attempt).await;
        result.map_err(|error| AttestRefusal {
            error,
            targets: attempt.targets(),
        })
    }

    async fn attest_as(
        &self,
        token: &str,
        csr_bytes: &[u8],
        attempt: &mut Attempt,
    ) -> Result<Issuance, IdentityError> {
        let presented = join_token::parse(token).map_err(denied)?;
        attempt.token_id = Some(presented.id.to_ascii_lowercase());
        let key = join_token::record_key(presented.id);
        let stored = super::records::get::<JoinTokenRecord>(self.store(), &key)
            .await?
            .ok_or(IdentityError::Denied(
                join_token::TokenError::Unknown.to_string(),
            ))?;
        let node = stored.record.node.clone();
        attempt.node = Some(node.clone());
        let now = self.now();
        join_token::check(&presented, &stored.record, now).map_err(denied)?;

        let csr = self.node_csr(&node, csr_bytes).await?;
        let signed = self.sign(&csr, self.config().node_ttl)?;

        let mut used = stored.record.clone();
        used.used = Some(now);
        let consume = Mutation::Put {
            key: key.clone(),
            document: encode(&used),
        };
        let token_unused = Precondition::AtRevision {
            key,
            revision: stored.revision,
        };
        let mut entry = Entry::new(self, "attest", &node, Holder::Node);
        entry.detail = format!("join token {}", presented.id);
        entry.mutations.push(consume);
        entry.preconditions.push(token_unused);
        let written = self.record(entry, &signed).await;
        match written {
            Err(IdentityError::Store(StoreError::Conflict { key, .. }))
                if key.starts_with("JoinToken/") =>
            {
                Err(denied(join_token::TokenError::Used))
            }
            other => other,
        }
    }

    /// Issues a fresh certificate to a node that holds a valid one.
    pub async fn renew_node(
        &self,
        node: &str,
        csr_bytes: &[u8],
    ) -> Result<Issuance, IdentityError> {
        let csr = self.node_csr(node, csr_bytes).await?;
        let signed = self.sign(&csr, self.config().node_ttl)?;

        let entry = Entry::new(self, "renew node", node, Holder::Node);
        self.record(entry, &signed).await
    }

    /// Signs an X.509-SVID for a workload assigned to `node`.
    pub async fn sign_workload(
        &self,
        node: &str,
        namespace: &str,
        workload: &str,
        csr_bytes: &[u8],
    ) -> Result<Issuance, IdentityError> {
        self.check_not_revoked(node).await?;
        let assigned = self.assigned(node, namespace, workload).await?;
        let expected = Expectation {
            spiffe_id: &assigned.spiffe_id,
            dns_names: &assigned.dns_names,
        };
        let csr = csr::check(csr_bytes, &expected).map_err(invalid)?;
        let signed = self.sign(&csr, self.config().workload_ttl)?;

        let mut entry = Entry::new(self, "sign workload", node, Holder::Workload);
        entry.preconditions.push(still_assigned(&assigned));
        self.record(entry, &signed).await
    }

    /// Mints a JWT-SVID for a workload assigned to `node`.
    pub async fn mint_jwt_svid(
        &self,
        node: &str,
        namespace: &str,
        workload: &str,
        audiences: Vec<String>,
        ttl: Option<Duration>,
    ) -> Result<MintedToken, IdentityError> {
        check_audiences(&audiences)?;
        self.check_not_revoked(node).await?;
        let assigned = self.assigned(node, namespace, workload).await?;

        let (minted, audit) = {
            let _minting = self.minting().await;
            self.mint(node, &assigned, audiences, ttl)?
        };
        self.record_mint(node, &assigned, audit).await?;
        Ok(minted)
    }

    /// Signs a JWT-SVID for an assigned workload; returns it with the audit
    /// entry that must be durable before it is handed out. The caller holds
    /// [`Authority::minting`], so the key cannot change between dating the
    /// token and signing it.
    fn mint(
        &self,
        node: &str,
        assigned: &Assigned,
        audiences: Vec<String>,
        ttl: Option<Duration>,
    ) -> Result<(MintedToken, AuditRecord), IdentityError> {
        let longest = self.config().jwt_svid_ttl;
        let ttl = ttl.map_or(longest, |ttl| ttl.min(longest));
        let claims = JwtSvidClaims::new(assigned.spiffe_id.clone(), audiences, self.now(), ttl);
        let material = self.current();
        let token = material
            .jwt_signer
            .mint(&claims)
            .map_err(|e| IdentityError::Invalid(e.to_string()))?;

        let actor = palisade_model::node_spiffe_id(self.trust_domain(), node);
        let audit = AuditRecord::now(&actor, "mint jwt-svid", Outcome::Ok)
            .with_targets(vec![
                assigned.spiffe_id.clone(),
                format!("kid:{}", material.jwt_signer.kid()),
            ])
            .with_detail(format!("aud {}", claims.aud.join(",")));
        let minted = MintedToken {
            spiffe_id: assigned.spiffe_id.clone(),
            token,
            expires: claims.exp,
        };
        Ok((minted, audit))
    }

    /// Audits a minted token, on condition that the node was not revoked
    /// and the workload not reassigned since they were checked.
    async fn record_mint(
        &self,
        node: &str,
        assigned: &Assigned,
        audit: AuditRecord,
    ) -> Result<(), IdentityError> {
        let preconditions = vec![not_revoked(node), still_assigned(assigned)];
        match self.store().audit_if(audit, preconditions).await {
            Ok(_) => Ok(()),
            Err(error) => Err(refused_write(node, error)),
        }
    }

    /// Checks a node's own CSR after checking that the node may have one.
    async fn node_csr(&self, node: &str, csr_bytes: &[u8]) -> Result<CheckedCsr, IdentityError> {
        self.check_not_revoked(node).await?;
        let key = ResourceKey::new(Kind::Node, "", node).store_key();
        if self.store().get(&key).await?.is_none() {
            return Err(IdentityError::NotFound(format!(
                "Node {node} does not exist"
            )));
        }

        let spiffe_id = palisade_model::node_spiffe_id(self.trust_domain(), node);
        let expected = Expectation {
            spiffe_id: &spiffe_id,
            dns_names: &[],
        };
        csr::check(csr_bytes, &expected).map_err(invalid)
    }

    async fn check_not_revoked(&self, node: &str) -> Result<(), IdentityError> {
        match revocation::revoked(self.store(), node).await? {
            Some(revoked) => Err(IdentityError::Denied(format!(
                "node {node} was revoked at unix time {}",
                revoked.revoked
            ))),
            None => Ok(()),
        }
    }

    /// The workload `namespace/name`, which must be assigned to `node`.
    async fn assigned(
        &self,
        node: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Assigned, IdentityError> {
        let key = ResourceKey::new(Kind::Workload, namespace, name);
        let stored = self.document(&key).await?;
        let Some((revision, document)) = stored else {
            return Err(IdentityError::NotFound(format!("{key} does not exist")));
        };
        let Spec::Workload(WorkloadSpec {
            service,
            node: assigned_node,
            ..
        }) = document.spec
        else {
            return Err(IdentityError::Internal(format!("{key} holds another kind")));
        };
        if assigned_node != node {
            return Err(IdentityError::Denied(format!(
                "{key} runs on node {assigned_node}, not on {node}"
            )));
        }

        let service_key = ResourceKey::new(Kind::Service, namespace, &service);
        let Some((_, service_document)) = self.document(&service_key).await? else {
            return Err(IdentityError::NotFound(format!(
                "{service_key} does not exist"
            )));
        };
        let Spec::Service(spec) = service_document.spec else {
            return Err(IdentityError::Internal(format!(
                "{service_key} holds another kind"
            )));
        };
        let account = spec.service_account_or(&service);
        Ok(Assigned {
            key: key.store_key(),
            revision,
            spiffe_id: palisade_model::service_spiffe_id(self.trust_domain(), namespace, account),
            dns_names: spec.dns_names.clone(),
        })
    }

    async fn document(&self, key: &ResourceKey) -> Result<Option<(u64, Document)>, IdentityError> {
        let Some(StoredResource {
            revision, document, ..
        }) = self.store().get(&key.store_key()).await?
        else {
            return Ok(None);
        };
        let document = Document::from_json(&document)
            .map_err(|e| IdentityError::Internal(format!("stored {key} does not parse: {e}")))?;
        Ok(Some((revision, document)))
    }

    /// Signs with the active CA, keeping that CA with the leaf: a rotation
    /// may change the active CA before the leaf is handed out.
    fn sign(&self, csr: &CheckedCsr, lifetime: Duration) -> Result<SignedBy, IdentityError> {
        let signer = self.current().signer.clone();
        let leaf = signer
            .sign_csr(csr, lifetime)
            .map_err(|e| IdentityError::Internal(e.to_string()))?;
        Ok(SignedBy { leaf, signer })
    }

    /// Records an issued certificate with its audit entry, with the extra
    /// mutations and conditions of the call, and returns it once durable,
    /// chained to the CA that signed it.
    async fn record(
        &self,
        mut entry: Entry<'_>,
        signed: &SignedBy,
    ) -> Result<Issuance, IdentityError> {
        let node = entry.node;
        let leaf = &signed.leaf;
        let issued = IssuedRecord {
            serial: leaf.serial_hex.clone(),
            spiffe_id: leaf.spiffe_id.clone(),
            holder: entry.holder,
            authority: signed.signer.id(),
            requester: entry.actor.clone(),
            not_after: leaf.not_after.unix_timestamp(),
        };
        entry.mutations.push(Mutation::Put {
            key: revocation::issued_key(node, &issued.serial),
            document: encode(&issued),
        });
        entry.preconditions.push(not_revoked(node));
        let targets = vec![
            issued.spiffe_id.clone(),
            format!("serial:{}", issued.serial),
        ];
        let audit = AuditRecord::now(&entry.actor, entry.action, Outcome::Ok)
            .with_targets(targets)
            .with_detail(entry.detail);

        let request = WriteRequest {
            mutations: entry.mutations,
            preconditions: entry.preconditions,
            audit,
        };
        if let Err(error) = self.store().write(request).await {
            return Err(refused_write(node, error));
        }

        Ok(Issuance {
            spiffe_id: issued.spiffe_id,
            chain_pem: format!("{}{}", leaf.certificate_pem, signed.signer.chain_pem()),
            serial: issued.serial,
            not_after: issued.not_after,
            bundle_pem: self.current().bundle_pem.clone(),
        })
    }
}

/// The condition that `node` has not been revoked.
fn not_revoked(node: &str) -> Precondition {
    Precondition::Absent {
        key: revocation::record_key(node),
    }
}

/// The condition that a workload is still as it was when it was checked.
fn still_assigned(assigned: &Assigned) -> Precondition {
    Precondition::AtRevision {
        key: assigned.key.clone(),
        revision: assigned.revision,
    }
}

/// What an issuance's refused write means to the caller.
fn refused_write(node: &str, error: StoreError) -> IdentityError {
    match error {
        StoreError::Conflict { key, .. } if key.starts_with("NodeRevocation/") => {
            IdentityError::Denied(format!("node {node} was revoked"))
        }
        StoreError::Conflict { key, detail } if key.starts_with("Workload/") => {
            IdentityError::Denied(format!("{key} {detail}; ask again"))
        }
        other => other.into(),
    }
}

fn check_audiences(audiences: &[String]) -> Result<(), IdentityError> {
    if audiences.is_empty() {
        return Err(IdentityError::Invalid(
            "audiences: at least one is needed".into(),
        ));
    }
    if audiences.len() > MAX_AUDIENCES {
        return Err(IdentityError::Invalid(format!(
            "audiences: {} is more than {MAX_AUDIENCES}",
            audiences.len()
        )));
    }
    for (index, audience) in audiences.iter().enumerate() {
        if audience.is_empty() || audience.len() > MAX_AUDIENCE_LEN {
            return Err(IdentityError::Invalid(format!(
                "audiences[{index}]: must be 1 to {MAX_AUDIENCE_LEN} characters"
            )));
        }
    }
    Ok(())
}

fn denied(error: join_token::TokenError) -> IdentityError {
    IdentityError::Denied(error.to_string())
}

fn invalid(error: csr::CsrError) -> IdentityError {
    match error {
        csr::CsrError::TooLarge { .. } => IdentityError::TooLarge(error.to_string()),
        other => IdentityError::Invalid(other.to_string()),
    }
}

#[cfg(test)]
mod tests;

//! What admins do to nodes' identities: create their join tokens and
//! revoke them.

use std::time::Duration;

use palisade_model::{Kind, ResourceKey};

use super::authority::Authority;
use super::error::IdentityError;
use super::join_token::{self, NewToken};
use super::records::{RevokedSerial, encode};
use super::revocation;
use crate::audit::{AuditRecord, Outcome};
use crate::store::{Mutation, Precondition, Revision, StoreError, WriteRequest};

impl Authority {
    /// Creates a join token for `node`, valid for `ttl` (the default when
    /// `None`), and returns it with the revision it was stored at.
    pub async fn create_join_token(
        &self,
        actor: &str,
        node: &str,
        ttl: Option<Duration>,
    ) -> Result<(NewToken, Revision), IdentityError> {
        let ttl = checked_ttl(ttl)?;
        let node_key = ResourceKey::new(Kind::Node, "", node).store_key();
        if self.store().get(&node_key).await?.is_none() {
            return Err(IdentityError::NotFound(format!(
                "Node {node} does not exist"
            )));
        }
        if let Some(revoked) = revocation::revoked(self.store(), node).await? {
            return Err(IdentityError::Precondition(format!(
                "node {node} was revoked at unix time {}; it cannot join again",
                revoked.revoked
            )));
        }

        let token = join_token::generate(node, actor, ttl, self.now())
            .map_err(|e| IdentityError::Internal(e.to_string()))?;
        let key = join_token::record_key(&token.id);
        let audit = AuditRecord::now(actor, "node token create", Outcome::Ok)
            .with_targets(vec![node_key.clone(), format!("join-token:{}", token.id)])
            .with_detail(format!("expires at unix time {}", token.record.expires));
        let request = WriteRequest {
            mutations: vec![Mutation::Put {
                key: key.clone(),
                document: encode(&token.record),
            }],
            preconditions: vec![
                Precondition::Absent { key },
                Precondition::Present { key: node_key },
                Precondition::Absent {
                    key: revocation::record_key(node),
                },
            ],
            audit,
        };

        match self.store().write(request).await {
            Ok(revision) => Ok((token, revision)),
            Err(StoreError::Conflict { key, detail }) => Err(IdentityError::Precondition(format!(
                "{key} {detail} meanwhile; try again"
            ))),
            Err(error) => Err(error.into()),
        }
    }

    /// Revokes `node`: its renewals and signings are refused from now on and
    /// the serials it holds go on the deny list.
    pub async fn revoke_node(
        &self,
        actor: &str,
        node: &str,
        reason: &str,
    ) -> Result<(Revision, Vec<RevokedSerial>), IdentityError> {
        let revoked = revocation::revoke(self.store(), actor, node, reason, self.now()).await?;
        tracing::info!(actor, node, serials = revoked.1.len(), "node revoked");
        Ok(revoked)
    }
}

fn checked_ttl(ttl: Option<Duration>) -> Result<Duration, IdentityError> {
    let ttl = ttl.unwrap_or(join_token::DEFAULT_TTL);
    if ttl.is_zero() || ttl > join_token::MAX_TTL {
        return Err(IdentityError::Invalid(format!(
            "ttl: {}s is outside 1s to {}s",
            ttl.as_secs(),
            join_token::MAX_TTL.as_secs()
        )));
    }
    Ok(ttl)
}

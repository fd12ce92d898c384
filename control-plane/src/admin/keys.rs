//! Node identity and key rotation through the admin API: join tokens,
//! revocation, and the CAs' and JWT signing keys' life cycles.

use std::time::Duration;

use palisade_model::Kind;
use palisade_proto::admin as pb;
use tonic::{Response, Status};

use super::{AdminError, AdminService, Caller};
use crate::authz::{Permission, Verb};
use crate::identity::authority::{KeyInfo, KeyKind, KeySetInfo};
use crate::identity::rotation::{KeyState, Lifecycle};

/// A rotation step asked for.
pub(super) enum Step {
    Prepare,
    Activate { id: String, force: bool },
    Retire { id: String, force: bool },
}

impl Step {
    fn action(&self, kind: KeyKind) -> &'static str {
        match (kind, self) {
            (KeyKind::Ca, Step::Prepare) => "ca prepare",
            (KeyKind::Ca, Step::Activate { .. }) => "ca activate",
            (KeyKind::Ca, Step::Retire { .. }) => "ca retire",
            (KeyKind::Jwt, Step::Prepare) => "jwt-key prepare",
            (KeyKind::Jwt, Step::Activate { .. }) => "jwt-key activate",
            (KeyKind::Jwt, Step::Retire { .. }) => "jwt-key retire",
        }
    }
}

impl AdminService {
    pub(super) async fn create_join_token(
        &self,
        caller: &Caller,
        request: pb::CreateJoinTokenRequest,
    ) -> Result<Response<pb::JoinToken>, Status> {
        let action = "node token create";
        let targets = vec![format!("Node//{}", request.node)];
        let permission = Permission::on(Verb::Issue, Kind::Node, "");
        self.authorize(caller, action, permission, &targets).await?;

        let result = self.join_token(caller, &request).await;
        self.finish(caller, action, targets, result).await
    }

    async fn join_token(
        &self,
        caller: &Caller,
        request: &pb::CreateJoinTokenRequest,
    ) -> Result<pb::JoinToken, AdminError> {
        if !palisade_model::is_dns1123_subdomain(&request.node) {
            return Err(AdminError::Invalid(format!(
                "node: {:?} is not a node name (a DNS-1123 subdomain)",
                request.node
            )));
        }
        let ttl =
            (request.ttl_seconds > 0).then(|| Duration::from_secs(request.ttl_seconds.into()));

        let authority = &self.state.authority;
        let (token, revision) = authority
            .create_join_token(&caller.identity, &request.node, ttl)
            .await?;
        Ok(pb::JoinToken {
            expires_at_unix: token.record.expires,
            node: token.record.node.clone(),
            token: token.text,
            revision,
        })
    }

    pub(super) async fn revoke_node(
        &self,
        caller: &Caller,
        request: pb::RevokeNodeRequest,
    ) -> Result<Response<pb::RevokeNodeResponse>, Status> {
        let action = "node revoke";
        let targets = vec![format!("Node//{}", request.node)];
        let permission = Permission::on(Verb::Revoke, Kind::Node, "");
        self.authorize(caller, action, permission, &targets).await?;

        let result = self
            .state
            .authority
            .revoke_node(&caller.identity, &request.node, &request.reason)
            .await
            .map(|(revision, serials)| pb::RevokeNodeResponse {
                revision,
                serials: serials.into_iter().map(|s| s.serial).collect(),
            })
            .map_err(AdminError::from);
        self.finish(caller, action, targets, result).await
    }

    pub(super) async fn key_status(
        &self,
        caller: &Caller,
        request: pb::KeyStatusRequest,
    ) -> Result<Response<pb::KeySet>, Status> {
        let action = "key status";
        let kind = match key_kind(request.kind) {
            Ok(kind) => kind,
            Err(error) => return self.finish(caller, action, Vec::new(), Err(error)).await,
        };
        let permission = Permission::unscoped(Verb::Get);
        self.authorize(caller, action, permission, &[]).await?;

        let result = self.key_set(kind).await;
        self.finish(caller, action, Vec::new(), result).await
    }

    pub(super) async fn rotate(
        &self,
        caller: &Caller,
        kind: i32,
        step: Step,
    ) -> Result<Response<pb::KeySet>, Status> {
        let kind = match key_kind(kind) {
            Ok(kind) => kind,
            Err(error) => {
                return self
                    .finish(caller, "key rotate", Vec::new(), Err(error))
                    .await;
            }
        };
        let action = step.action(kind);
        let permission = Permission::unscoped(Verb::Rotate);
        self.authorize(caller, action, permission, &[]).await?;

        let result = self.rotate_step(caller, kind, step).await;
        self.finish(caller, action, Vec::new(), result).await
    }

    async fn rotate_step(
        &self,
        caller: &Caller,
        kind: KeyKind,
        step: Step,
    ) -> Result<pb::KeySet, AdminError> {
        let authority = &self.state.authority;
        let actor = caller.identity.as_str();
        let named = |id: &str| (!id.is_empty()).then(|| id.to_owned());

        match step {
            Step::Prepare => authority.prepare(kind, actor).await?,
            Step::Activate { id, force } => {
                authority
                    .activate(kind, actor, named(&id).as_deref(), force)
                    .await?
            }
            Step::Retire { id, force } => {
                authority
                    .retire(kind, actor, named(&id).as_deref(), force)
                    .await?
            }
        };
        self.key_set(kind).await
    }

    async fn key_set(&self, kind: KeyKind) -> Result<pb::KeySet, AdminError> {
        let info = self.state.authority.status(kind).await?;
        Ok(key_set_to_proto(kind, info))
    }
}

fn key_kind(kind: i32) -> Result<KeyKind, AdminError> {
    match pb::KeyKind::try_from(kind) {
        Ok(pb::KeyKind::Ca) => Ok(KeyKind::Ca),
        Ok(pb::KeyKind::Jwt) => Ok(KeyKind::Jwt),
        _ => Err(AdminError::Invalid(format!(
            "kind: {kind} is not a key kind (expected KEY_KIND_CA or KEY_KIND_JWT)"
        ))),
    }
}

fn key_set_to_proto(kind: KeyKind, info: KeySetInfo) -> pb::KeySet {
    let kind = match kind {
        KeyKind::Ca => pb::KeyKind::Ca,
        KeyKind::Jwt => pb::KeyKind::Jwt,
    };
    pb::KeySet {
        kind: kind as i32,
        keys: info.keys.into_iter().map(key_to_proto).collect(),
        revision: info.revision,
        published: info.published,
    }
}

fn key_to_proto(key: KeyInfo) -> pb::Key {
    let Lifecycle {
        state,
        created,
        activated,
        deactivated,
        retired,
    } = key.life;
    let state = match state {
        KeyState::Prepared => pb::KeyState::Prepared,
        KeyState::Active => pb::KeyState::Active,
        KeyState::Inactive => pb::KeyState::Inactive,
        KeyState::Retired => pb::KeyState::Retired,
    };
    pb::Key {
        id: key.id,
        state: state as i32,
        created_unix: created,
        activated_unix: activated.unwrap_or(0),
        deactivated_unix: deactivated.unwrap_or(0),
        retired_unix: retired.unwrap_or(0),
        not_before_unix: key.not_before,
        not_after_unix: key.not_after,
        signed_until_unix: key.signed_until.min(i64::MAX - 1),
        certificate_pem: key.certificate_pem,
    }
}

//! Get and List, and the grants that every call reads.

use std::collections::BTreeMap;

use palisade_model::{Kind, ResourceKey, Spec};
use palisade_proto::admin as pb;
use tonic::{Response, Status};

use super::resource::{document_of, key_for, key_of, parse_kind, to_proto};
use super::selector::LabelSelector;
use super::{AdminError, AdminService, Caller};
use crate::authz::{Grants, Permission, Verb};

/// Lists return at most this many resources unless asked for fewer.
const DEFAULT_LIMIT: usize = 1000;
/// And never more than this many.
const MAX_LIMIT: usize = 10_000;
/// Admin bindings and roles read per call, at most.
const MAX_ADMIN_RESOURCES: usize = 10_000;

impl AdminService {
    pub(super) async fn get_resource(
        &self,
        caller: &Caller,
        request: pb::GetRequest,
    ) -> Result<Response<pb::Resource>, Status> {
        let key = match key_for(&request.kind, &request.namespace, &request.name) {
            Ok(key) => key,
            Err(error) => return self.finish(caller, "get", Vec::new(), Err(error)).await,
        };
        let targets = vec![key.store_key()];
        let permission = Permission::on(Verb::Get, key.kind, &key.namespace);
        self.authorize(caller, "get", permission, &targets).await?;

        let result = self.read_one(&key).await;
        self.finish(caller, "get", targets, result).await
    }

    async fn read_one(&self, key: &ResourceKey) -> Result<pb::Resource, AdminError> {
        let found = self.state.store.get(&key.store_key()).await?;
        self.state.store.settled().await?;
        match found {
            Some(stored) => to_proto(&stored),
            None => Err(AdminError::NotFound(format!("{key} does not exist"))),
        }
    }

    pub(super) async fn list_resources(
        &self,
        caller: &Caller,
        request: pb::ListRequest,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let kind = match parse_kind(&request.kind) {
            Ok(kind) => kind,
            Err(error) => return self.finish(caller, "list", Vec::new(), Err(error)).await,
        };
        let target = vec![format!("{kind}/{}", request.namespace)];
        let permission = Permission::on(Verb::List, kind, &request.namespace);
        if !request.namespace.is_empty() || !caller.grants.allows_somewhere(Verb::List, kind) {
            self.authorize(caller, "list", permission, &target).await?;
        }

        let result = self.read_page(caller, kind, &request).await;
        self.finish(caller, "list", target, result).await
    }

    async fn read_page(
        &self,
        caller: &Caller,
        kind: Kind,
        request: &pb::ListRequest,
    ) -> Result<pb::ListResponse, AdminError> {
        let selector =
            LabelSelector::parse(&request.label_selector).map_err(AdminError::Invalid)?;
        let limit = match request.limit as usize {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let prefix = match request.namespace.as_str() {
            "" => format!("{kind}/"),
            namespace => format!("{kind}/{namespace}/"),
        };
        let start_after = (!request.page_token.is_empty()).then_some(request.page_token.as_str());
        if start_after.is_some_and(|token| !token.starts_with(&prefix)) {
            return Err(AdminError::Invalid(
                "page_token: does not belong to this list".into(),
            ));
        }

        let page = self.state.store.list(&prefix, start_after, limit).await?;
        self.state.store.settled().await?;
        let mut response = pb::ListResponse {
            revision: page.revision,
            ..Default::default()
        };
        if page.more {
            response.next_page_token = page
                .resources
                .last()
                .map(|r| r.key.clone())
                .unwrap_or_default();
        }
        for stored in &page.resources {
            let key = key_of(stored)?;
            if !caller
                .grants
                .allows(&Permission::on(Verb::List, kind, &key.namespace))
            {
                continue;
            }
            if !selector.is_empty() && !selector.matches(&document_of(stored)?.metadata.labels) {
                continue;
            }
            response.resources.push(to_proto(stored)?);
        }
        Ok(response)
    }

    /// Reads the bindings and roles that apply to `identity`.
    pub(super) async fn grants(&self, identity: &str) -> Result<Grants, AdminError> {
        let store = &self.state.store;
        let bindings = store
            .list("AdminBinding//", None, MAX_ADMIN_RESOURCES)
            .await?;
        let roles = store.list("AdminRole//", None, MAX_ADMIN_RESOURCES).await?;

        let mut binding_specs = Vec::new();
        for stored in &bindings.resources {
            if let Spec::AdminBinding(spec) = document_of(stored)?.spec {
                binding_specs.push(spec);
            }
        }
        let mut role_specs = BTreeMap::new();
        for stored in &roles.resources {
            let document = document_of(stored)?;
            if let Spec::AdminRole(spec) = document.spec {
                role_specs.insert(document.metadata.name, spec);
            }
        }
        Ok(Grants::for_identity(identity, &binding_specs, &role_specs))
    }
}

//! The world as xDS sees it: every resource that shapes what some node or
//! proxy is told, held in memory and kept current from the store's change
//! log, plus the trust bundle and the deny list of revoked serials.
//!
//! Builders of xDS resources read only this, never the store, so that a
//! change costs one update here and the compile of what it touches.

use std::collections::{BTreeMap, BTreeSet};

use palisade_model::{
    AuthorizationPolicySpec, Document, JwtIssuerSpec, Kind, NodeSpec, PolicyAction,
    RequestAuthenticationSpec, ResourceKey, ServiceSpec, Source, Spec, WorkloadSpec,
};

use crate::identity::records::{NODE_REVOCATION, RevocationRecord};
use crate::store::{ChangeAction, ChangeEvent, Revision, StoredResource};

/// A namespaced name: (namespace, name).
pub type Named = (String, String);

/// What verifiers trust: the CA certificates and the JWKS of Palisade's
/// own signing keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bundle {
    pub x509_pem: String,
    pub jwks_json: String,
}

/// Everything xDS compiles from.
#[derive(Clone, Debug, Default)]
pub struct World {
    /// The store revision the world reflects.
    pub revision: Revision,
    pub trust_domain: String,
    pub nodes: BTreeMap<String, NodeSpec>,
    pub services: BTreeMap<Named, ServiceSpec>,
    pub workloads: BTreeMap<Named, WorkloadSpec>,
    /// The workloads of each node and of each service: indexes of
    /// `workloads`, kept in step with it.
    by_node: BTreeMap<String, BTreeSet<Named>>,
    by_service: BTreeMap<Named, BTreeSet<Named>>,
    pub policies: BTreeMap<Named, AuthorizationPolicySpec>,
    pub issuers: BTreeMap<Named, JwtIssuerSpec>,
    pub request_authentications: BTreeMap<Named, RequestAuthenticationSpec>,
    pub bundle: Bundle,
    /// Revoked nodes, with the serials they held.
    pub revocations: BTreeMap<String, RevocationRecord>,
}

/// What a change touched, for deciding whose views to rebuild.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// Nodes whose own resources changed.
    pub nodes: BTreeSet<String>,
    /// Services whose spec, workloads or endpoints changed.
    pub services: BTreeSet<Named>,
    /// Something that can change any view: a policy, an issuer, the bundle,
    /// a revocation.
    pub everything: bool,
}

impl Touched {
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.services.is_empty() && !self.everything
    }

    pub fn merge(&mut self, other: Touched) {
        self.nodes.extend(other.nodes);
        self.services.extend(other.services);
        self.everything |= other.everything;
    }
}

impl World {
    /// An empty world for `trust_domain`.
    pub fn new(trust_domain: &str) -> Self {
        Self {
            trust_domain: trust_domain.to_owned(),
            ..Self::default()
        }
    }

    /// Takes in one stored resource as it is now (from a full load).
    pub fn insert(&mut self, stored: &StoredResource) -> Touched {
        self.change(&ChangeEvent {
            action: ChangeAction::Created,
            resource: stored.clone(),
        })
    }

    /// Applies one change event and says what it touched. Resources of kinds
    /// xDS does not serve are ignored.
    pub fn change(&mut self, event: &ChangeEvent) -> Touched {
        let deleted = event.action == ChangeAction::Deleted;
        if event
            .resource
            .key
            .starts_with(&format!("{NODE_REVOCATION}/"))
        {
            return self.change_revocation(&event.resource, deleted);
        }
        let Some(key) = ResourceKey::parse_store_key(&event.resource.key) else {
            return Touched::default();
        };
        let spec = match deleted {
            true => None,
            false => match Document::from_json(&event.resource.document) {
                Ok(document) => Some(document.spec),
                Err(error) => {
                    tracing::error!(key = %event.resource.key, %error, "stored document does not parse; xDS keeps the old one");
                    return Touched::default();
                }
            },
        };
        self.change_resource(key, spec)
    }

    fn change_resource(&mut self, key: ResourceKey, spec: Option<Spec>) -> Touched {
        let named = (key.namespace.clone(), key.name.clone());
        let mut touched = Touched::default();
        match (key.kind, spec) {
            (Kind::Node, spec) => {
                touched.nodes.insert(key.name.clone());
                touched.services.extend(self.services_on(&key.name));
                put(&mut self.nodes, key.name, spec, |s| match s {
                    Spec::Node(n) => Some(n),
                    _ => None,
                });
            }
            (Kind::Service, spec) => {
                touched.services.insert(named.clone());
                touched.nodes.extend(self.nodes_hosting(&named));
                let identity_before = self.service_identity(&named);
                put(&mut self.services, named.clone(), spec, |s| match s {
                    Spec::Service(n) => Some(n),
                    _ => None,
                });
                // A service that appears, disappears or changes identity can
                // change whom any policy lets call it.
                touched.everything = identity_before != self.service_identity(&named);
            }
            (Kind::Workload, spec) => {
                if let Some(old) = self.workloads.get(&named) {
                    touched.nodes.insert(old.node.clone());
                    touched
                        .services
                        .insert((key.namespace.clone(), old.service.clone()));
                }
                if let Some(Spec::Workload(new)) = &spec {
                    touched.nodes.insert(new.node.clone());
                    touched
                        .services
                        .insert((key.namespace.clone(), new.service.clone()));
                }
                self.unindex(&named);
                put(&mut self.workloads, named.clone(), spec, |s| match s {
                    Spec::Workload(n) => Some(n),
                    _ => None,
                });
                self.index(&named);
            }
            (Kind::AuthorizationPolicy, spec) => {
                touched.everything = true;
                put(&mut self.policies, named, spec, |s| match s {
                    Spec::AuthorizationPolicy(n) => Some(n),
                    _ => None,
                });
            }
            (Kind::JwtIssuer, spec) => {
                touched.everything = true;
                put(&mut self.issuers, named, spec, |s| match s {
                    Spec::JwtIssuer(n) => Some(n),
                    _ => None,
                });
            }
            (Kind::RequestAuthentication, spec) => {
                touched.everything = true;
                put(
                    &mut self.request_authentications,
                    named,
                    spec,
                    |s| match s {
                        Spec::RequestAuthentication(n) => Some(n),
                        _ => None,
                    },
                );
            }
            (Kind::AdminRole | Kind::AdminBinding, _) => {}
        }
        touched
    }

    fn change_revocation(&mut self, stored: &StoredResource, deleted: bool) -> Touched {
        let node = stored.key.rsplit('/').next().unwrap_or_default().to_owned();
        if deleted {
            self.revocations.remove(&node);
        } else {
            match serde_json::from_str::<RevocationRecord>(&stored.document) {
                Ok(record) => {
                    self.revocations.insert(node, record);
                }
                Err(error) => {
                    tracing::error!(key = %stored.key, %error, "revocation record does not parse");
                    return Touched::default();
                }
            }
        }
        Touched {
            everything: true,
            ..Touched::default()
        }
    }

    /// Replaces the bundle; says whether it changed.
    pub fn set_bundle(&mut self, bundle: Bundle) -> Touched {
        let changed = self.bundle != bundle;
        self.bundle = bundle;
        Touched {
            everything: changed,
            ..Touched::default()
        }
    }

    /// The workloads assigned to `node`, in name order.
    pub fn workloads_on<'a>(
        &'a self,
        node: &str,
    ) -> impl Iterator<Item = (&'a Named, &'a WorkloadSpec)> + use<'a> {
        self.indexed(self.by_node.get(node))
    }

    /// The workloads of a service, in name order.
    pub fn workloads_of<'a>(
        &'a self,
        service: &Named,
    ) -> impl Iterator<Item = (&'a Named, &'a WorkloadSpec)> + use<'a> {
        self.indexed(self.by_service.get(service))
    }

    fn indexed<'a>(
        &'a self,
        names: Option<&'a BTreeSet<Named>>,
    ) -> impl Iterator<Item = (&'a Named, &'a WorkloadSpec)> + use<'a> {
        names
            .into_iter()
            .flatten()
            .filter_map(|named| self.workloads.get_key_value(named))
    }

    fn index(&mut self, named: &Named) {
        let Some(spec) = self.workloads.get(named) else {
            return;
        };
        let service = (named.0.clone(), spec.service.clone());
        self.by_node
            .entry(spec.node.clone())
            .or_default()
            .insert(named.clone());
        self.by_service
            .entry(service)
            .or_default()
            .insert(named.clone());
    }

    fn unindex(&mut self, named: &Named) {
        let Some(spec) = self.workloads.get(named) else {
            return;
        };
        let service = (named.0.clone(), spec.service.clone());
        remove_from(&mut self.by_node, spec.node.as_str(), named);
        remove_from(&mut self.by_service, &service, named);
    }

    /// The services that have a workload on `node`.
    pub fn services_on(&self, node: &str) -> BTreeSet<Named> {
        self.workloads_on(node)
            .map(|((ns, _), w)| (ns.clone(), w.service.clone()))
            .collect()
    }

    /// The nodes that host a workload of `service`.
    pub fn nodes_hosting(&self, service: &Named) -> BTreeSet<String> {
        self.workloads_of(service)
            .map(|(_, w)| w.node.clone())
            .collect()
    }

    /// The SPIFFE ID of a service's workloads.
    pub fn service_identity(&self, service: &Named) -> Option<String> {
        let spec = self.services.get(service)?;
        let account = spec.service_account_or(&service.1);
        Some(palisade_model::service_spiffe_id(
            &self.trust_domain,
            &service.0,
            account,
        ))
    }

    /// The policies that apply to `service`: those naming it, and those of its
    /// namespace that name no service.
    pub fn policies_for<'a>(
        &'a self,
        service: &'a Named,
    ) -> impl Iterator<Item = (&'a Named, &'a AuthorizationPolicySpec)> {
        self.policies.iter().filter(move |((ns, _), policy)| {
            *ns == service.0
                && match policy.target_service.as_deref() {
                    None | Some("") => true,
                    Some(target) => target == service.1,
                }
        })
    }

    /// The services a caller with `identity` in `namespace` could be allowed
    /// to call: some ALLOW or AUDIT policy has a rule whose sources could
    /// match it. Conditions known only per request (addresses, tokens,
    /// headers) count as possible matches; the callee decides for real.
    pub fn callable_by(&self, identity: &str, namespace: &str) -> BTreeSet<Named> {
        self.services
            .keys()
            .filter(|service| {
                self.policies_for(service).any(|(_, policy)| {
                    policy.action != PolicyAction::Deny
                        && policy.rules.iter().any(|rule| {
                            rule.from.is_empty()
                                || rule
                                    .from
                                    .iter()
                                    .any(|s| could_match(s, identity, namespace))
                        })
                })
            })
            .cloned()
            .collect()
    }
}

/// Whether a source could match a caller, judging by identity and namespace
/// only.
fn could_match(source: &Source, identity: &str, namespace: &str) -> bool {
    let listed =
        |patterns: &[String], value: &str| patterns.iter().any(|p| pattern_matches(p, value));
    (source.identities.is_empty() || listed(&source.identities, identity))
        && !listed(&source.not_identities, identity)
        && (source.namespaces.is_empty() || listed(&source.namespaces, namespace))
        && !listed(&source.not_namespaces, namespace)
}

/// `*`, a prefix ending in `*`, or an exact value.
pub fn pattern_matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

/// Removes `named` from the set at `key`, and the set once it is empty.
fn remove_from<K, Q>(index: &mut BTreeMap<K, BTreeSet<Named>>, key: &Q, named: &Named)
where
    K: Ord + std::borrow::Borrow<Q>,
    Q: Ord + ?Sized,
{
    if let Some(names) = index.get_mut(key) {
        names.remove(named);
        if names.is_empty() {
            index.remove(key);
        }
    }
}

fn put<K: Ord, T>(
    map: &mut BTreeMap<K, T>,
    key: K,
    spec: Option<Spec>,
    pick: impl Fn(Spec) -> Option<T>,
) {
    match spec.and_then(pick) {
        Some(value) => {
            map.insert(key, value);
        }
        None => {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests;

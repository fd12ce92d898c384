//! The compiler: turns the world into one view per connected client, and
//! after each change rebuilds only the views the change can touch.
//!
//! Resources that several clients share (a service's authorization rules,
//! its endpoints, its clusters) are built once per change and cached; every
//! view that holds one points at the same encoding. A view is published on a
//! watch channel only when its content changed, so a client whose view did
//! not change gets no work at all, and a slow client only ever sees the
//! latest view.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::watch;

use super::agent;
use super::view::{ClientKey, Flavor, Resources, Served, View};
use super::world::{Named, Touched, World};
use crate::store::Revision;

mod proxy;

/// A cached resource and the service it was built from, if any.
struct Cached {
    served: Arc<Served>,
    service: Option<Named>,
}

/// Where a cached resource is valid: for every client, or one flavor of
/// proxy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    type_url: &'static str,
    name: String,
    flavor: Option<Flavor>,
}

/// One client's published view and what it depends on.
struct Client {
    view: watch::Sender<Arc<View>>,
    /// The services whose changes can change this view.
    depends: BTreeSet<Named>,
    /// The node the client runs on, when known.
    node: Option<String>,
    streams: usize,
}

/// The world, the resource cache, and every connected client's view.
pub struct Compiler {
    world: World,
    cache: HashMap<CacheKey, Cached>,
    clients: HashMap<ClientKey, Client>,
    /// The services each (identity, namespace) may call, as of the world's
    /// last change.
    callable: HashMap<(String, String), BTreeSet<Named>>,
}

/// What compiling one view found.
struct Compiled {
    view: View,
    depends: BTreeSet<Named>,
    node: Option<String>,
}

impl Compiler {
    pub fn new(world: World) -> Self {
        Self {
            world,
            cache: HashMap::new(),
            clients: HashMap::new(),
            callable: HashMap::new(),
        }
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    /// Changes the world through `change` and republishes what it touched.
    /// Returns how many views changed.
    pub fn update(&mut self, change: impl FnOnce(&mut World) -> Touched) -> usize {
        let touched = change(&mut self.world);
        if touched.is_empty() {
            return 0;
        }
        self.invalidate(&touched);
        self.callable.clear();

        let affected: Vec<ClientKey> = self
            .clients
            .iter()
            .filter(|(_, client)| affects(&touched, client))
            .map(|(key, _)| key.clone())
            .collect();
        let mut changed = 0;
        for key in affected {
            if self.recompile(&key) {
                changed += 1;
            }
        }
        changed
    }

    /// Moves the world's revision forward without changing any view.
    pub fn set_revision(&mut self, revision: Revision) {
        self.world.revision = revision;
    }

    /// Opens a view for one more stream of `key`, compiling it if it is the
    /// first.
    pub fn subscribe(&mut self, key: &ClientKey) -> watch::Receiver<Arc<View>> {
        if let Some(client) = self.clients.get_mut(key) {
            client.streams += 1;
            return client.view.subscribe();
        }

        let compiled = self.compile(key);
        let (view, receiver) = watch::channel(Arc::new(compiled.view));
        self.clients.insert(
            key.clone(),
            Client {
                view,
                depends: compiled.depends,
                node: compiled.node,
                streams: 1,
            },
        );
        receiver
    }

    /// Closes one stream's view; the last stream's close forgets the view.
    pub fn release(&mut self, key: &ClientKey) {
        if let Some(client) = self.clients.get_mut(key) {
            client.streams = client.streams.saturating_sub(1);
            if client.streams == 0 {
                self.clients.remove(key);
            }
        }
    }

    /// The current view of a connected client.
    pub fn view(&self, key: &ClientKey) -> Option<Arc<View>> {
        self.clients.get(key).map(|c| c.view.borrow().clone())
    }

    /// How many clients have views.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    fn recompile(&mut self, key: &ClientKey) -> bool {
        let compiled = self.compile(key);
        let Some(client) = self.clients.get_mut(key) else {
            return false;
        };
        client.depends = compiled.depends;
        client.node = compiled.node;

        let unchanged = client.view.borrow().same_content(&compiled.view);
        if unchanged {
            return false;
        }
        client.view.send_replace(Arc::new(compiled.view));
        true
    }

    fn compile(&mut self, key: &ClientKey) -> Compiled {
        match key {
            ClientKey::Agent(node) => self.agent_view(node),
            ClientKey::Proxy { workload, flavor } => self.proxy_view(workload, *flavor),
        }
    }

    fn invalidate(&mut self, touched: &Touched) {
        if touched.everything {
            self.cache.clear();
            return;
        }
        self.cache.retain(|_, cached| match &cached.service {
            Some(service) => !touched.services.contains(service),
            None => true,
        });
    }

    /// The services a caller may be allowed to call, computed once per pass.
    fn callable_by(&mut self, identity: &str, namespace: &str) -> BTreeSet<Named> {
        let key = (identity.to_owned(), namespace.to_owned());
        if let Some(found) = self.callable.get(&key) {
            return found.clone();
        }
        let found = self.world.callable_by(identity, namespace);
        self.callable.insert(key, found.clone());
        found
    }

    fn cached(
        &mut self,
        key: CacheKey,
        service: Option<&Named>,
        build: impl FnOnce(&World) -> Option<Arc<Served>>,
    ) -> Option<Arc<Served>> {
        if let Some(cached) = self.cache.get(&key) {
            return Some(cached.served.clone());
        }
        let served = build(&self.world)?;
        let cached = Cached {
            served: served.clone(),
            service: service.cloned(),
        };
        self.cache.insert(key, cached);
        Some(served)
    }

    fn agent_view(&mut self, node: &str) -> Compiled {
        let mut view = View {
            revision: self.world.revision,
            ..View::default()
        };
        let workloads: Vec<(Named, String)> = self
            .world
            .workloads_on(node)
            .map(|(named, spec)| (named.clone(), spec.service.clone()))
            .collect();

        // The node's workloads and the services they belong to.
        let mut local = BTreeSet::new();
        let mut upstreams = BTreeSet::new();
        for (named, service) in &workloads {
            let service: Named = (named.0.clone(), service.clone());
            let key = cache_key(
                agent::WORKLOAD_TYPE_URL,
                &format!("{}/{}", named.0, named.1),
                None,
            );
            let built = self.cached(key, Some(&service), |world| {
                agent::workload(world, named).map(agent_served)
            });
            insert(&mut view, agent::WORKLOAD_TYPE_URL, built);
            if let Some(identity) = self.world.service_identity(&service) {
                upstreams.extend(self.callable_by(&identity, &named.0));
            }
            local.insert(service);
        }

        // What applies to the local services, and whom they may call.
        for service in &local {
            let name = format!("{}/{}", service.0, service.1);
            let built = self.cached(
                cache_key(agent::AUTHORIZATION_TYPE_URL, &name, None),
                Some(service),
                |world| Some(agent_served(agent::authorization(world, service))),
            );
            insert(&mut view, agent::AUTHORIZATION_TYPE_URL, built);
            let built = self.cached(
                cache_key(agent::JWT_RULES_TYPE_URL, &name, None),
                Some(service),
                |world| agent::jwt_rules(world, service).map(agent_served),
            );
            insert(&mut view, agent::JWT_RULES_TYPE_URL, built);
        }
        for service in &upstreams {
            let name = format!("{}/{}", service.0, service.1);
            let built = self.cached(
                cache_key(agent::ENDPOINTS_TYPE_URL, &name, None),
                Some(service),
                |world| Some(agent_served(agent::endpoints(world, service))),
            );
            insert(&mut view, agent::ENDPOINTS_TYPE_URL, built);
        }

        // What every node shares.
        let built = self.cached(
            cache_key(agent::TRUST_BUNDLE_TYPE_URL, agent::TRUST_BUNDLE_NAME, None),
            None,
            |world| Some(agent_served(agent::trust_bundle(world))),
        );
        insert(&mut view, agent::TRUST_BUNDLE_TYPE_URL, built);
        let built = self.cached(
            cache_key(agent::DENY_LIST_TYPE_URL, agent::DENY_LIST_NAME, None),
            None,
            |world| Some(agent_served(agent::deny_list(world))),
        );
        insert(&mut view, agent::DENY_LIST_TYPE_URL, built);

        for type_url in agent::TYPES {
            view.types.entry(type_url.to_owned()).or_default();
        }
        if self.world.revocations.contains_key(node) {
            view.closed = Some(format!("node {node} was revoked"));
        }
        Compiled {
            view,
            depends: local.into_iter().chain(upstreams).collect(),
            node: Some(node.to_owned()),
        }
    }
}

/// Whether a change can touch a client's view.
fn affects(touched: &Touched, client: &Client) -> bool {
    touched.everything
        || client
            .node
            .as_ref()
            .is_some_and(|n| touched.nodes.contains(n))
        || client.depends.iter().any(|s| touched.services.contains(s))
}

fn cache_key(type_url: &'static str, name: &str, flavor: Option<Flavor>) -> CacheKey {
    CacheKey {
        type_url,
        name: name.to_owned(),
        flavor,
    }
}

fn insert(view: &mut View, type_url: &str, served: Option<Arc<Served>>) {
    let Some(served) = served else { return };
    let resources: &mut Resources = view.types.entry(type_url.to_owned()).or_default();
    resources.insert(served.name.clone(), served);
}

fn agent_served(resource: agent::AgentResource) -> Arc<Served> {
    Served::with_hash(resource.built, &resource.content_hash)
}

#[cfg(test)]
mod tests;

//! Proxy views: what an Envoy or a proxyless gRPC client acting for one
//! workload receives. Resources that depend only on an upstream service
//! and the flavor are cached and shared; the workload's own listeners are
//! built for it alone.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Compiled, Compiler, cache_key, insert};
use crate::xds::envoy::{self, Flavor};
use crate::xds::view::{Served, View};
use crate::xds::world::Named;

impl Compiler {
    pub(super) fn proxy_view(&mut self, workload: &Named, flavor: Flavor) -> Compiled {
        let mut view = View {
            revision: self.world.revision,
            ..View::default()
        };
        for type_url in envoy::TYPES {
            view.types.entry(type_url.to_owned()).or_default();
        }
        let spec = self.world.workloads.get(workload).cloned();
        let Some(keys) = envoy::proxy_keys(&self.world, workload, flavor) else {
            return Compiled {
                view,
                depends: BTreeSet::new(),
                node: spec.map(|s| s.node),
            };
        };

        // What the proxy depends on: its own service and whom it may call.
        let mut depends = BTreeSet::new();
        if let Some(spec) = &spec {
            let service = (workload.0.clone(), spec.service.clone());
            if let Some(identity) = self.world.service_identity(&service) {
                depends.extend(self.callable_by(&identity, &workload.0));
            }
            depends.insert(service);
        }

        let lists = [
            (envoy::LISTENER_TYPE, &keys.listeners),
            (envoy::ROUTE_TYPE, &keys.routes),
            (envoy::CLUSTER_TYPE, &keys.clusters),
            (envoy::ENDPOINT_TYPE, &keys.endpoints),
        ];
        for (type_url, names) in lists {
            for name in names {
                let built = self.proxy_resource(workload, flavor, type_url, name);
                insert(&mut view, type_url, built);
            }
        }
        if let Some(spec) = &spec
            && self.world.revocations.contains_key(&spec.node)
        {
            view.closed = Some(format!("node {} was revoked", spec.node));
        }
        Compiled {
            view,
            depends,
            node: spec.map(|s| s.node),
        }
    }

    fn proxy_resource(
        &mut self,
        workload: &Named,
        flavor: Flavor,
        type_url: &'static str,
        name: &str,
    ) -> Option<Arc<Served>> {
        let Some(service) = shared_service(name) else {
            let built = envoy::build(&self.world, workload, flavor, type_url, name)?;
            return Some(Served::from_built(built));
        };

        let key = cache_key(type_url, name, Some(flavor));
        self.cached(key, Some(&service), |world| {
            envoy::build(world, workload, flavor, type_url, name).map(Served::from_built)
        })
    }
}

/// The upstream service a shared resource is built from, by its name:
/// `<svc>.<ns>`, `<svc>.<ns>:<port>` or `outbound|<port>|<svc>.<ns>`.
/// `None` for the resources of one workload (its server and inbound
/// listeners and local cluster), which are never shared.
fn shared_service(name: &str) -> Option<Named> {
    if name.starts_with("grpc/server?") || name.starts_with("inbound|") {
        return None;
    }
    let host = match name.strip_prefix("outbound|") {
        Some(rest) => rest.rsplit('|').next()?,
        None => name.split(':').next()?,
    };
    let (service, namespace) = host.rsplit_once('.')?;
    Some((namespace.to_owned(), service.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(ns: &str, name: &str) -> Option<Named> {
        Some((ns.into(), name.into()))
    }

    #[test]
    fn shared_resources_name_their_service() {
        assert_eq!(shared_service("orders.shop"), named("shop", "orders"));
        assert_eq!(shared_service("orders.shop:9090"), named("shop", "orders"));
        assert_eq!(
            shared_service("outbound|9090|orders.shop"),
            named("shop", "orders")
        );
    }

    #[test]
    fn workload_resources_are_not_shared() {
        let server = "grpc/server?xds.resource.listening_address=0.0.0.0:15008";
        assert_eq!(shared_service(server), None);
        assert_eq!(shared_service("inbound|15008|shop/orders-1"), None);
        assert_eq!(shared_service("inbound|9090|shop/orders-1"), None);
    }
}

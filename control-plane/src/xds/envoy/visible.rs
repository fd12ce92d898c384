//! What one proxy may see: the Services its workload may call, and its own
//! inbound side, as a list of resources to build.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use palisade_model::{Protocol, ServicePort, ServiceSpec, WorkloadSpec};

use super::{CLUSTER_TYPE, ENDPOINT_TYPE, Flavor, LISTENER_TYPE, ROUTE_TYPE, endpoint, names};
use crate::xds::world::{Named, World};

/// The proxy of one workload, with what it is built from.
pub(super) struct Proxy<'a> {
    pub world: &'a World,
    pub workload: &'a Named,
    pub spec: &'a WorkloadSpec,
    pub service: Named,
    pub service_spec: &'a ServiceSpec,
    pub flavor: Flavor,
}

/// One resource a proxy may see, by what it is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Resource {
    /// A gRPC API listener; `bare` is the name without a port, which routes
    /// to the Service's first port.
    ClientListener {
        service: Named,
        port: u16,
        bare: bool,
    },
    /// Envoy's listener on 127.0.0.1:<port> for one upstream port.
    OutboundListener {
        service: Named,
        port: ServicePort,
    },
    Route {
        service: Named,
        port: ServicePort,
    },
    Cluster {
        service: Named,
        port: ServicePort,
    },
    Endpoints {
        service: Named,
        port: ServicePort,
    },
    /// A gRPC server's listener for one listening address.
    ServerListener {
        address: SocketAddr,
    },
    /// Envoy's mTLS listener on the workload's inbound port.
    InboundListener,
    /// Envoy's cluster for the application on 127.0.0.1:<app port>.
    LocalCluster,
}

impl Resource {
    pub fn type_url(&self) -> &'static str {
        match self {
            Resource::ClientListener { .. }
            | Resource::OutboundListener { .. }
            | Resource::ServerListener { .. }
            | Resource::InboundListener => LISTENER_TYPE,
            Resource::Route { .. } => ROUTE_TYPE,
            Resource::Cluster { .. } | Resource::LocalCluster => CLUSTER_TYPE,
            Resource::Endpoints { .. } => ENDPOINT_TYPE,
        }
    }
}

impl<'a> Proxy<'a> {
    /// The proxy of `workload`, if the workload and its Service exist.
    pub fn new(world: &'a World, workload: &'a Named, flavor: Flavor) -> Option<Self> {
        let spec = world.workloads.get(workload)?;
        let service = (workload.0.clone(), spec.service.clone());
        let service_spec = world.services.get(&service)?;
        Some(Proxy {
            world,
            workload,
            spec,
            service,
            service_spec,
            flavor,
        })
    }

    /// The name of `resource` as this proxy sees it.
    pub fn name(&self, resource: &Resource) -> String {
        match resource {
            Resource::ClientListener {
                service,
                port,
                bare,
            } => names::client_listener(service, (!bare).then_some(*port)),
            Resource::OutboundListener { service, port }
            | Resource::Cluster { service, port }
            | Resource::Endpoints { service, port } => names::outbound(service, port.port),
            Resource::Route { service, port } => names::route(service, port.port),
            Resource::ServerListener { address } => names::server_listener(*address),
            Resource::InboundListener => names::inbound(self.workload, self.spec.inbound_port),
            Resource::LocalCluster => names::inbound(self.workload, self.spec.app_port),
        }
    }

    /// Everything the proxy may see.
    pub fn resources(&self) -> Vec<Resource> {
        match self.flavor {
            Flavor::Grpc => self.grpc_resources(),
            Flavor::Envoy => self.envoy_resources(),
        }
    }

    /// The workload's address, else its node's, when it is an IP address.
    pub fn address(&self) -> Option<IpAddr> {
        endpoint::workload_address(self.world, self.spec)
    }

    /// What the workload's inbound side speaks: the protocol of the Service
    /// port numbered like the app port, else of the first port.
    pub fn inbound_protocol(&self) -> Protocol {
        let ports = &self.service_spec.ports;
        let same = ports.iter().find(|p| p.port == self.spec.app_port);
        same.or(ports.first())
            .map_or(Protocol::Tcp, |port| port.protocol)
    }

    fn grpc_resources(&self) -> Vec<Resource> {
        let mut resources = Vec::new();
        for (service, spec) in self.upstreams() {
            resources.push(Resource::ClientListener {
                service: service.clone(),
                port: spec.ports[0].port,
                bare: true,
            });
            for port in &spec.ports {
                resources.push(Resource::ClientListener {
                    service: service.clone(),
                    port: port.port,
                    bare: false,
                });
                resources.extend(upstream_port(&service, port));
            }
        }

        for address in self.listening_addresses() {
            resources.push(Resource::ServerListener { address });
        }
        resources
    }

    /// Envoy binds one loopback listener per upstream port, so two upstreams
    /// on one port collide: the first Service in (namespace, name) order
    /// keeps the port. Ports the workload itself uses are never bound.
    fn envoy_resources(&self) -> Vec<Resource> {
        let mut taken = BTreeSet::from([self.spec.app_port, self.spec.inbound_port]);
        let mut resources = Vec::new();
        for (service, spec) in self.upstreams() {
            for port in spec.ports.iter().filter(|port| taken.insert(port.port)) {
                resources.push(Resource::OutboundListener {
                    service: service.clone(),
                    port: port.clone(),
                });
                resources.extend(upstream_port(&service, port).into_iter().filter(|r| {
                    !matches!(r, Resource::Route { port, .. } if port.protocol == Protocol::Tcp)
                }));
            }
        }

        resources.push(Resource::InboundListener);
        resources.push(Resource::LocalCluster);
        resources
    }

    /// The Services the workload may call that have ports, in name order.
    fn upstreams(&self) -> Vec<(Named, &'a ServiceSpec)> {
        let identity = self
            .world
            .service_identity(&self.service)
            .unwrap_or_default();
        let callable = self.world.callable_by(&identity, &self.workload.0);
        callable
            .into_iter()
            .filter_map(|service| {
                let spec = self.world.services.get(&service)?;
                (!spec.ports.is_empty()).then_some((service, spec))
            })
            .collect()
    }

    /// Where a gRPC server of the workload may listen: any IPv4 or IPv6
    /// address, or the workload's own, on the inbound port.
    fn listening_addresses(&self) -> Vec<SocketAddr> {
        let port = self.spec.inbound_port;
        let mut hosts = vec![
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ];
        if let Some(own) = self.address().filter(|ip| !hosts.contains(ip)) {
            hosts.push(own);
        }
        hosts
            .into_iter()
            .map(|host| SocketAddr::new(host, port))
            .collect()
    }
}

/// The route, cluster and endpoints of one upstream port.
fn upstream_port(service: &Named, port: &ServicePort) -> [Resource; 3] {
    let (service, port) = (service.clone(), port.clone());
    [
        Resource::Route {
            service: service.clone(),
            port: port.clone(),
        },
        Resource::Cluster {
            service: service.clone(),
            port: port.clone(),
        },
        Resource::Endpoints { service, port },
    ]
}

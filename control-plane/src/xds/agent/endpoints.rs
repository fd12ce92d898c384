//! The Endpoints resource: where a service's workloads are and the identity
//! they must prove.

use palisade_model::WorkloadSpec;
use palisade_proto::xds as pb;

use super::workload::{address, service_ports};
use super::{AgentResource, package, resource_name};
use crate::xds::world::{Named, World};

/// Builds the Endpoints of `service`: its SPIFFE ID, its ports, and one
/// endpoint per workload that can be reached, in workload name order.
///
/// A workload's address is its own, else its node's. Workloads with neither,
/// and workloads whose node is unknown (no agent can serve them), are left
/// out. An unknown service gets no identity, no ports and no endpoints.
pub fn endpoints(world: &World, service: &Named) -> AgentResource {
    let mut message = pb::Endpoints {
        namespace: service.0.clone(),
        service: service.1.clone(),
        ..Default::default()
    };

    if let (Some(spec), Some(spiffe_id)) =
        (world.services.get(service), world.service_identity(service))
    {
        message.spiffe_id = spiffe_id;
        message.ports = service_ports(spec);
        message.endpoints = world
            .workloads_of(service)
            .filter_map(|((_, name), workload)| endpoint(world, name, workload))
            .collect();
    }

    package(resource_name(service), message, world.revision)
}

fn endpoint(world: &World, name: &str, workload: &WorkloadSpec) -> Option<pb::Endpoint> {
    if !world.nodes.contains_key(&workload.node) {
        return None;
    }

    Some(pb::Endpoint {
        address: address(world, workload)?,
        inbound_port: workload.inbound_port.into(),
        node: workload.node.clone(),
        workload: name.to_owned(),
    })
}

//! The Workload resource: one workload as its node's agent runs it.

use palisade_model::{Protocol, Selectors, ServiceSpec, WorkloadSpec};
use palisade_proto::xds as pb;

use super::{AgentResource, package, resource_name};
use crate::xds::world::{Named, World};

/// Builds the Workload resource of `workload`; `None` when the workload or
/// its Service is unknown, since then it has no identity to serve.
///
/// Its address is the workload's own, else its node's, else empty.
pub fn workload(world: &World, workload: &Named) -> Option<AgentResource> {
    let spec = world.workloads.get(workload)?;
    let service = (workload.0.clone(), spec.service.clone());
    let service_spec = world.services.get(&service)?;
    let spiffe_id = world.service_identity(&service)?;

    let message = pb::Workload {
        revision: 0,
        namespace: workload.0.clone(),
        name: workload.1.clone(),
        service: spec.service.clone(),
        spiffe_id,
        inbound_port: spec.inbound_port.into(),
        app_port: spec.app_port.into(),
        address: address(world, spec).unwrap_or_default(),
        ports: service_ports(service_spec),
        selectors: Some(selectors(&spec.selectors)),
    };
    Some(package(resource_name(workload), message, world.revision))
}

/// Where a workload can be reached: its own address, else its node's;
/// `None` when neither is known.
pub(super) fn address(world: &World, workload: &WorkloadSpec) -> Option<String> {
    let own = workload.address.as_deref().filter(|a| !a.is_empty());
    let node = || world.nodes.get(&workload.node)?.address.as_deref();
    own.or_else(node)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
}

/// A Service's ports, in the order it lists them.
pub(super) fn service_ports(service: &ServiceSpec) -> Vec<pb::ServicePort> {
    service
        .ports
        .iter()
        .map(|port| pb::ServicePort {
            name: port.name.clone().unwrap_or_default(),
            port: port.port.into(),
            protocol: protocol(port.protocol).into(),
        })
        .collect()
}

fn protocol(protocol: Protocol) -> pb::Protocol {
    match protocol {
        Protocol::Tcp => pb::Protocol::Tcp,
        Protocol::Http => pb::Protocol::Http,
        Protocol::Grpc => pb::Protocol::Grpc,
    }
}

fn selectors(selectors: &Selectors) -> pb::Selectors {
    pb::Selectors {
        unix_uid: selectors.unix_uid,
        unix_gid: selectors.unix_gid,
        process_path: selectors.process_path.clone().unwrap_or_default(),
    }
}

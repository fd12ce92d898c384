//! Resources and responses for unit tests.

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, Resource};
use envoy_types::pb::google::protobuf::Any;
use palisade_proto::prost::Message;
use palisade_proto::xds as pb;

use crate::identity::testing::ca_pem;
use crate::state::types;

/// A valid workload `shop/<name>` of the service orders.
pub fn workload(name: &str) -> pb::Workload {
    pb::Workload {
        revision: 3,
        namespace: "shop".into(),
        name: name.into(),
        service: "orders".into(),
        spiffe_id: "spiffe://example.org/ns/shop/sa/orders".into(),
        inbound_port: 15008,
        app_port: 9090,
        ports: vec![pb::ServicePort {
            name: "grpc".into(),
            port: 9090,
            protocol: pb::Protocol::Grpc as i32,
        }],
        ..Default::default()
    }
}

/// A valid trust bundle with one CA.
pub fn bundle() -> pb::TrustBundle {
    pb::TrustBundle {
        revision: 5,
        trust_domain: "example.org".into(),
        x509_pem: ca_pem(),
        jwks_json: r#"{"keys":[]}"#.into(),
    }
}

/// A response of `type_url` carrying `resources` by name and removing
/// `removed`.
pub fn response<M: Message>(
    type_url: &str,
    nonce: &str,
    resources: &[(&str, &M)],
    removed: &[&str],
) -> DeltaDiscoveryResponse {
    let resources = resources
        .iter()
        .map(|(name, message)| Resource {
            name: (*name).into(),
            version: format!("v-{name}-{}", message.encoded_len()),
            resource: Some(Any {
                type_url: type_url.into(),
                value: message.encode_to_vec(),
            }),
            ..Default::default()
        })
        .collect();
    DeltaDiscoveryResponse {
        type_url: type_url.into(),
        nonce: nonce.into(),
        resources,
        removed_resources: removed.iter().map(|n| (*n).into()).collect(),
        ..Default::default()
    }
}

/// A response of workloads.
pub fn workloads(nonce: &str, workloads: &[&pb::Workload]) -> DeltaDiscoveryResponse {
    let named: Vec<(String, &pb::Workload)> = workloads
        .iter()
        .map(|w| (format!("{}/{}", w.namespace, w.name), *w))
        .collect();
    let borrowed: Vec<(&str, &pb::Workload)> =
        named.iter().map(|(n, w)| (n.as_str(), *w)).collect();
    response(types::WORKLOAD, nonce, &borrowed, &[])
}

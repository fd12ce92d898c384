//! A control plane holding a small shop, for xDS tests: orders-1 on web-1,
//! storefront-1 on web-2, and a policy that lets only the storefront call
//! orders. Both nodes are attested.

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use palisade_proto::xds as agent_pb;
use prost::Message;
use tonic::transport::Channel;

use super::{Delta, Sotw, delta_request, sotw_request, types};
use crate::identity::{TestNode, join_token, mtls_channel};
use crate::{Admin, ControlPlane, apply, pb};

/// The trust domain of the shop's control plane.
pub const TRUST_DOMAIN: &str = "xds.test";

pub const SHOP: &str = r#"
kind: Node
metadata: {name: web-1}
spec: {address: 127.0.0.11}
---
kind: Node
metadata: {name: web-2}
spec: {address: 127.0.0.12}
---
kind: Service
metadata: {name: orders, namespace: shop}
spec: {ports: [{port: 9090, protocol: grpc}]}
---
kind: Service
metadata: {name: storefront, namespace: shop}
spec: {ports: [{port: 8080, protocol: http}]}
---
kind: Workload
metadata: {name: orders-1, namespace: shop}
spec: {service: orders, node: web-1, appPort: 9090, inboundPort: 15008}
---
kind: Workload
metadata: {name: storefront-1, namespace: shop}
spec: {service: storefront, node: web-2, appPort: 8080, inboundPort: 15008}
---
kind: AuthorizationPolicy
metadata: {name: orders-from-storefront, namespace: shop}
spec:
  targetService: orders
  rules:
    - from: [{identities: ["spiffe://xds.test/ns/shop/sa/storefront"]}]
"#;

/// A second orders workload on web-1: a change to web-1's workloads only.
pub const MOVED: &str = "kind: Workload\nmetadata: {name: orders-2, namespace: shop}\n\
                         spec: {service: orders, node: web-1, appPort: 9091, inboundPort: 15009}\n";

/// The running shop.
pub struct Shop {
    pub cp: ControlPlane,
    pub admin: Admin,
    /// Channels authenticated by each node's certificate.
    pub web1: Channel,
    pub web2: Channel,
    nodes: Vec<TestNode>,
}

/// Starts a control plane holding [`SHOP`] and attests both nodes.
pub async fn start() -> Shop {
    let mut cp = ControlPlane::init(TRUST_DOMAIN).unwrap();
    cp.start().await.unwrap();
    let mut admin = cp.admin().await.unwrap();
    apply(&mut admin, SHOP).await.unwrap();

    let mut nodes = Vec::new();
    for node in ["web-1", "web-2"] {
        let token = join_token(&mut admin, node, 0).await.unwrap();
        nodes.push(TestNode::attest(&cp, node, &token).await.unwrap());
    }
    let web1 = nodes[0].channel(&cp).await.unwrap();
    let web2 = nodes[1].channel(&cp).await.unwrap();
    Shop {
        cp,
        admin,
        web1,
        web2,
        nodes,
    }
}

impl Shop {
    /// The channel authenticated by the certificate of `node`, web-1 or web-2.
    pub fn channel(&self, node: &str) -> Channel {
        match node {
            "web-1" => self.web1.clone(),
            "web-2" => self.web2.clone(),
            other => panic!("the shop has no node {other}"),
        }
    }

    /// Opens a SotW stream of `node` whose first request names `names` of
    /// `type_url`.
    pub async fn sotw(&self, node: &str, type_url: &str, names: &[&str]) -> Sotw {
        let first = sotw_request(Some(node), type_url, names);
        Sotw::open(self.channel(node), first)
            .await
            .expect("the stream opens")
    }

    /// Opens a delta stream of `node` whose first request subscribes to
    /// `subscribe` of `type_url`.
    pub async fn delta(&self, node: &str, type_url: &str, subscribe: &[&str]) -> Delta {
        let first = delta_request(Some(node), type_url, subscribe, &[]);
        Delta::open(self.channel(node), first)
            .await
            .expect("the stream opens")
    }

    /// The fleet status of `node`'s streams, with the resources they hold.
    pub async fn fleet(&mut self, node: &str) -> pb::FleetStatusResponse {
        let request = pb::FleetStatusRequest {
            node: node.into(),
            resources: true,
        };
        self.admin.fleet_status(request).await.unwrap().into_inner()
    }

    /// What the fleet status says of the workloads on `node`'s first stream.
    pub async fn workload_status(&mut self, node: &str) -> pb::XdsTypeStatus {
        let stream = self.fleet(node).await.streams.remove(0);
        stream
            .types
            .into_iter()
            .find(|t| t.type_url == types::WORKLOAD)
            .expect("the stream subscribed to workloads")
    }

    /// A channel authenticated by the SVID of `shop/<workload>`, a workload
    /// of `service`, as its proxy would hold it.
    pub async fn proxy_channel(&self, workload: &str, service: &str) -> Channel {
        let host = match workload {
            "orders-1" | "orders-2" => &self.nodes[0],
            _ => &self.nodes[1],
        };
        let spiffe_id = format!("spiffe://{TRUST_DOMAIN}/ns/shop/sa/{service}");
        let (key, issued) = host
            .sign(&self.cp, "shop", workload, &spiffe_id)
            .await
            .unwrap();
        let bundle = issued.bundle.unwrap().x509_authorities_pem;
        mtls_channel(
            &self.cp,
            &issued.certificate_chain_pem,
            &key.serialize_pem(),
            &bundle,
        )
        .await
        .unwrap()
    }
}

/// The names of the agent resources in a SotW response.
pub fn sotw_names(response: &DiscoveryResponse) -> Vec<String> {
    response
        .resources
        .iter()
        .map(|any| match any.type_url.as_str() {
            types::WORKLOAD => {
                let w = agent_pb::Workload::decode(any.value.as_slice()).unwrap();
                format!("{}/{}", w.namespace, w.name)
            }
            types::ENDPOINTS => {
                let e = agent_pb::Endpoints::decode(any.value.as_slice()).unwrap();
                format!("{}/{}", e.namespace, e.service)
            }
            types::AUTHORIZATION => {
                let a = agent_pb::Authorization::decode(any.value.as_slice()).unwrap();
                format!("{}/{}", a.namespace, a.service)
            }
            other => other.to_owned(),
        })
        .collect()
}

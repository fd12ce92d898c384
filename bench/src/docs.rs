//! The documents the benchmarks write: small, valid, and each with its own
//! name, so that every apply creates a resource.

use std::fmt::Write as _;

/// The most documents one seeding apply carries.
pub const CHUNK: usize = 10_000;

/// A Node, as one apply's content.
pub fn node(name: &str) -> String {
    format!(
        "apiVersion: palisade.dev/v1\nkind: Node\nmetadata:\n  name: {name}\n  \
         labels: {{bench: store}}\nspec:\n  address: 10.1.2.3\n"
    )
}

/// The name of the `index`th service of a file.
pub fn service_name(index: usize) -> String {
    format!("svc-{index:06}")
}

/// One file of `count` Services in `namespace`, as one apply's content.
pub fn services(namespace: &str, count: usize) -> String {
    let mut text = String::with_capacity(count * 200);
    for index in 0..count {
        let name = service_name(index);
        let _ = write!(
            text,
            "---\napiVersion: palisade.dev/v1\nkind: Service\nmetadata:\n  name: {name}\n  \
             namespace: {namespace}\n  labels: {{app: {name}}}\nspec:\n  ports:\n    \
             - {{name: http, port: 8080, protocol: http}}\n"
        );
    }
    text
}

/// One file of `count` documents in `namespace` shaped like a fleet: a
/// Node for every 20 documents, a Service for every 10, and Workloads for
/// the rest, each on one of the file's Nodes and part of one of its
/// Services.
pub fn fleet(namespace: &str, count: usize) -> String {
    let node_count = (count / 20).max(1);
    let service_count = (count / 10).max(1);
    let workload_count = count.saturating_sub(node_count + service_count);

    let mut text = String::with_capacity(count * 250);
    for index in 0..node_count {
        let _ = write!(
            text,
            "---\napiVersion: palisade.dev/v1\nkind: Node\nmetadata:\n  \
             name: {namespace}-node-{index}\nspec:\n  address: 10.2.{}.{}\n",
            index / 250,
            index % 250 + 1
        );
    }
    text.push_str(&services(namespace, service_count));
    for index in 0..workload_count {
        let _ = write!(
            text,
            "---\napiVersion: palisade.dev/v1\nkind: Workload\nmetadata:\n  name: wl-{index:06}\n  \
             namespace: {namespace}\nspec:\n  service: {}\n  node: {namespace}-node-{}\n  \
             appPort: 8080\n  inboundPort: 15008\n  selectors: {{unixUid: {}}}\n",
            service_name(index % service_count),
            index % node_count,
            10_000 + index
        );
    }
    text
}

/// The name of the `index`th node of a fleet whose nodes are named after
/// `prefix`.
pub fn node_name(prefix: &str, index: usize) -> String {
    format!("{prefix}-{index:05}")
}

/// Nodes `prefix-<index>` for every index in `indices`, each with an
/// address of its own in 10.0.0.0/8.
pub fn nodes(prefix: &str, indices: std::ops::Range<usize>) -> String {
    let mut text = String::with_capacity(indices.len() * 120);
    for index in indices {
        let host = index + 1;
        let _ = write!(
            text,
            "---\nkind: Node\nmetadata: {{name: {}}}\nspec: {{address: 10.{}.{}.{}}}\n",
            node_name(prefix, index),
            host >> 16 & 0xff,
            host >> 8 & 0xff,
            host & 0xff
        );
    }
    text
}

/// A Service with one HTTP port.
pub fn service(namespace: &str, name: &str) -> String {
    format!(
        "---\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec: {{ports: [{{name: http, port: 8080, protocol: http}}]}}\n"
    )
}

/// A Workload of `service` on `node`, accepting mTLS on `inbound_port`.
pub fn workload(
    namespace: &str,
    name: &str,
    service: &str,
    node: &str,
    inbound_port: u16,
) -> String {
    format!(
        "---\nkind: Workload\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec: {{service: {service}, node: {node}, appPort: 8080, inboundPort: {inbound_port}}}\n"
    )
}

/// An AuthorizationPolicy on `service` that allows callers presenting one of
/// `identities`.
pub fn allow_policy(namespace: &str, name: &str, service: &str, identities: &[String]) -> String {
    let quoted: Vec<String> = identities.iter().map(|id| format!("\"{id}\"")).collect();
    format!(
        "---\nkind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec:\n  targetService: {service}\n  rules:\n    - from: [{{identities: [{}]}}]\n",
        quoted.join(", ")
    )
}

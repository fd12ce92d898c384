//! The SPIFFE IDs that Palisade gives nodes and services.

/// The SPIFFE ID of a node: `spiffe://<trust domain>/node/<name>`.
pub fn node_spiffe_id(trust_domain: &str, node: &str) -> String {
    format!("spiffe://{trust_domain}/node/{node}")
}

/// The SPIFFE ID of a service's workloads:
/// `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
///
/// The service account is the Service's `serviceAccount`, or its name when
/// unset; see [`crate::ServiceSpec::service_account_or`].
pub fn service_spiffe_id(trust_domain: &str, namespace: &str, service_account: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_documented_shapes() {
        assert_eq!(
            node_spiffe_id("example.org", "web-1"),
            "spiffe://example.org/node/web-1"
        );
        assert_eq!(
            service_spiffe_id("example.org", "shop", "orders"),
            "spiffe://example.org/ns/shop/sa/orders"
        );
    }
}

//! Sample documents shared by the tests.

use crate::document::Document;
use crate::parse::parse_documents;

/// One valid document of every kind, in the order of `Kind::ALL`.
pub(crate) const EVERY_KIND: &str = r#"
apiVersion: palisade.dev/v1
kind: Node
metadata:
  name: web-1.example.com
spec:
  address: 10.0.0.5
---
kind: Service
metadata:
  name: orders
  namespace: shop
  labels:
    app.kubernetes.io/name: orders
  annotations:
    example.com/owner: "team shop"
spec:
  ports:
    - name: http
      port: 8080
      protocol: http
    - port: 9090
      protocol: grpc
  serviceAccount: orders-sa
  dnsNames: ["orders.shop.svc", "*.orders.example.com"]
---
kind: Workload
metadata: {name: orders-1, namespace: shop}
spec:
  service: orders
  node: web-1.example.com
  address: 10.0.0.17
  appPort: 8080
  inboundPort: 15006
  selectors: {unixUid: 1000, processPath: /usr/bin/orders}
---
kind: AuthorizationPolicy
metadata: {name: orders, namespace: shop}
spec:
  targetService: orders
  action: ALLOW
  mode: audit
  rules:
    - from:
        - identities: ["spiffe://example.org/ns/shop/sa/frontend", "spiffe://example.org/ns/ops/*"]
        - namespaces: [payments]
          notIpBlocks: ["10.9.0.0/16", "fd00::/8"]
        - principals: ["https://id.example.com/alice"]
      to:
        - methods: [GET, POST]
          paths: ["/orders/*", "*.json"]
          ports: [8080]
      when:
        - key: request.auth.claims[groups]
          values: [buyers]
        - key: source.ip
          notValues: ["192.168.0.0/16"]
---
kind: JwtIssuer
metadata: {name: corp, namespace: shop}
spec:
  issuer: https://id.example.com
  audiences: [orders]
  jwksUri: https://id.example.com/.well-known/jwks.json
  algorithms: [ES256, EdDSA]
  clockSkewSeconds: 30
---
kind: RequestAuthentication
metadata: {name: orders, namespace: shop}
spec:
  targetService: orders
  issuers:
    - issuer: corp
      required: false
      forwardClaims:
        - {claim: sub, header: x-user-id}
---
kind: AdminRole
metadata: {name: shop-operator}
spec:
  rules:
    - verbs: [get, list, apply]
      kinds: [Service, Workload]
      namespaces: [shop]
---
kind: AdminBinding
metadata: {name: ops-team}
spec:
  role: shop-operator
  subjects: ["spiffe://example.org/admin/alice", "spiffe://example.org/team/ops/*"]
  namespaces: [shop]
"#;

/// Every sample document, parsed.
pub(crate) fn every_kind() -> Vec<Document> {
    parse_documents(EVERY_KIND).expect("the samples parse")
}

/// Parses text that must hold exactly one document.
pub(crate) fn one(text: &str) -> Document {
    let mut docs = parse_documents(text).expect("the document parses");
    assert_eq!(docs.len(), 1, "expected one document");
    docs.remove(0)
}

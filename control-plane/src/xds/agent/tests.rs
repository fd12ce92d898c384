use palisade_model::{AuthorizationPolicySpec, PolicyAction, Rule, Source};
use palisade_proto::prost::{Message, Name};
use pb::jwt_issuer::Keys;
use pb::string_match::Pattern;

use super::*;
use crate::identity::records::{RevocationRecord, RevokedSerial};
use crate::xds::testing::{named, world_at};
use crate::xds::world::{Bundle, World};

const SHOP: &str = r#"
kind: Node
metadata: {name: web-1}
spec: {address: 10.0.0.1}
---
kind: Node
metadata: {name: web-2}
spec: {}
---
kind: Service
metadata: {name: orders, namespace: shop}
spec:
  ports: [{name: api, port: 9090, protocol: grpc}, {port: 9100}]
  serviceAccount: orders-sa
---
kind: Service
metadata: {name: storefront, namespace: shop}
spec: {ports: [{port: 8080, protocol: http}]}
---
kind: Workload
metadata: {name: orders-1, namespace: shop}
spec:
  service: orders
  node: web-1
  appPort: 9090
  inboundPort: 15008
  selectors: {unixUid: 0, processPath: /usr/bin/orders}
---
kind: Workload
metadata: {name: orders-2, namespace: shop}
spec: {service: orders, node: web-2, address: 10.0.0.7, appPort: 9090, inboundPort: 15009}
---
kind: Workload
metadata: {name: orders-3, namespace: shop}
spec: {service: orders, node: web-2, appPort: 9090, inboundPort: 15008}
---
kind: Workload
metadata: {name: storefront-1, namespace: shop}
spec: {service: storefront, node: web-2, appPort: 8080, inboundPort: 15008}
"#;

const POLICIES: &str = r#"
kind: AuthorizationPolicy
metadata: {name: a-block-scanners, namespace: shop}
spec:
  targetService: orders
  action: DENY
  rules:
    - from: [{ipBlocks: ["192.0.2.77/24", "2001:db8::1/32", "198.51.100.9", "fe80::1"]}]
---
kind: AuthorizationPolicy
metadata: {name: b-storefront-reads, namespace: shop}
spec:
  targetService: orders
  rules:
    - from: [{identities: ["spiffe://td/ns/shop/sa/storefront"], notNamespaces: ["dev"]}]
      to: [{ports: [9090], methods: ["GET", "*"], paths: ["/orders/*", "*.json", "/healthz", "*"]}]
      when: [{key: "request.headers[x-tenant]", values: [acme], notValues: [7]}]
    - from: [{principals: ["*/alice", "https://id.example.com/*"]}]
---
kind: AuthorizationPolicy
metadata: {name: c-shop-wide-audit, namespace: shop}
spec:
  action: AUDIT
  rules:
    - to: [{notPaths: ["/metrics"]}]
---
kind: AuthorizationPolicy
metadata: {name: d-trial-deny, namespace: shop}
spec:
  action: DENY
  mode: audit
  rules:
    - from: [{identities: ["spiffe://td/ns/shop/*"]}]
---
kind: AuthorizationPolicy
metadata: {name: e-storefront-only, namespace: shop}
spec:
  targetService: storefront
  rules:
    - from: [{identities: ["*"]}]
---
kind: AuthorizationPolicy
metadata: {name: f-elsewhere, namespace: billing}
spec:
  rules:
    - from: [{identities: ["*"]}]
"#;

const TOKENS: &str = r#"
kind: JwtIssuer
metadata: {name: corp, namespace: shop}
spec:
  issuer: https://id.example.com
  audiences: [shop]
  jwks: '{"keys": []}'
  algorithms: [ES256]
  clockSkewSeconds: 30
---
kind: JwtIssuer
metadata: {name: partner, namespace: shop}
spec:
  issuer: https://partner.example.com
  jwksUri: https://partner.example.com/jwks.json
---
kind: RequestAuthentication
metadata: {name: orders-tokens, namespace: shop}
spec:
  targetService: orders
  issuers:
    - issuer: corp
      required: false
      forwardClaims: [{claim: sub, header: x-user}]
    - issuer: partner
      required: false
---
kind: RequestAuthentication
metadata: {name: shop-tokens, namespace: shop}
spec:
  issuers:
    - issuer: corp
      forwardClaims: [{claim: group, header: x-group}, {claim: sub, header: x-user}]
    - issuer: ghost
---
kind: RequestAuthentication
metadata: {name: billing-tokens, namespace: billing}
spec:
  issuers: [{issuer: corp}]
"#;

fn world_of(yaml: &[&str], revision: u64) -> World {
    world_at(&yaml.join("---\n"), revision)
}

fn decode<M: Message + Name + Default>(resource: &AgentResource) -> M {
    assert_eq!(resource.built.any.type_url, M::type_url());
    M::decode(resource.built.any.value.as_slice()).unwrap()
}

fn rule_names(rules: &[pb::AuthorizationRule]) -> Vec<(&str, u32)> {
    rules.iter().map(|r| (r.policy.as_str(), r.index)).collect()
}

fn patterns(matches: &[pb::StringMatch]) -> Vec<Pattern> {
    matches.iter().map(|m| m.pattern.clone().unwrap()).collect()
}

fn orders_authorization() -> pb::Authorization {
    let world = world_of(&[SHOP, POLICIES], 5);
    decode(&authorization(&world, &named("shop", "orders")))
}

#[test]
fn type_urls_are_those_of_the_generated_messages() {
    assert_eq!(WORKLOAD_TYPE_URL, pb::Workload::type_url());
    assert_eq!(AUTHORIZATION_TYPE_URL, pb::Authorization::type_url());
    assert_eq!(ENDPOINTS_TYPE_URL, pb::Endpoints::type_url());
    assert_eq!(JWT_RULES_TYPE_URL, pb::JwtRules::type_url());
    assert_eq!(TRUST_BUNDLE_TYPE_URL, pb::TrustBundle::type_url());
    assert_eq!(DENY_LIST_TYPE_URL, pb::DenyList::type_url());
}

#[test]
fn workload_carries_identity_ports_and_selectors() {
    let world = world_of(&[SHOP], 3);

    let resource = workload(&world, &named("shop", "orders-1")).unwrap();
    let message: pb::Workload = decode(&resource);

    assert_eq!(resource.built.name, "shop/orders-1");
    assert_eq!(message.revision, 3);
    assert_eq!(
        (message.service.as_str(), message.spiffe_id.as_str()),
        ("orders", "spiffe://td/ns/shop/sa/orders-sa")
    );
    assert_eq!((message.inbound_port, message.app_port), (15008, 9090));
    assert_eq!(message.address, "10.0.0.1");
    let ports: Vec<_> = message
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.port, p.protocol()))
        .collect();
    assert_eq!(
        ports,
        [
            ("api", 9090, pb::Protocol::Grpc),
            ("", 9100, pb::Protocol::Tcp)
        ]
    );
    let selectors = message.selectors.unwrap();
    assert_eq!((selectors.unix_uid, selectors.unix_gid), (Some(0), None));
    assert_eq!(selectors.process_path, "/usr/bin/orders");
}

#[test]
fn workload_address_is_its_own_else_its_nodes_else_empty() {
    let world = world_of(&[SHOP], 3);
    let address =
        |name| decode::<pb::Workload>(&workload(&world, &named("shop", name)).unwrap()).address;

    assert_eq!(address("orders-1"), "10.0.0.1");
    assert_eq!(address("orders-2"), "10.0.0.7");
    assert_eq!(address("orders-3"), "");
}

#[test]
fn workload_without_a_known_service_is_not_built() {
    let mut world = world_of(&[SHOP], 3);
    world.services.remove(&named("shop", "orders"));

    assert!(workload(&world, &named("shop", "orders-1")).is_none());
    assert!(workload(&world, &named("shop", "nobody")).is_none());
}

#[test]
fn authorization_sorts_rules_by_action_with_their_policy_and_mode() {
    let message = orders_authorization();

    assert_eq!(message.revision, 5);
    assert_eq!(
        rule_names(&message.deny),
        [("a-block-scanners", 0), ("d-trial-deny", 0)]
    );
    assert_eq!(
        rule_names(&message.allow),
        [("b-storefront-reads", 0), ("b-storefront-reads", 1)]
    );
    assert_eq!(rule_names(&message.audit), [("c-shop-wide-audit", 0)]);
    assert_eq!(message.deny[0].mode(), pb::EnforcementMode::Enforce);
    assert_eq!(message.deny[1].mode(), pb::EnforcementMode::Audit);
}

#[test]
fn namespace_wide_policies_apply_and_other_namespaces_do_not() {
    let world = world_of(&[SHOP, POLICIES], 5);

    let storefront: pb::Authorization =
        decode(&authorization(&world, &named("shop", "storefront")));

    assert_eq!(rule_names(&storefront.allow), [("e-storefront-only", 0)]);
    assert_eq!(rule_names(&storefront.deny), [("d-trial-deny", 0)]);
    assert_eq!(rule_names(&storefront.audit), [("c-shop-wide-audit", 0)]);
    assert!(
        orders_authorization()
            .allow
            .iter()
            .all(|r| r.policy != "f-elsewhere")
    );

    let ledger: pb::Authorization = decode(&authorization(&world, &named("billing", "ledger")));
    assert_eq!(rule_names(&ledger.allow), [("f-elsewhere", 0)]);
    assert!(ledger.deny.is_empty() && ledger.audit.is_empty());
}

#[test]
fn service_without_allow_policies_has_an_empty_allow_list() {
    let world = world_of(&[SHOP], 5);

    let message: pb::Authorization = decode(&authorization(&world, &named("shop", "orders")));

    assert_eq!(
        (message.namespace.as_str(), message.service.as_str()),
        ("shop", "orders")
    );
    assert!(message.allow.is_empty() && message.deny.is_empty() && message.audit.is_empty());
}

#[test]
fn ip_blocks_arrive_as_parsed_networks() {
    let message = orders_authorization();

    let blocks: Vec<_> = message.deny[0].from[0]
        .ip_blocks
        .iter()
        .map(|b| (b.address.clone(), b.prefix_len))
        .collect();

    let mut v6_net = vec![0x20, 0x01, 0x0d, 0xb8];
    v6_net.extend([0; 12]);
    let mut link_local = vec![0xfe, 0x80];
    link_local.extend([0; 13]);
    link_local.push(1);
    assert_eq!(
        blocks,
        [
            (vec![192, 0, 2, 0], 24),
            (v6_net, 32),
            (vec![198, 51, 100, 9], 32),
            (link_local, 128),
        ]
    );
}

#[test]
fn patterns_arrive_classified() {
    let message = orders_authorization();
    let reads = &message.allow[0];
    let (source, operation) = (&reads.from[0], &reads.to[0]);

    let exact = |s: &str| Pattern::Exact(s.into());
    assert_eq!(
        patterns(&source.identities),
        [exact("spiffe://td/ns/shop/sa/storefront")]
    );
    assert_eq!(patterns(&source.not_namespaces), [exact("dev")]);
    assert_eq!(operation.ports, [9090]);
    assert_eq!(
        patterns(&operation.methods),
        [exact("GET"), Pattern::Any(true)]
    );
    assert_eq!(
        patterns(&operation.paths),
        [
            Pattern::Prefix("/orders/".into()),
            Pattern::Suffix(".json".into()),
            exact("/healthz"),
            Pattern::Any(true)
        ]
    );
    assert_eq!(
        patterns(&message.allow[1].from[0].principals),
        [
            Pattern::Suffix("/alice".into()),
            Pattern::Prefix("https://id.example.com/".into())
        ]
    );
    assert_eq!(
        patterns(&message.deny[1].from[0].identities),
        [Pattern::Prefix("spiffe://td/ns/shop/".into())]
    );
    assert_eq!(
        patterns(&message.audit[0].to[0].not_paths),
        [exact("/metrics")]
    );
}

#[test]
fn conditions_keep_their_key_and_values() {
    let message = orders_authorization();

    let condition = &message.allow[0].when[0];

    assert_eq!(condition.key, "request.headers[x-tenant]");
    assert_eq!(
        (condition.values.as_slice(), condition.not_values.as_slice()),
        (&["acme".to_owned()][..], &["7".to_owned()][..])
    );
}

#[test]
fn rules_with_unparseable_ip_blocks_fail_closed() {
    let mut world = world_of(&[SHOP], 5);
    let broken = |action| AuthorizationPolicySpec {
        action,
        rules: vec![Rule {
            from: vec![Source {
                ip_blocks: vec!["10.0.0.0/40".into()],
                ..Source::default()
            }],
            ..Rule::default()
        }],
        ..AuthorizationPolicySpec::default()
    };
    world
        .policies
        .insert(named("shop", "broken-allow"), broken(PolicyAction::Allow));
    world
        .policies
        .insert(named("shop", "broken-deny"), broken(PolicyAction::Deny));

    let message: pb::Authorization = decode(&authorization(&world, &named("shop", "orders")));

    assert!(message.allow.is_empty());
    assert_eq!(rule_names(&message.deny), [("broken-deny", 0)]);
    let deny = &message.deny[0];
    assert!(deny.from.is_empty() && deny.to.is_empty() && deny.when.is_empty());
}

#[test]
fn endpoints_skip_unreachable_workloads_and_prefer_their_own_address() {
    let world = world_of(&[SHOP], 4);

    let resource = endpoints(&world, &named("shop", "orders"));
    let message: pb::Endpoints = decode(&resource);

    assert_eq!(resource.built.name, "shop/orders");
    assert_eq!(message.spiffe_id, "spiffe://td/ns/shop/sa/orders-sa");
    assert_eq!(message.ports.len(), 2);
    let found: Vec<_> = message
        .endpoints
        .iter()
        .map(|e| {
            (
                e.workload.as_str(),
                e.address.as_str(),
                e.inbound_port,
                e.node.as_str(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("orders-1", "10.0.0.1", 15008, "web-1"),
            ("orders-2", "10.0.0.7", 15009, "web-2")
        ]
    );
}

#[test]
fn endpoints_leave_out_workloads_of_unknown_nodes() {
    let mut world = world_of(&[SHOP], 4);
    world.nodes.remove("web-2");

    let message: pb::Endpoints = decode(&endpoints(&world, &named("shop", "orders")));

    let workloads: Vec<_> = message
        .endpoints
        .iter()
        .map(|e| e.workload.as_str())
        .collect();
    assert_eq!(workloads, ["orders-1"]);
}

#[test]
fn endpoints_of_an_unknown_service_are_empty() {
    let world = world_of(&[SHOP], 4);

    let message: pb::Endpoints = decode(&endpoints(&world, &named("shop", "payments")));

    assert!(
        message.spiffe_id.is_empty() && message.ports.is_empty() && message.endpoints.is_empty()
    );
}

#[test]
fn jwt_rules_merge_every_request_authentication_of_the_service() {
    let world = world_of(&[SHOP, TOKENS], 6);

    let resource = jwt_rules(&world, &named("shop", "orders")).unwrap();
    let message: pb::JwtRules = decode(&resource);

    assert_eq!(resource.built.name, "shop/orders");
    let names: Vec<_> = message.issuers.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["corp", "ghost", "partner"]);
    let corp = &message.issuers[0];
    assert!(corp.required);
    assert_eq!(
        corp.request_authentications,
        ["orders-tokens", "shop-tokens"]
    );
    let forwarded: Vec<_> = corp
        .forward_claims
        .iter()
        .map(|f| (f.claim.as_str(), f.header.as_str()))
        .collect();
    assert_eq!(forwarded, [("group", "x-group"), ("sub", "x-user")]);
    assert!(!message.issuers[2].required);
}

#[test]
fn jwt_rules_pull_keys_and_settings_from_the_issuer() {
    let world = world_of(&[SHOP, TOKENS], 6);

    let message: pb::JwtRules = decode(&jwt_rules(&world, &named("shop", "storefront")).unwrap());

    let corp = &message.issuers[0];
    assert_eq!(
        (corp.name.as_str(), corp.issuer.as_str()),
        ("corp", "https://id.example.com")
    );
    assert_eq!(corp.keys, Some(Keys::JwksJson(r#"{"keys": []}"#.into())));
    assert_eq!(
        (corp.audiences.as_slice(), corp.algorithms.as_slice()),
        (&["shop".to_owned()][..], &["ES256".to_owned()][..])
    );
    assert_eq!(corp.clock_skew_seconds, 30);
    let orders: pb::JwtRules = decode(&jwt_rules(&world, &named("shop", "orders")).unwrap());
    let partner = &orders.issuers[2];
    assert_eq!(
        partner.keys,
        Some(Keys::JwksUri(
            "https://partner.example.com/jwks.json".into()
        ))
    );
    assert_eq!(
        (partner.algorithms.len(), partner.clock_skew_seconds),
        (2, 60)
    );
}

#[test]
fn jwt_rules_for_a_missing_issuer_carry_no_keys_and_stay_required() {
    let world = world_of(&[SHOP, TOKENS], 6);

    let message: pb::JwtRules = decode(&jwt_rules(&world, &named("shop", "storefront")).unwrap());

    let ghost = &message.issuers[1];
    assert_eq!(ghost.name, "ghost");
    assert!(ghost.issuer.is_empty() && ghost.keys.is_none() && ghost.required);
}

#[test]
fn jwt_rules_are_absent_when_no_request_authentication_applies() {
    let world = world_of(&[SHOP, TOKENS], 6);

    assert!(jwt_rules(&world, &named("payments", "ledger")).is_none());
    assert!(jwt_rules(&world_of(&[SHOP], 6), &named("shop", "orders")).is_none());
}

#[test]
fn trust_bundle_carries_the_domain_certificates_and_jwks() {
    let mut world = world_of(&[SHOP], 8);
    world.set_bundle(Bundle {
        x509_pem: "-----BEGIN CERTIFICATE-----".into(),
        jwks_json: r#"{"keys":[]}"#.into(),
    });

    let resource = trust_bundle(&world);
    let message: pb::TrustBundle = decode(&resource);

    assert_eq!(resource.built.name, TRUST_BUNDLE_NAME);
    assert_eq!((message.revision, message.trust_domain.as_str()), (8, "td"));
    assert_eq!(message.x509_pem, "-----BEGIN CERTIFICATE-----");
    assert_eq!(message.jwks_json, r#"{"keys":[]}"#);
}

#[test]
fn deny_list_holds_every_revoked_serial_sorted() {
    let mut world = world_of(&[SHOP], 9);
    let revoked = |node: &str, serials: &[(&str, i64)]| RevocationRecord {
        node: node.to_owned(),
        revoked: 100,
        revoked_by: "admin".to_owned(),
        reason: String::new(),
        serials: serials
            .iter()
            .map(|(serial, not_after)| RevokedSerial {
                serial: (*serial).to_owned(),
                not_after: *not_after,
            })
            .collect(),
    };
    world.revocations.insert(
        "web-1".into(),
        revoked("web-1", &[("0f", 500), ("AB", 700)]),
    );
    world
        .revocations
        .insert("web-2".into(), revoked("web-2", &[("01", 1)]));

    let resource = deny_list(&world);
    let message: pb::DenyList = decode(&resource);

    assert_eq!(resource.built.name, DENY_LIST_NAME);
    let listed: Vec<_> = message
        .certificates
        .iter()
        .map(|c| (c.serial.as_str(), c.not_after_unix, c.node.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("01", 1, "web-2"),
            ("0f", 500, "web-1"),
            ("ab", 700, "web-1")
        ]
    );
}

#[test]
fn building_twice_gives_identical_bytes() {
    let world = world_of(&[SHOP, POLICIES, TOKENS], 7);
    let orders = named("shop", "orders");

    assert_eq!(
        authorization(&world, &orders),
        authorization(&world, &orders)
    );
    assert_eq!(endpoints(&world, &orders), endpoints(&world, &orders));
    assert_eq!(jwt_rules(&world, &orders), jwt_rules(&world, &orders));
    let worker = named("shop", "orders-1");
    assert_eq!(workload(&world, &worker), workload(&world, &worker));
}

#[test]
fn content_hash_ignores_the_revision_but_follows_the_content() {
    let orders = named("shop", "orders");
    let before = world_of(&[SHOP, POLICIES], 7);
    let mut after = before.clone();
    after.revision = 8;

    let (old, new) = (
        authorization(&before, &orders),
        authorization(&after, &orders),
    );
    assert_ne!(old.built.any.value, new.built.any.value);
    assert_eq!(old.content_hash, new.content_hash);
    assert_eq!(
        trust_bundle(&before).content_hash,
        trust_bundle(&after).content_hash
    );

    after.policies.remove(&named("shop", "d-trial-deny"));
    assert_ne!(
        authorization(&after, &orders).content_hash,
        old.content_hash
    );
    after.nodes.remove("web-1");
    assert_ne!(
        endpoints(&after, &orders).content_hash,
        endpoints(&before, &orders).content_hash
    );
}

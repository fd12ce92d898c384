//! Tests of whole-document validation: paths, messages, and collecting every problem.

use super::*;
use crate::kind::Kind;
use crate::metadata::Metadata;
use crate::spec::{NodeSpec, ServiceSpec, Source};
use crate::testing::{every_kind, one};

/// The problems of a document given as YAML, as `path: message` lines.
fn problems(yaml: &str) -> Vec<String> {
    let doc = one(yaml);
    let errors = validate(&doc).expect_err("the document has problems");
    errors.iter().map(FieldError::to_string).collect()
}

#[test]
fn every_sample_document_is_valid() {
    for doc in every_kind() {
        assert_eq!(validate(&doc), Ok(()), "{}", doc.key());
    }
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let yaml = "kind: Service\nmetadata: {name: orders}\nspec:\n  serviceAccount: Orders\n  dnsNames: [ok.example.com, \"a.*.example.com\"]\n";
    assert_eq!(
        problems(yaml),
        [
            "spec.ports: must name at least one port",
            "spec.serviceAccount: \"Orders\" is not a DNS-1123 label (lowercase letters, digits \
             and '-', starting and ending with a letter or digit, at most 63 characters)",
            "spec.dnsNames[1]: \"a.*.example.com\" is not a DNS name: '*' may only be the whole \
             leftmost label",
        ]
    );
}

#[test]
fn service_ports_must_be_real_and_unique() {
    let yaml = "kind: Service\nmetadata: {name: orders}\nspec:\n  ports:\n    - {name: web, port: 80}\n    - {name: web, port: 80}\n    - {port: 0}\n";
    assert_eq!(
        problems(yaml),
        [
            "spec.ports[1].port: port 80 is already used by spec.ports[0]",
            "spec.ports[1].name: name \"web\" is already used by spec.ports[0]",
            "spec.ports[2].port: 0 is not a port (1-65535)",
        ]
    );
}

#[test]
fn node_names_may_be_subdomains_but_others_must_be_labels() {
    let node = "kind: Node\nmetadata: {name: web-1.example.com}\nspec: {}\n";
    assert_eq!(validate(&one(node)), Ok(()));

    let service = "kind: Service\nmetadata: {name: orders.v2}\nspec: {ports: [{port: 80}]}\n";
    assert_eq!(problems(service).len(), 1);
    assert!(
        problems(service)[0].starts_with("metadata.name: \"orders.v2\" is not a DNS-1123 label")
    );
}

#[test]
fn labels_are_checked_by_key_and_value() {
    let yaml = "kind: Node\nmetadata:\n  name: web-1\n  labels: {\"Bad/key\": x, tier: \"front end\"}\nspec: {}\n";
    let found = problems(yaml);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("metadata.labels: \"Bad/key\" is not a label key"));
    assert!(found[1].starts_with("metadata.labels.tier: \"front end\" is not a label value"));
}

#[test]
fn built_documents_get_the_same_scope_checks_as_parsed_ones() {
    let mut node = Document::new(
        Metadata::new("shop", "web-1"),
        Spec::Node(NodeSpec::default()),
    );
    let errors = validate(&node).unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "metadata.namespace: Node is cluster-scoped and takes no namespace"
    );

    node.metadata.namespace.clear();
    node.kind = Kind::Service;
    let errors = validate(&node).unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "kind: Service does not match a Node spec"
    );

    let service = Document::new(
        Metadata::new("", "orders"),
        Spec::Service(ServiceSpec::default()),
    );
    let errors: Vec<String> = validate(&service)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(errors[0], "metadata.namespace: must be set");
}

#[test]
fn workload_ports_differ_and_process_paths_are_absolute() {
    let yaml = "kind: Workload\nmetadata: {name: w}\nspec:\n  service: orders\n  node: web_1\n  address: 10.0.0\n  appPort: 8080\n  inboundPort: 8080\n  selectors: {processPath: bin/orders}\n";
    let found = problems(yaml);
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found[0].starts_with("spec.node: \"web_1\" is not a DNS-1123 subdomain"));
    assert_eq!(found[1], "spec.address: \"10.0.0\" is not an IP address");
    assert_eq!(
        found[2],
        "spec.inboundPort: must differ from appPort (both are 8080)"
    );
    assert_eq!(
        found[3],
        "spec.selectors.processPath: \"bin/orders\" is not an absolute path"
    );
}

const POLICY_HEAD: &str =
    "kind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  rules:\n";

#[test]
fn empty_sources_and_operations_are_refused() {
    let yaml = format!("{POLICY_HEAD}    - from: [{{}}]\n      to: [{{}}]\n");
    assert_eq!(
        problems(&yaml),
        [
            "spec.rules[0].from[0]: must name at least one of identities, notIdentities, \
             namespaces, notNamespaces, ipBlocks, notIpBlocks, principals, notPrincipals",
            "spec.rules[0].to[0]: must name at least one of ports, notPorts, methods, \
             notMethods, paths, notPaths",
        ]
    );
}

#[test]
fn policy_entries_are_checked_at_their_paths() {
    let yaml = format!(
        "{POLICY_HEAD}    - from:\n        - identities: [\"spiffe://example.org/ns/a/\"]\n          notNamespaces: [Shop]\n      to:\n        - methods: [GET, get]\n          notPaths: [\"/a/*/b\"]\n          ports: [0]\n"
    );
    assert_eq!(
        problems(&yaml),
        [
            "spec.rules[0].from[0].identities[0]: \"spiffe://example.org/ns/a/\" is not a SPIFFE \
             ID: a trailing '/' is not allowed",
            "spec.rules[0].from[0].notNamespaces[0]: \"Shop\" is not a DNS-1123 label (lowercase \
             letters, digits and '-', starting and ending with a letter or digit, at most 63 \
             characters)",
            "spec.rules[0].to[0].ports[0]: 0 is not a port (1-65535)",
            "spec.rules[0].to[0].methods[1]: \"get\" is not an HTTP method (methods are \
             uppercase, e.g. \"GET\")",
            "spec.rules[0].to[0].notPaths[0]: \"/a/*/b\" is not a path pattern: '*' may only be \
             the first or the last character",
        ]
    );
}

#[test]
fn conditions_need_a_known_key_and_some_values() {
    let yaml = format!(
        "{POLICY_HEAD}    - when:\n        - key: request.cookies[x]\n          values: [a]\n        - key: source.ip\n          values: [\"10.0.0.0/8\", nowhere]\n        - key: request.headers[x-tenant]\n"
    );
    let found = problems(&yaml);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].starts_with(
            "spec.rules[0].when[0].key: \"request.cookies[x]\" is not a condition key"
        )
    );
    assert_eq!(
        found[1],
        "spec.rules[0].when[1].values[1]: \"nowhere\" is not a CIDR"
    );
    assert_eq!(
        found[2],
        "spec.rules[0].when[2]: must name at least one of values, notValues"
    );
}

#[test]
fn lists_longer_than_the_limit_are_refused() {
    let mut doc = every_kind().remove(3);
    let Spec::AuthorizationPolicy(spec) = &mut doc.spec else {
        panic!("not a policy")
    };
    let source = Source {
        ip_blocks: vec!["10.0.0.1".into(); MAX_LIST_ITEMS + 1],
        ..Source::default()
    };
    spec.rules[0].from = vec![source];

    let errors = validate(&doc).unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "spec.rules[0].from[0].ipBlocks: has 1001 items; at most 1000 are allowed"
    );
}

const ISSUER_HEAD: &str = "kind: JwtIssuer\nmetadata: {name: corp}\nspec:\n";

#[test]
fn issuers_need_https_one_key_source_and_safe_algorithms() {
    let yaml = format!(
        "{ISSUER_HEAD}  issuer: http://id.example.com\n  jwks: '{{\"keys\": []}}'\n  jwksUri: https://id.example.com/keys\n  algorithms: [none, HS256]\n  clockSkewSeconds: 601\n"
    );
    let found = problems(&yaml);
    assert_eq!(found.len(), 5, "{found:?}");
    assert!(found[0].starts_with("spec.issuer: \"http://id.example.com\" is not an https URL"));
    assert_eq!(
        found[1],
        "spec: exactly one of jwks and jwksUri must be set"
    );
    assert!(found[2].starts_with("spec.algorithms[0]: \"none\" is refused"));
    assert!(found[3].starts_with("spec.algorithms[1]: \"HS256\" is refused"));
    assert_eq!(found[4], "spec.clockSkewSeconds: 601 is more than 600");
}

#[test]
fn inline_jwks_and_local_http_issuers_are_accepted() {
    let yaml = format!(
        "{ISSUER_HEAD}  issuer: http://localhost:8080/realms/dev\n  jwks: '{{\"keys\": [{{\"kty\": \"OKP\"}}]}}'\n"
    );
    assert_eq!(validate(&one(&yaml)), Ok(()));

    let yaml = format!("{ISSUER_HEAD}  issuer: https://id.example.com\n  jwks: '[]'\n");
    assert_eq!(
        problems(&yaml),
        ["spec.jwks: is not a JWKS: it has no \"keys\" array"]
    );
}

#[test]
fn request_authentication_checks_issuers_and_forwarded_headers() {
    let yaml = "kind: RequestAuthentication\nmetadata: {name: ra}\nspec:\n  issuers:\n    - issuer: corp\n      forwardClaims:\n        - {claim: sub, header: x-user}\n        - {claim: email, header: X-User}\n        - {claim: \"\", header: connection}\n    - issuer: corp\n";
    assert_eq!(
        problems(yaml),
        [
            "spec.issuers[0].forwardClaims[1].header: header \"X-User\" is already set by \
             spec.issuers[0].forwardClaims[0]",
            "spec.issuers[0].forwardClaims[2].claim: \"\" is not a claim: it is empty",
            "spec.issuers[0].forwardClaims[2].header: \"connection\" is a hop-by-hop header and \
             cannot carry a claim",
            "spec.issuers[1].issuer: issuer \"corp\" is already listed at spec.issuers[0]",
        ]
    );

    let empty = "kind: RequestAuthentication\nmetadata: {name: ra}\nspec: {}\n";
    assert_eq!(
        problems(empty),
        ["spec.issuers: must name at least one issuer"]
    );
}

#[test]
fn admin_roles_name_verbs_and_exact_kinds() {
    let yaml = "kind: AdminRole\nmetadata: {name: ops}\nspec:\n  rules:\n    - verbs: [get, edit]\n      kinds: [svc, \"*\"]\n    - {}\n";
    assert_eq!(
        problems(yaml),
        [
            "spec.rules[0].verbs[1]: \"edit\" is not a verb (expected one of get, list, watch, \
             apply, delete, audit, issue, revoke, rotate or \"*\")",
            "spec.rules[0].kinds[0]: \"svc\" is not a kind name (did you mean \"Service\"?)",
            "spec.rules[1].verbs: must name at least one verb",
            "spec.rules[1].kinds: must name at least one kind",
        ]
    );
}

#[test]
fn admin_bindings_need_spiffe_subjects() {
    let yaml = "kind: AdminBinding\nmetadata: {name: b}\nspec:\n  role: viewer\n  subjects: [\"*\", \"spiffe://example.org/team/*\"]\n  namespaces: [\"*\"]\n";
    let found = problems(yaml);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("spec.subjects[0]: \"*\" is not a SPIFFE ID"));
    assert!(found[1].starts_with("spec.namespaces[0]: \"*\" is not a DNS-1123 label"));

    let bad_role = "kind: AdminBinding\nmetadata: {name: b}\nspec: {role: Ops_Team}\n";
    assert_eq!(
        problems(bad_role),
        [
            "spec.role: \"Ops_Team\" is not a role (expected admin, editor, viewer, auditor or \
             the name of an AdminRole)",
            "spec.subjects: must name at least one subject",
        ]
    );
}

#[test]
fn field_error_display_omits_an_empty_path() {
    assert_eq!(
        FieldError::new("spec.ports", "bad").to_string(),
        "spec.ports: bad"
    );
    assert_eq!(
        FieldError::new("", "missing field `kind`").to_string(),
        "missing field `kind`"
    );
}

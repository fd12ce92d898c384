use envoy_types::pb::envoy::config::rbac::v3::{Permission, Principal, permission, principal};
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter;
use envoy_types::pb::envoy::r#type::matcher::v3::path_matcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;

use super::term::Matcher;
use super::*;
use crate::xds::envoy::tests::{named, world_of};

const SERVICES: &str = r#"
kind: Service
metadata: {name: orders, namespace: shop}
spec: {ports: [{port: 9090, protocol: grpc}]}
---
kind: Service
metadata: {name: wide, namespace: shop}
spec: {ports: [{port: 80, protocol: http}, {port: 81, protocol: http}]}
"#;

/// The service `orders` with `policies` (documents) added.
fn compiled(policies: &str, layer: Layer) -> Compiled {
    compiled_for("orders", policies, layer)
}

fn compiled_for(service: &str, policies: &str, layer: Layer) -> Compiled {
    let world = world_of(&format!("{SERVICES}---\n{policies}"));
    compile(&world, &named("shop", service), layer)
}

/// An ALLOW policy on orders with one rule, written as YAML flow.
fn allow(rule: &str) -> String {
    format!(
        "kind: AuthorizationPolicy\nmetadata: {{name: p, namespace: shop}}\n\
         spec: {{targetService: orders, rules: [{rule}]}}\n"
    )
}

fn deny(rule: &str) -> String {
    allow(rule).replace("spec: {", "spec: {action: DENY, ")
}

/// The one policy's principal and permission.
fn only(policies: &BTreeMap<String, Policy>) -> (&Principal, &Permission) {
    assert_eq!(policies.len(), 1, "{policies:?}");
    let policy = policies.values().next().unwrap();
    assert_eq!((policy.principals.len(), policy.permissions.len()), (1, 1));
    (&policy.principals[0], &policy.permissions[0])
}

fn principal_name(principal: &Principal) -> MatchPattern {
    match &principal.identifier {
        Some(principal::Identifier::Authenticated(auth)) => {
            auth.principal_name.clone().unwrap().match_pattern.unwrap()
        }
        other => panic!("not an authenticated principal: {other:?}"),
    }
}

fn or_ids(principal: &Principal) -> &[Principal] {
    match &principal.identifier {
        Some(principal::Identifier::OrIds(set)) => &set.ids,
        other => panic!("not or_ids: {other:?}"),
    }
}

fn or_rules(permission: &Permission) -> &[Permission] {
    match &permission.rule {
        Some(permission::Rule::OrRules(set)) => &set.rules,
        other => panic!("not or_rules: {other:?}"),
    }
}

#[test]
fn identities_map_to_exact_prefix_or_any_principal_names() {
    let rules = allow(r#"{from: [{identities: ["spiffe://td/ns/a/sa/x", "spiffe://td/ns/b/*"]}]}"#);
    let any = allow(r#"{from: [{identities: ["*"]}]}"#);

    let listed = compiled(&rules, Layer::Http);
    let (principal, permission) = only(&listed.allow);
    let names: Vec<MatchPattern> = or_ids(principal).iter().map(principal_name).collect();

    assert_eq!(
        names,
        [
            MatchPattern::Exact("spiffe://td/ns/a/sa/x".into()),
            MatchPattern::Prefix("spiffe://td/ns/b/".into())
        ]
    );
    assert_eq!(permission, &Permission::everything());
    assert_eq!(
        only(&compiled(&any, Layer::Http).allow).0,
        &Principal::everything()
    );
}

#[test]
fn namespaces_map_to_spiffe_id_prefixes() {
    let exact = compiled(&allow(r#"{from: [{namespaces: [billing]}]}"#), Layer::Http);
    let any = compiled(&allow(r#"{from: [{namespaces: ["*"]}]}"#), Layer::Http);

    assert_eq!(
        principal_name(only(&exact.allow).0),
        MatchPattern::Prefix("spiffe://td/ns/billing/".into())
    );
    assert_eq!(only(&any.allow).0, &Principal::everything());
}

#[test]
fn not_lists_become_negations() {
    let rule =
        r#"{from: [{notIdentities: ["spiffe://td/ns/a/sa/x"], notIpBlocks: ["10.1.2.3/8"]}]}"#;

    let compiled = compiled(&allow(rule), Layer::Http);
    let (principal, _) = only(&compiled.allow);

    let Some(principal::Identifier::AndIds(both)) = &principal.identifier else {
        panic!("both lists must hold");
    };
    let negated: Vec<&Principal> = both
        .ids
        .iter()
        .map(|id| match &id.identifier {
            Some(principal::Identifier::NotId(inner)) => &**inner,
            other => panic!("not a negation: {other:?}"),
        })
        .collect();
    assert_eq!(
        principal_name(negated[0]),
        MatchPattern::Exact("spiffe://td/ns/a/sa/x".into())
    );
    let Some(principal::Identifier::DirectRemoteIp(range)) = &negated[1].identifier else {
        panic!("a remote address");
    };
    assert_eq!(
        (
            range.address_prefix.as_str(),
            range.prefix_len.unwrap().value
        ),
        ("10.0.0.0", 8)
    );
}

#[test]
fn ip_blocks_match_the_direct_remote_address() {
    let compiled = compiled(
        &allow(r#"{from: [{ipBlocks: ["192.0.2.0/24"]}]}"#),
        Layer::Http,
    );

    let (principal, _) = only(&compiled.allow);

    assert!(matches!(
        &principal.identifier,
        Some(principal::Identifier::DirectRemoteIp(range)) if range.address_prefix == "192.0.2.0"
    ));
}

#[test]
fn token_principals_and_conditions_never_allow_and_always_deny() {
    let principals = r#"{from: [{principals: ["https://id/alice"]}]}"#;
    let when = r#"{from: [{identities: ["spiffe://td/ns/a/sa/x"]}],
                   when: [{key: "request.auth.claims[group]", values: [admin]}]}"#;

    for rule in [principals, when] {
        let allowed = compiled(&allow(rule), Layer::Http);
        let denied = compiled(&deny(rule), Layer::Http);

        assert!(allowed.allow.is_empty(), "{rule}");
        assert_eq!(denied.deny.len(), 1, "{rule}");
    }
    let denied = compiled(&deny(principals), Layer::Http);
    assert_eq!(only(&denied.deny).0, &Principal::everything());
}

#[test]
fn a_source_with_a_token_principal_drops_out_but_its_siblings_stay() {
    let rule = r#"{from: [{principals: ["https://id/alice"]}, {namespaces: [billing]}]}"#;

    let compiled = compiled(&allow(rule), Layer::Http);

    assert_eq!(
        principal_name(only(&compiled.allow).0),
        MatchPattern::Prefix("spiffe://td/ns/billing/".into())
    );
}

#[test]
fn ports_are_decided_for_a_single_port_service_and_unknowable_otherwise() {
    let matching = compiled(&allow("{to: [{ports: [9090]}]}"), Layer::Http);
    let other = compiled(&allow("{to: [{ports: [80]}]}"), Layer::Http);
    let excluded = compiled(&allow("{to: [{notPorts: [9090]}]}"), Layer::Http);
    let wide_policy = "kind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\n\
                       spec: {targetService: wide, rules: [{to: [{ports: [80]}]}]}\n";
    let wide_deny = wide_policy.replace("spec: {", "spec: {action: DENY, ");

    assert_eq!(only(&matching.allow).1, &Permission::everything());
    assert!(other.allow.is_empty());
    assert!(excluded.allow.is_empty());
    assert!(
        compiled_for("wide", wide_policy, Layer::Http)
            .allow
            .is_empty()
    );
    assert_eq!(compiled_for("wide", &wide_deny, Layer::Http).deny.len(), 1);
}

#[test]
fn methods_match_the_method_header_and_paths_the_url_path() {
    let rule = r#"{to: [{methods: [POST], paths: ["/a.B/C", "/a.B/*", "*Check"]}]}"#;

    let compiled = compiled(&allow(rule), Layer::Http);
    let (_, permission) = only(&compiled.allow);

    let Some(permission::Rule::AndRules(both)) = &permission.rule else {
        panic!("methods and paths must both hold");
    };
    let Some(permission::Rule::Header(header)) = &both.rules[0].rule else {
        panic!("a header");
    };
    assert_eq!(header.name, ":method");
    let Some(HeaderMatchSpecifier::StringMatch(method)) = &header.header_match_specifier else {
        panic!("a string match");
    };
    assert_eq!(
        method.match_pattern,
        Some(MatchPattern::Exact("POST".into()))
    );
    let paths: Vec<MatchPattern> = or_rules(&both.rules[1])
        .iter()
        .map(|rule| match &rule.rule {
            Some(permission::Rule::UrlPath(path)) => {
                let Some(path_matcher::Rule::Path(matcher)) = &path.rule else {
                    panic!("a path");
                };
                matcher.match_pattern.clone().unwrap()
            }
            other => panic!("not a path: {other:?}"),
        })
        .collect();
    assert_eq!(
        paths,
        [
            MatchPattern::Exact("/a.B/C".into()),
            MatchPattern::Prefix("/a.B/".into()),
            MatchPattern::Suffix("Check".into())
        ]
    );
}

#[test]
fn not_paths_become_a_not_rule() {
    let compiled = compiled(&allow(r#"{to: [{notPaths: ["/admin/*"]}]}"#), Layer::Http);

    let (_, permission) = only(&compiled.allow);

    assert!(matches!(
        permission.rule,
        Some(permission::Rule::NotRule(_))
    ));
}

#[test]
fn methods_and_paths_are_unknowable_on_tcp() {
    let rule = "{to: [{methods: [GET]}]}";

    assert!(compiled(&allow(rule), Layer::Tcp).allow.is_empty());
    assert_eq!(
        only(&compiled(&deny(rule), Layer::Tcp).deny).1,
        &Permission::everything()
    );
}

#[test]
fn audit_policies_and_audit_mode_are_left_out() {
    let audit = allow("{}").replace("spec: {", "spec: {action: AUDIT, ");
    let trial = allow("{}").replace("spec: {", "spec: {mode: audit, ");

    for policy in [audit, trial] {
        assert_eq!(
            compiled(&policy, Layer::Http),
            Compiled::default(),
            "{policy}"
        );
    }
}

#[test]
fn without_deny_rules_only_an_allow_filter_is_emitted_and_it_denies_by_default() {
    let world = world_of(SERVICES);

    let filters = http_filters(&world, &named("shop", "orders"));

    assert_eq!(filters.len(), 1);
    assert_eq!(filters[0].name, ALLOW_FILTER);
    let config = filter_config(&filters[0]);
    let rules = config.rules.expect("present rules enforce");
    assert_eq!(rules.action, i32::from(Action::Allow));
    assert!(rules.policies.is_empty());
    assert!(config.shadow_rules.is_none());
}

#[test]
fn deny_filter_comes_before_the_allow_filter() {
    let policies = format!(
        "{}---\n{}",
        deny("{}"),
        allow("{}").replace("name: p", "name: q")
    );
    let world = world_of(&format!("{SERVICES}---\n{policies}"));

    let filters = http_filters(&world, &named("shop", "orders"));

    let names: Vec<&str> = filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, [DENY_FILTER, ALLOW_FILTER]);
    let deny_rules = filter_config(&filters[0]).rules.unwrap();
    assert_eq!(deny_rules.action, i32::from(Action::Deny));
    assert_eq!(deny_rules.policies.keys().collect::<Vec<_>>(), ["shop/p/0"]);
}

#[test]
fn several_policies_encode_the_same_bytes_in_any_order() {
    let policies: Vec<String> = (0..8)
        .map(|i| {
            allow(&format!(r#"{{from: [{{namespaces: [ns{i}]}}]}}"#))
                .replace("name: p", &format!("name: p{i}"))
        })
        .collect();
    let mut reversed = policies.clone();
    reversed.reverse();

    let forward = world_of(&format!("{SERVICES}---\n{}", policies.join("---\n")));
    let backward = world_of(&format!("{SERVICES}---\n{}", reversed.join("---\n")));
    let orders = named("shop", "orders");
    let first = http_filters(&forward, &orders);

    assert_eq!(first, http_filters(&forward, &orders));
    assert_eq!(first, http_filters(&backward, &orders));
    assert_eq!(filter_config(&first[0]).rules.unwrap().policies.len(), 8);
}

fn filter_config(filter: &HttpFilter) -> HttpRbac {
    let Some(http_filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
        panic!("no typed config");
    };
    assert_eq!(any.type_url, HttpRbac::type_url());
    HttpRbac::decode(&any.value[..]).unwrap()
}

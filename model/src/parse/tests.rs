//! Tests of reading documents from text.

use super::*;
use crate::kind::Kind;
use crate::spec::{PolicyAction, Protocol, Spec};
use crate::testing::{EVERY_KIND, one};

fn errors(result: Result<Vec<Document>, DocumentErrors>) -> Vec<String> {
    let DocumentErrors(errors) = result.expect_err("the input has errors");
    errors.iter().map(DocumentError::to_string).collect()
}

const NODE: &str = "kind: Node\nmetadata: {name: web-1}\nspec: {}\n";

#[test]
fn every_kind_parses_and_validates() {
    let docs = parse_and_validate(EVERY_KIND).unwrap();
    let kinds: Vec<Kind> = docs.iter().map(|doc| doc.kind).collect();
    assert_eq!(kinds, Kind::ALL);
    assert!(docs.iter().all(|doc| doc.api_version == "palisade.dev/v1"));
}

#[test]
fn multi_document_yaml_skips_empty_documents() {
    let text = format!(
        "---\n{NODE}---\n---\n# just a comment\n---\n{}---\n",
        NODE.replace("web-1", "web-2")
    );
    let docs = parse_documents(&text).unwrap();
    let names: Vec<&str> = docs.iter().map(|doc| doc.metadata.name.as_str()).collect();
    assert_eq!(names, ["web-1", "web-2"]);
    assert_eq!(parse_documents("").unwrap(), []);
}

#[test]
fn json_object_and_array_both_parse() {
    let object = r#"{"kind": "Node", "metadata": {"name": "web-1"}, "spec": {}}"#;
    assert_eq!(parse_documents(object).unwrap().len(), 1);

    let array = format!("\n  [{object}, {}]", object.replace("web-1", "web-2"));
    let docs = parse_documents(&array).unwrap();
    assert_eq!(docs[1].metadata.name, "web-2");
}

#[test]
fn list_documents_stand_for_their_items() {
    let yaml = "apiVersion: v1\nkind: List\nitems:\n  - kind: Node\n    metadata: {name: a}\n    spec: {}\n  - kind: Node\n    metadata: {name: b}\n    spec: {}\n";
    let docs = parse_documents(yaml).unwrap();
    assert_eq!(docs.len(), 2);

    let json =
        r#"{"kind": "List", "items": [{"kind": "Node", "metadata": {"name": "c"}, "spec": {}}]}"#;
    assert_eq!(parse_documents(json).unwrap()[0].metadata.name, "c");
}

#[test]
fn list_item_errors_name_the_item() {
    let yaml = "kind: List\nitems:\n  - kind: Node\n    metadata: {name: a}\n    spec: {}\n  - kind: Node\n    metadata: {name: b}\n    spec: {adress: x}\n";
    assert_eq!(
        errors(parse_documents(yaml)),
        ["doc 1 (Node b): items[1].spec: unknown field `adress`, expected `address`"]
    );
    assert_eq!(
        errors(parse_documents("kind: List\nitems: {}\n")),
        ["doc 1: items: expected a list, found a mapping"]
    );
}

#[test]
fn yaml_syntax_error_names_document_line_and_column() {
    let text = format!(
        "{NODE}---\nkind: Service\nmetadata:\n  name: orders\n    namespace: shop\n---\n{NODE}"
    );
    assert_eq!(
        errors(parse_documents(&text)),
        ["doc 2: line 8 column 14: mapping values are not allowed in this context"]
    );
}

#[test]
fn json_syntax_error_names_line_and_column() {
    let text = "{\"kind\": \"Node\",\n \"metadata\": {\"name\": \"a\"}\n \"spec\": {}}";
    assert_eq!(
        errors(parse_documents(text)),
        ["doc 1: line 3 column 2: expected `,` or `}`"]
    );
}

#[test]
fn unknown_kind_lists_the_known_kinds() {
    let text = format!("{NODE}---\nkind: Servce\nmetadata: {{name: orders}}\nspec: {{}}\n");
    assert_eq!(
        errors(parse_documents(&text)),
        [
            "doc 2: kind: \"Servce\" is not a known kind (expected one of Node, Service, Workload, \
          AuthorizationPolicy, JwtIssuer, RequestAuthentication, AdminRole, AdminBinding)"
        ]
    );
}

#[test]
fn kind_aliases_are_refused_with_a_hint() {
    let text = "kind: svc\nmetadata: {name: orders}\nspec: {ports: [{port: 80}]}\n";
    assert_eq!(
        errors(parse_documents(text)),
        ["doc 1: kind: \"svc\" is not a known kind (did you mean \"Service\"?)"]
    );
}

#[test]
fn unknown_spec_field_names_its_path() {
    let text = "kind: Service\nmetadata: {name: orders, namespace: shop}\nspec:\n  ports:\n    - port: 80\n      prot: http\n";
    assert_eq!(
        errors(parse_documents(text)),
        [
            "doc 1 (Service shop/orders): spec.ports[0]: unknown field `prot`, expected one of \
          `name`, `port`, `protocol`"
        ]
    );
}

#[test]
fn type_errors_name_their_path() {
    let text =
        "kind: Service\nmetadata: {name: orders}\nspec:\n  ports: [{port: 80}, {port: http}]\n";
    assert_eq!(
        errors(parse_documents(text)),
        [
            "doc 1 (Service default/orders): spec.ports[1].port: invalid type: string \"http\", \
          expected u16"
        ]
    );
    let text = "kind: Node\nmetadata: {name: web-1, labels: {tier: 1}}\nspec: {}\n";
    assert_eq!(
        errors(parse_documents(text)),
        ["doc 1 (Node web-1): metadata.labels.tier: invalid type: integer `1`, expected a string"]
    );
}

#[test]
fn missing_parts_are_named() {
    let cases = [
        (
            "metadata: {name: a}\nspec: {}\n",
            "doc 1: missing field `kind`",
        ),
        ("kind: Node\nspec: {}\n", "doc 1: missing field `metadata`"),
        (
            "kind: Node\nmetadata: {namespace: x}\nspec: {}\n",
            "doc 1: metadata: missing field `name`",
        ),
        (
            "kind: Node\nmetadata: {name: a}\n",
            "doc 1 (Node a): missing field `spec`",
        ),
        (
            "just a string\n",
            "doc 1: expected a mapping, found a string",
        ),
        (
            "kind: 7\n",
            "doc 1: kind: expected a string, found a number",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(errors(parse_documents(text)), [expected], "{text}");
    }
}

#[test]
fn unknown_top_level_fields_and_versions_are_refused() {
    let text = format!("apiVersion: palisade.dev/v2\nstatus: {{}}\n{NODE}");
    assert_eq!(
        errors(parse_documents(&text)),
        [
            "doc 1 (Node web-1): unknown field `status`, expected one of `apiVersion`, `kind`, \
             `metadata`, `spec`",
            "doc 1 (Node web-1): apiVersion: \"palisade.dev/v2\" is not supported (expected \
             \"palisade.dev/v1\")",
        ]
    );
}

#[test]
fn cluster_scoped_kinds_take_no_namespace() {
    let text = "kind: Node\nmetadata: {name: web-1, namespace: shop}\nspec: {}\n";
    assert_eq!(
        errors(parse_documents(text)),
        ["doc 1 (Node web-1): metadata.namespace: Node is cluster-scoped and takes no namespace"]
    );
}

#[test]
fn namespaced_kinds_default_to_the_default_namespace() {
    let doc = one("kind: Service\nmetadata: {name: orders}\nspec: {ports: [{port: 80}]}\n");
    assert_eq!(doc.metadata.namespace, "default");
    assert_eq!(doc.key().store_key(), "Service/default/orders");

    let Spec::Service(spec) = &doc.spec else {
        panic!("not a service")
    };
    assert_eq!(spec.ports[0].protocol, Protocol::Tcp);
}

#[test]
fn parse_fills_spec_defaults() {
    let doc = one("kind: AuthorizationPolicy\nmetadata: {name: p}\nspec: {}\n");
    let Spec::AuthorizationPolicy(spec) = &doc.spec else {
        panic!("not a policy")
    };
    assert_eq!(spec.action, PolicyAction::Allow);
}

const THREE_DOCUMENTS: &str = r#"
kind: Service
metadata: {name: orders, namespace: shop}
spec:
  ports: [{port: 8080, protocol: http}]
---
kind: Node
metadata: {name: web-1}
spec: {address: 10.0.0.5}
---
kind: AuthorizationPolicy
metadata:
  name: orders
  namespace: shop
spec:
  targetService: orders
  rules:
    - from:
        - namespaces: [shop]
        - ipBlocks: ["10.0.0.0/33"]
"#;

#[test]
fn validation_errors_name_document_resource_and_path() {
    assert_eq!(parse_documents(THREE_DOCUMENTS).unwrap().len(), 3);
    assert_eq!(
        errors(parse_and_validate(THREE_DOCUMENTS)),
        [
            "doc 3 (AuthorizationPolicy shop/orders): spec.rules[0].from[1].ipBlocks[0]: \
          \"10.0.0.0/33\" is not a CIDR"
        ]
    );
}

#[test]
fn parse_and_validation_errors_are_reported_together_in_order() {
    let text =
        format!("{NODE}---\nkind: Node\nmetadata: {{name: Web}}\nspec: {{}}\n---\nkind: Nod\n");
    assert_eq!(
        errors(parse_and_validate(&text)),
        [
            "doc 3: kind: \"Nod\" is not a known kind (expected one of Node, Service, Workload, \
             AuthorizationPolicy, JwtIssuer, RequestAuthentication, AdminRole, AdminBinding)",
            "doc 2 (Node Web): metadata.name: \"Web\" is not a DNS-1123 subdomain (labels of \
             lowercase letters, digits and '-', starting and ending with a letter or digit, at \
             most 63 characters, joined by '.', at most 253 characters)",
        ]
    );
}

#[test]
fn at_most_the_error_limit_is_reported() {
    let text = "kind: Nope\n---\n".repeat(MAX_ERRORS + 20);
    let DocumentErrors(errors) = parse_documents(&text).unwrap_err();
    assert_eq!(errors.len(), MAX_ERRORS);
    assert_eq!(errors.last().unwrap().index, MAX_ERRORS);
}

#[test]
fn oversized_input_is_refused_whole() {
    let text = format!("{NODE}#{}\n", "x".repeat(MAX_TEXT_BYTES));
    let errors = errors(parse_documents(&text));
    assert_eq!(
        errors,
        [format!(
            "input is {} bytes; the limit is 16 MiB",
            text.len()
        )]
    );
}

#[test]
fn too_many_list_items_refuse_the_input() {
    let item = r#"{"kind":"Node","metadata":{"name":"a"},"spec":{}},"#;
    let text = format!(
        r#"{{"kind":"List","items":[{}{{}}]}}"#,
        item.repeat(MAX_DOCUMENTS)
    );
    let errors = errors(parse_documents(&text));
    assert_eq!(errors, ["input holds more than 100000 documents"]);
}

#[test]
fn duplicate_keys_are_refused() {
    let text = "kind: Node\nmetadata:\n  name: a\n  name: b\nspec: {}\n";
    assert_eq!(
        errors(parse_documents(text)),
        ["doc 1: line 3 column 3: metadata: duplicate key \"name\""]
    );
}

#[test]
fn from_json_reads_exactly_one_document() {
    let doc = Document::from_json(r#"{"kind":"Node","metadata":{"name":"a"},"spec":{}}"#).unwrap();
    assert_eq!(doc.key().store_key(), "Node//a");

    let err = Document::from_json("[]").unwrap_err();
    assert_eq!(err.to_string(), "expected a mapping, found a list");
    let err = Document::from_json(r#"{"kind":"Node"} {}"#).unwrap_err();
    assert_eq!(
        err,
        ParseError::Syntax("line 1 column 17: trailing characters".into())
    );
    let err = Document::from_json(r#"{"kind":"List","items":[]}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kind: a List may only hold resources, not be one"
    );
}

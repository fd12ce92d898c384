//! Tests of documents: serialization, keys, references and content comparison.

use super::*;
use crate::spec::{AdminBindingSpec, NodeSpec};
use crate::testing::{every_kind, one};

#[test]
fn json_round_trip_gives_back_the_same_document() {
    for doc in every_kind() {
        let json = doc.to_json();
        assert_eq!(Document::from_json(&json).unwrap(), doc, "{json}");
    }
}

#[test]
fn yaml_round_trip_gives_back_the_same_documents() {
    let docs = every_kind();
    let yaml: Vec<String> = docs.iter().map(Document::to_yaml).collect();
    assert_eq!(crate::parse_documents(&yaml.join("---\n")).unwrap(), docs);
}

#[test]
fn json_puts_api_version_kind_metadata_spec_in_order() {
    let mut doc = one(
        "kind: Service\nmetadata: {name: orders, namespace: shop}\nspec: {ports: [{port: 80}]}\n",
    );
    doc.metadata.revision = Some(7);
    assert_eq!(
        doc.to_json(),
        r#"{"apiVersion":"palisade.dev/v1","kind":"Service","metadata":{"name":"orders","namespace":"shop","revision":7},"spec":{"ports":[{"port":80,"protocol":"tcp"}]}}"#
    );
}

#[test]
fn serde_deserialize_goes_through_the_parser() {
    let doc: Document =
        serde_json::from_str(r#"{"kind":"Node","metadata":{"name":"web-1"},"spec":{}}"#).unwrap();
    assert_eq!(doc.key(), ResourceKey::new(Kind::Node, "", "web-1"));

    let err = serde_json::from_str::<Document>(
        r#"{"kind":"Node","metadata":{"name":"a"},"spec":{"x":1}}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Node a: spec: unknown field `x`, expected `address`"
    );
}

#[test]
fn references_name_what_must_exist() {
    let keys: Vec<Vec<String>> = every_kind()
        .iter()
        .map(|doc| {
            doc.references()
                .iter()
                .map(ResourceKey::store_key)
                .collect()
        })
        .collect();

    let none: [&str; 0] = [];
    assert_eq!(keys[0], none, "Node");
    assert_eq!(keys[1], none, "Service");
    assert_eq!(
        keys[2],
        ["Service/shop/orders", "Node//web-1.example.com"],
        "Workload"
    );
    assert_eq!(keys[3], ["Service/shop/orders"], "AuthorizationPolicy");
    assert_eq!(keys[4], none, "JwtIssuer");
    assert_eq!(
        keys[5],
        ["Service/shop/orders", "JwtIssuer/shop/corp"],
        "RequestAuthentication"
    );
    assert_eq!(keys[6], none, "AdminRole");
    assert_eq!(keys[7], ["AdminRole//shop-operator"], "AdminBinding");
}

#[test]
fn builtin_roles_and_empty_targets_reference_nothing() {
    let binding = AdminBindingSpec {
        role: "viewer".into(),
        ..AdminBindingSpec::default()
    };
    let doc = Document::new(Metadata::new("", "b"), Spec::AdminBinding(binding));
    assert_eq!(doc.references(), []);

    let policy =
        one("kind: AuthorizationPolicy\nmetadata: {name: p}\nspec: {targetService: \"\"}\n");
    assert_eq!(policy.references(), []);
}

#[test]
fn same_content_ignores_store_revisions_only() {
    let doc = every_kind().remove(1);
    let mut stored = doc.clone();
    stored.metadata.revision = Some(42);
    stored.metadata.create_revision = Some(40);
    assert!(doc.same_content(&stored));
    assert_ne!(doc, stored);

    stored.metadata.labels.insert("tier".into(), "front".into());
    assert!(!doc.same_content(&stored));
}

#[test]
fn new_takes_kind_from_spec_and_key_ignores_namespace_when_cluster_scoped() {
    let doc = Document::new(
        Metadata::new("stray", "web-1"),
        Spec::Node(NodeSpec::default()),
    );
    assert_eq!(
        (doc.kind, doc.api_version.as_str()),
        (Kind::Node, API_VERSION)
    );
    assert_eq!(doc.key().store_key(), "Node//web-1");
}

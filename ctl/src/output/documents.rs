//! Resource documents as YAML or JSON.

use palisade_model::API_VERSION;
use palisade_proto::admin::Resource;
use serde_json::{Value, json};
use thiserror::Error;

use super::resource_name;

/// The server sent a document that is not JSON.
#[derive(Debug, Error)]
#[error("the control plane sent an unreadable document for {resource}")]
pub struct DocumentError {
    resource: String,
    source: serde_json::Error,
}

/// The resource's document, parsed.
pub fn parse_document(resource: &Resource) -> Result<Value, DocumentError> {
    serde_json::from_str(&resource.document).map_err(|source| DocumentError {
        resource: resource_name(&resource.kind, &resource.namespace, &resource.name),
        source,
    })
}

/// A `kind: List` document holding `items`, as `palisadectl apply` reads back.
pub fn list_document(items: Vec<Value>) -> Value {
    json!({ "apiVersion": API_VERSION, "kind": "List", "items": items })
}

/// Indented JSON with a final newline.
pub fn to_json(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values always serialize");
    text.push('\n');
    text
}

/// YAML with a final newline.
pub fn to_yaml(value: &Value) -> String {
    serde_yaml::to_string(value).expect("JSON values have string keys and always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_their_field_order() {
        let resource = Resource {
            kind: "Node".into(),
            name: "n1".into(),
            document: r#"{"kind":"Node","metadata":{"name":"n1"},"spec":{}}"#.into(),
            ..Resource::default()
        };

        let document = parse_document(&resource).unwrap();

        assert_eq!(
            to_yaml(&document),
            "kind: Node\nmetadata:\n  name: n1\nspec: {}\n"
        );
    }

    #[test]
    fn unreadable_document_names_the_resource() {
        let resource = Resource {
            kind: "Node".into(),
            name: "n1".into(),
            ..Resource::default()
        };

        let err = parse_document(&resource).unwrap_err();

        assert_eq!(
            err.to_string(),
            "the control plane sent an unreadable document for Node n1"
        );
    }
}

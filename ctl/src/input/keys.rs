//! Which resources a file describes: the kind, namespace and name of each
//! document, for deleting what a file once applied.

use palisade_model::Kind;
use serde::Deserialize;
use serde_json::Value;

use super::{InputError, InputFile, looks_like_json, without_bom};

/// Names one resource described in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentKey {
    pub kind: Kind,
    /// As written; empty when the document gives none or the kind is
    /// cluster-scoped.
    pub namespace: String,
    pub name: String,
}

/// The key of every document in `input`, in order. Arrays and `kind: List`
/// documents stand for their items; empty documents are skipped.
pub fn document_keys(input: &InputFile) -> Result<Vec<DocumentKey>, InputError> {
    let mut documents = Vec::new();
    for value in values(input)? {
        flatten(value, &mut documents);
    }

    let key = |(index, document): (usize, Value)| {
        key_of(&document).map_err(|reason| InputError::Unnamed {
            name: input.name.clone(),
            index: index + 1,
            reason,
        })
    };
    documents.into_iter().enumerate().map(key).collect()
}

fn values(input: &InputFile) -> Result<Vec<Value>, InputError> {
    let text = without_bom(&input.text);
    if looks_like_json(text) {
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        let json = |source| InputError::Json {
            name: input.name.clone(),
            source,
        };
        return stream.map(|value| value.map_err(json)).collect();
    }

    let yaml = |source| InputError::Yaml {
        name: input.name.clone(),
        source,
    };
    serde_yaml::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).map_err(yaml))
        .collect()
}

fn flatten(value: Value, documents: &mut Vec<Value>) {
    match value {
        Value::Null => {}
        Value::Array(items) => items.into_iter().for_each(|item| flatten(item, documents)),
        Value::Object(mut fields) if fields.get("kind") == Some(&Value::from("List")) => {
            if let Some(Value::Array(items)) = fields.remove("items") {
                items.into_iter().for_each(|item| flatten(item, documents));
            }
        }
        value => documents.push(value),
    }
}

fn key_of(document: &Value) -> Result<DocumentKey, String> {
    let text = |pointer| {
        document
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };

    let kind = match text("/kind") {
        "" => return Err("has no kind".to_owned()),
        kind => Kind::from_exact(kind).ok_or(format!("has an unknown kind {kind:?}"))?,
    };
    let name = match text("/metadata/name") {
        "" => return Err("has no metadata.name".to_owned()),
        name => name.to_owned(),
    };
    let namespace = if kind.is_namespaced() {
        text("/metadata/namespace")
    } else {
        ""
    };

    Ok(DocumentKey {
        kind,
        namespace: namespace.to_owned(),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(name: &str, text: &str) -> Result<Vec<DocumentKey>, InputError> {
        document_keys(&InputFile {
            name: name.to_owned(),
            text: text.to_owned(),
        })
    }

    fn key(kind: Kind, namespace: &str, name: &str) -> DocumentKey {
        DocumentKey {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    #[test]
    fn yaml_documents_give_their_keys_in_order() {
        let text = "\
kind: Service
metadata: {name: web, namespace: shop}
---
---
kind: Node
metadata: {name: n1, namespace: ignored}
---
kind: Workload
metadata: {name: w1}
";
        assert_eq!(
            keys("all.yaml", text).unwrap(),
            [
                key(Kind::Service, "shop", "web"),
                key(Kind::Node, "", "n1"),
                key(Kind::Workload, "", "w1"),
            ]
        );
    }

    #[test]
    fn lists_and_json_arrays_stand_for_their_items() {
        let list = "kind: List\nitems:\n\
                    - {kind: Node, metadata: {name: a}}\n\
                    - {kind: Node, metadata: {name: b}}\n";
        let array = r#"[{"kind": "AdminRole", "metadata": {"name": "ops"}}]"#;

        assert_eq!(
            keys("l.yaml", list).unwrap(),
            [key(Kind::Node, "", "a"), key(Kind::Node, "", "b")]
        );
        assert_eq!(
            keys("a.json", array).unwrap(),
            [key(Kind::AdminRole, "", "ops")]
        );
    }

    #[test]
    fn document_without_name_is_reported_by_position() {
        let text = "kind: Node\nmetadata: {name: a}\n---\nkind: Node\nmetadata: {}\n";

        let err = keys("nodes.yaml", text).unwrap_err();

        assert_eq!(
            err.to_string(),
            "document 2 of nodes.yaml has no metadata.name"
        );
    }

    #[test]
    fn unknown_kind_is_refused() {
        let err = keys("x.yaml", "kind: Servce\nmetadata: {name: a}\n").unwrap_err();

        assert_eq!(
            err.to_string(),
            "document 1 of x.yaml has an unknown kind \"Servce\""
        );
    }
}

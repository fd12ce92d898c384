//! Turning one top-level value into documents: the kind first, then the
//! metadata and the spec of that kind, each error with the path at fault.

use serde_json::{Map, Value};
use serde_path_to_error::Segment;

use crate::document::{API_VERSION, Document};
use crate::key::ResourceKey;
use crate::kind::{Kind, UnknownKind};
use crate::metadata::Metadata;
use crate::spec::Spec;
use crate::validate::FieldError;

use super::ParseError;

/// Where a document sits in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The 1-based index of the top-level document.
    pub index: usize,
    /// The position in the `items` of a `kind: List` document.
    pub item: Option<usize>,
}

impl Origin {
    /// The error with its path made relative to the top-level document.
    pub(crate) fn qualify(&self, err: &FieldError) -> FieldError {
        let Some(item) = self.item else {
            return err.clone();
        };

        let path = match err.path.as_str() {
            "" => format!("items[{item}]"),
            path => format!("items[{item}].{path}"),
        };
        FieldError::new(path, err.message.clone())
    }
}

const LIST: &str = "List";
const DOCUMENT_FIELDS: [&str; 4] = ["apiVersion", "kind", "metadata", "spec"];
const LIST_FIELDS: [&str; 4] = ["apiVersion", "kind", "metadata", "items"];

/// Decodes a top-level value: one document, or each item of a `kind: List`.
pub(crate) fn decode_entry(
    index: usize,
    value: Value,
) -> Vec<(Origin, Result<Document, ParseError>)> {
    let top = Origin { index, item: None };
    if value.get("kind").and_then(Value::as_str) != Some(LIST) {
        return vec![(top, decode_one(value))];
    }

    match list_items(value) {
        Ok(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                (
                    Origin {
                        index,
                        item: Some(i),
                    },
                    decode_one(item),
                )
            })
            .collect(),
        Err(err) => vec![(top, Err(err))],
    }
}

fn list_items(value: Value) -> Result<Vec<Value>, ParseError> {
    let Value::Object(mut fields) = value else {
        return Ok(Vec::new());
    };

    let mut errors = unknown_fields(&fields, &LIST_FIELDS);
    match fields.remove("items") {
        Some(Value::Array(items)) if errors.is_empty() => return Ok(items),
        Some(Value::Array(_)) => {}
        Some(other) => errors.push(FieldError::new("items", expected("a list", &other))),
        None => errors.push(FieldError::new("", "missing field `items`")),
    }
    Err(ParseError::Invalid {
        resource: None,
        errors,
    })
}

/// Decodes a value holding exactly one resource.
pub(crate) fn decode_one(value: Value) -> Result<Document, ParseError> {
    let Value::Object(mut fields) = value else {
        let err = FieldError::new("", expected("a mapping", &value));
        return Err(ParseError::Invalid {
            resource: None,
            errors: vec![err],
        });
    };

    let kind = read_kind(fields.get("kind")).map_err(|err| ParseError::Invalid {
        resource: None,
        errors: vec![err],
    })?;
    let resource = resource_name(kind, fields.get("metadata"));

    let mut errors = unknown_fields(&fields, &DOCUMENT_FIELDS);
    let api_version = read_api_version(fields.remove("apiVersion"), &mut errors);
    let metadata = read_metadata(kind, fields.remove("metadata"), &mut errors);
    let spec = read_spec(kind, fields.remove("spec"), &mut errors);

    match (metadata, spec) {
        (Some(metadata), Some(spec)) if errors.is_empty() => Ok(Document {
            api_version,
            kind,
            metadata,
            spec,
        }),
        _ => Err(ParseError::Invalid { resource, errors }),
    }
}

fn read_kind(value: Option<&Value>) -> Result<Kind, FieldError> {
    let name = match value {
        None => return Err(FieldError::new("", "missing field `kind`")),
        Some(Value::String(name)) => name,
        Some(other) => return Err(FieldError::new("kind", expected("a string", other))),
    };

    if let Some(kind) = Kind::from_exact(name) {
        return Ok(kind);
    }

    let message = match Kind::parse(name) {
        _ if name == LIST => "a List may only hold resources, not be one".to_owned(),
        Some(kind) => format!(
            "{name:?} is not a known kind (did you mean {:?}?)",
            kind.as_str()
        ),
        None => UnknownKind(name.clone()).to_string(),
    };
    Err(FieldError::new("kind", message))
}

/// `Service shop/orders`, when the kind and a name are known.
fn resource_name(kind: Kind, metadata: Option<&Value>) -> Option<String> {
    let metadata = metadata?;
    let name = metadata
        .get("name")?
        .as_str()
        .filter(|name| !name.is_empty())?;

    let namespace = match metadata.get("namespace").and_then(Value::as_str) {
        _ if !kind.is_namespaced() => "",
        Some(namespace) if !namespace.is_empty() => namespace,
        _ => "default",
    };
    Some(ResourceKey::new(kind, namespace, name).to_string())
}

fn read_api_version(value: Option<Value>, errors: &mut Vec<FieldError>) -> String {
    match value {
        None => return API_VERSION.to_owned(),
        Some(Value::String(version)) if version == API_VERSION => return version,
        Some(Value::String(version)) => {
            let message = format!("{version:?} is not supported (expected {API_VERSION:?})");
            errors.push(FieldError::new("apiVersion", message));
        }
        Some(other) => errors.push(FieldError::new("apiVersion", expected("a string", &other))),
    }
    API_VERSION.to_owned()
}

fn read_metadata(
    kind: Kind,
    value: Option<Value>,
    errors: &mut Vec<FieldError>,
) -> Option<Metadata> {
    let Some(value) = value else {
        errors.push(FieldError::new("", "missing field `metadata`"));
        return None;
    };

    let mut metadata: Metadata = serde_path_to_error::deserialize(&value)
        .map_err(|err| errors.push(located("metadata", err)))
        .ok()?;

    if kind.is_namespaced() && metadata.namespace.is_empty() {
        metadata.namespace = "default".to_owned();
    } else if !kind.is_namespaced() && !metadata.namespace.is_empty() {
        let message = format!("{kind} is cluster-scoped and takes no namespace");
        errors.push(FieldError::new("metadata.namespace", message));
    }
    Some(metadata)
}

fn read_spec(kind: Kind, value: Option<Value>, errors: &mut Vec<FieldError>) -> Option<Spec> {
    let Some(value) = value else {
        errors.push(FieldError::new("", "missing field `spec`"));
        return None;
    };

    Spec::from_value(kind, &value)
        .map_err(|err| errors.push(located("spec", err)))
        .ok()
}

/// A deserialization error at its full path, e.g. `spec.ports[0].port`. An
/// unknown field is reported at the mapping that holds it.
fn located(root: &str, err: serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let message = err.inner().to_string();
    let mut segments: Vec<&Segment> = err.path().iter().collect();
    if message.starts_with("unknown field") && matches!(segments.last(), Some(Segment::Map { .. }))
    {
        segments.pop();
    }

    let mut path = root.to_owned();
    for segment in segments {
        if !matches!(segment, Segment::Seq { .. }) {
            path.push('.');
        }
        path.push_str(&segment.to_string());
    }
    FieldError::new(path, message)
}

fn unknown_fields(fields: &Map<String, Value>, allowed: &[&str]) -> Vec<FieldError> {
    let expected: Vec<String> = allowed.iter().map(|name| format!("`{name}`")).collect();
    fields
        .keys()
        .filter(|key| !allowed.contains(&key.as_str()))
        .map(|key| {
            let message = format!(
                "unknown field `{key}`, expected one of {}",
                expected.join(", ")
            );
            FieldError::new("", message)
        })
        .collect()
}

fn expected(what: &str, found: &Value) -> String {
    let found = match found {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    };
    format!("expected {what}, found {found}")
}

//! The table columns particular to each kind, read from the document.

use palisade_model::Kind;
use serde_json::Value;

/// A column: its header and how to read its cell from a document.
pub struct Column {
    pub header: &'static str,
    pub value: fn(&Value) -> String,
}

/// Shown when a document has no value for a column.
const NONE: &str = "<none>";

/// The extra columns for `kind`, after NAME and REVISION.
pub fn for_kind(kind: Kind) -> &'static [Column] {
    match kind {
        Kind::Node => &[Column {
            header: "ADDRESS",
            value: |d| text(d, "/spec/address"),
        }],
        Kind::Service => &[Column {
            header: "PORTS",
            value: ports,
        }],
        Kind::Workload => &[
            Column {
                header: "SERVICE",
                value: |d| text(d, "/spec/service"),
            },
            Column {
                header: "NODE",
                value: |d| text(d, "/spec/node"),
            },
        ],
        Kind::AuthorizationPolicy => &[
            Column {
                header: "TARGET",
                value: |d| text(d, "/spec/targetService"),
            },
            Column {
                header: "ACTION",
                value: |d| text(d, "/spec/action"),
            },
        ],
        Kind::JwtIssuer => &[Column {
            header: "ISSUER",
            value: |d| text(d, "/spec/issuer"),
        }],
        Kind::RequestAuthentication => &[Column {
            header: "TARGET",
            value: |d| text(d, "/spec/targetService"),
        }],
        Kind::AdminRole => &[Column {
            header: "RULES",
            value: |d| count(d, "/spec/rules"),
        }],
        Kind::AdminBinding => &[
            Column {
                header: "ROLE",
                value: |d| text(d, "/spec/role"),
            },
            Column {
                header: "SUBJECTS",
                value: |d| joined(d, "/spec/subjects"),
            },
            Column {
                header: "NAMESPACES",
                value: |d| joined(d, "/spec/namespaces"),
            },
        ],
    }
}

fn text(document: &Value, pointer: &str) -> String {
    match document.pointer(pointer) {
        Some(Value::String(text)) if !text.is_empty() => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => NONE.to_owned(),
    }
}

fn joined(document: &Value, pointer: &str) -> String {
    let items = document.pointer(pointer).and_then(Value::as_array);
    let texts: Vec<&str> = items
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if texts.is_empty() {
        NONE.to_owned()
    } else {
        texts.join(",")
    }
}

fn count(document: &Value, pointer: &str) -> String {
    let items = document.pointer(pointer).and_then(Value::as_array);
    items.map_or(0, Vec::len).to_string()
}

/// `8080/http,9090/grpc`.
fn ports(document: &Value) -> String {
    let ports = document.pointer("/spec/ports").and_then(Value::as_array);
    let port = |port: &Value| match (port.get("port"), port.get("protocol")) {
        (Some(number), Some(Value::String(protocol))) => format!("{number}/{protocol}"),
        (Some(number), _) => number.to_string(),
        (None, _) => "?".to_owned(),
    };
    let texts: Vec<String> = ports.into_iter().flatten().map(port).collect();
    if texts.is_empty() {
        NONE.to_owned()
    } else {
        texts.join(",")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cells(kind: Kind, document: Value) -> Vec<String> {
        for_kind(kind)
            .iter()
            .map(|column| (column.value)(&document))
            .collect()
    }

    #[test]
    fn binding_shows_role_and_subjects() {
        let document =
            json!({"spec": {"role": "viewer", "subjects": ["spiffe://a/x", "spiffe://a/y"]}});

        assert_eq!(
            cells(Kind::AdminBinding, document),
            ["viewer", "spiffe://a/x,spiffe://a/y", "<none>"]
        );
    }

    #[test]
    fn missing_values_show_as_none() {
        assert_eq!(cells(Kind::Node, json!({"spec": {}})), ["<none>"]);
        assert_eq!(cells(Kind::Service, json!({})), ["<none>"]);
        assert_eq!(cells(Kind::AdminRole, json!({})), ["0"]);
    }
}

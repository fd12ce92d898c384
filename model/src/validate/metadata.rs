//! Checks on `metadata`: the name and namespace rules of each kind, labels and
//! annotation keys.

use std::collections::BTreeMap;

use super::{MAX_LIST_ITEMS, Problems, names};
use crate::kind::Kind;
use crate::metadata::Metadata;

pub(super) fn check(kind: Kind, metadata: &Metadata, p: &mut Problems) {
    check_name(kind, &metadata.name, p);
    check_namespace(kind, &metadata.namespace, p);

    check_keys("metadata.labels", &metadata.labels, p);
    for (key, value) in &metadata.labels {
        p.check(&format!("metadata.labels.{key}"), names::label_value(value));
    }
    check_keys("metadata.annotations", &metadata.annotations, p);
}

fn check_name(kind: Kind, name: &str, p: &mut Problems) {
    if name.is_empty() {
        p.add("metadata.name", "must be set");
    } else if kind == Kind::Node {
        p.check("metadata.name", names::subdomain(name));
    } else {
        p.check("metadata.name", names::label(name));
    }
}

fn check_namespace(kind: Kind, namespace: &str, p: &mut Problems) {
    match (kind.is_namespaced(), namespace.is_empty()) {
        (true, true) => p.add("metadata.namespace", "must be set"),
        (true, false) => p.check("metadata.namespace", names::label(namespace)),
        (false, false) => {
            p.add(
                "metadata.namespace",
                format!("{kind} is cluster-scoped and takes no namespace"),
            );
        }
        (false, true) => {}
    }
}

fn check_keys(path: &str, map: &BTreeMap<String, String>, p: &mut Problems) {
    if map.len() > MAX_LIST_ITEMS {
        p.add(
            path,
            format!(
                "has {} entries; at most {MAX_LIST_ITEMS} are allowed",
                map.len()
            ),
        );
        return;
    }
    for key in map.keys() {
        p.check(path, names::label_key(key));
    }
}

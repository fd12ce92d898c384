//! Checks on an AdminRole and an AdminBinding.

use super::{Problems, names, spiffe};
use crate::kind::Kind;
use crate::spec::{ADMIN_VERBS, AdminBindingSpec, AdminRoleSpec, AdminRule, BUILTIN_ROLES};

pub(super) fn check_role(spec: &AdminRoleSpec, p: &mut Problems) {
    p.required("spec.rules", &spec.rules, "rule");
    if !p.length("spec.rules", &spec.rules) {
        return;
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        check_rule(&format!("spec.rules[{i}]"), rule, p);
    }
}

fn check_rule(path: &str, rule: &AdminRule, p: &mut Problems) {
    let verbs = format!("{path}.verbs");
    p.required(&verbs, &rule.verbs, "verb");
    p.each(&verbs, &rule.verbs, |verb| self::verb(verb));

    let kinds = format!("{path}.kinds");
    p.required(&kinds, &rule.kinds, "kind");
    p.each(&kinds, &rule.kinds, |kind| self::kind(kind));

    p.each(&format!("{path}.namespaces"), &rule.namespaces, |ns| {
        names::label_or_any(ns)
    });
}

fn verb(verb: &str) -> Result<(), String> {
    if verb == "*" || ADMIN_VERBS.contains(&verb) {
        return Ok(());
    }
    Err(format!(
        "{verb:?} is not a verb (expected one of {} or \"*\")",
        ADMIN_VERBS.join(", ")
    ))
}

fn kind(name: &str) -> Result<(), String> {
    if name == "*" || Kind::from_exact(name).is_some() {
        return Ok(());
    }
    match Kind::parse(name) {
        Some(kind) => Err(format!(
            "{name:?} is not a kind name (did you mean {:?}?)",
            kind.as_str()
        )),
        None => Err(format!(
            "{name:?} is not a kind name (expected a kind such as \"Service\", or \"*\")"
        )),
    }
}

pub(super) fn check_binding(spec: &AdminBindingSpec, p: &mut Problems) {
    if !spec.has_builtin_role() {
        p.check("spec.role", role(&spec.role));
    }

    p.required("spec.subjects", &spec.subjects, "subject");
    p.each("spec.subjects", &spec.subjects, |subject| {
        spiffe::id_or_prefix(subject)
    });
    p.each("spec.namespaces", &spec.namespaces, |ns| names::label(ns));
}

fn role(name: &str) -> Result<(), String> {
    if names::is_dns1123_label(name) {
        return Ok(());
    }
    Err(format!(
        "{name:?} is not a role (expected {} or the name of an AdminRole)",
        BUILTIN_ROLES.join(", ")
    ))
}

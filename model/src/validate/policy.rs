//! Checks on an AuthorizationPolicy: its target and each rule's sources,
//! operations and conditions.

use super::{Problems, http, names, net, spiffe};
use crate::spec::{AuthorizationPolicySpec, Condition, Operation, Rule, Source};

pub(super) fn check(spec: &AuthorizationPolicySpec, p: &mut Problems) {
    check_target("spec.targetService", spec.target_service.as_deref(), p);

    if !p.length("spec.rules", &spec.rules) {
        return;
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        check_rule(&format!("spec.rules[{i}]"), rule, p);
    }
}

/// A target Service name; unset or empty means every service.
pub(super) fn check_target(path: &str, target: Option<&str>, p: &mut Problems) {
    if let Some(service) = target.filter(|service| !service.is_empty()) {
        p.check(path, names::label(service));
    }
}

fn check_rule(path: &str, rule: &Rule, p: &mut Problems) {
    if p.length(&format!("{path}.from"), &rule.from) {
        for (i, source) in rule.from.iter().enumerate() {
            check_source(&format!("{path}.from[{i}]"), source, p);
        }
    }

    if p.length(&format!("{path}.to"), &rule.to) {
        for (i, operation) in rule.to.iter().enumerate() {
            check_operation(&format!("{path}.to[{i}]"), operation, p);
        }
    }

    if p.length(&format!("{path}.when"), &rule.when) {
        for (i, condition) in rule.when.iter().enumerate() {
            check_condition(&format!("{path}.when[{i}]"), condition, p);
        }
    }
}

fn check_source(path: &str, source: &Source, p: &mut Problems) {
    if source.is_empty() {
        p.add(
            path,
            "must name at least one of identities, notIdentities, namespaces, notNamespaces, \
             ipBlocks, notIpBlocks, principals, notPrincipals",
        );
    }

    let identity = |s: &String| spiffe::identity_pattern(s);
    p.each(&format!("{path}.identities"), &source.identities, identity);
    p.each(
        &format!("{path}.notIdentities"),
        &source.not_identities,
        identity,
    );

    let namespace = |s: &String| names::label_or_any(s);
    p.each(&format!("{path}.namespaces"), &source.namespaces, namespace);
    p.each(
        &format!("{path}.notNamespaces"),
        &source.not_namespaces,
        namespace,
    );

    let block = |s: &String| net::ip_block(s);
    p.each(&format!("{path}.ipBlocks"), &source.ip_blocks, block);
    p.each(&format!("{path}.notIpBlocks"), &source.not_ip_blocks, block);

    let principal = |s: &String| principal(s);
    p.each(&format!("{path}.principals"), &source.principals, principal);
    p.each(
        &format!("{path}.notPrincipals"),
        &source.not_principals,
        principal,
    );
}

/// A token principal `<iss>/<sub>`, with an optional leading or trailing `*`.
fn principal(s: &str) -> Result<(), String> {
    let inner = s
        .strip_suffix('*')
        .or_else(|| s.strip_prefix('*'))
        .unwrap_or(s);
    let wildcard = inner.len() != s.len();

    let problem = if s.is_empty() {
        "it is empty"
    } else if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "whitespace is not allowed"
    } else if inner.contains('*') {
        "'*' may only be the first or the last character"
    } else if !wildcard && !s.contains('/') {
        "expected <issuer>/<subject>"
    } else {
        return Ok(());
    };
    Err(format!("{s:?} is not a principal: {problem}"))
}

fn check_operation(path: &str, operation: &Operation, p: &mut Problems) {
    if operation.is_empty() {
        p.add(
            path,
            "must name at least one of ports, notPorts, methods, notMethods, paths, notPaths",
        );
    }

    p.each(&format!("{path}.ports"), &operation.ports, |port| {
        net::port(*port)
    });
    p.each(&format!("{path}.notPorts"), &operation.not_ports, |port| {
        net::port(*port)
    });
    p.each(&format!("{path}.methods"), &operation.methods, |m| {
        http::method(m)
    });
    p.each(&format!("{path}.notMethods"), &operation.not_methods, |m| {
        http::method(m)
    });
    p.each(&format!("{path}.paths"), &operation.paths, |s| {
        http::path_pattern(s)
    });
    p.each(&format!("{path}.notPaths"), &operation.not_paths, |s| {
        http::path_pattern(s)
    });
}

fn check_condition(path: &str, condition: &Condition, p: &mut Problems) {
    if let Err(message) = http::condition_key(&condition.key) {
        p.add(format!("{path}.key"), message);
    }
    if condition.values.is_empty() && condition.not_values.is_empty() {
        p.add(path, "must name at least one of values, notValues");
    }

    let check = value_check(&condition.key);
    p.each(&format!("{path}.values"), &condition.values, |v| check(v));
    p.each(&format!("{path}.notValues"), &condition.not_values, |v| {
        check(v)
    });
}

/// How the values of a condition on `key` are checked.
fn value_check(key: &str) -> fn(&str) -> Result<(), String> {
    match key {
        "source.ip" => net::ip_block,
        "source.identity" => spiffe::identity_pattern,
        "source.namespace" => names::label_or_any,
        "destination.port" => net::port_text,
        _ => |_| Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_issuer_slash_subject_with_edge_wildcards() {
        for good in [
            "https://id.example.com/alice",
            "https://id.example.com/*",
            "*/alice",
            "*",
        ] {
            assert_eq!(principal(good), Ok(()), "{good}");
        }
        assert_eq!(
            principal("alice").unwrap_err(),
            "\"alice\" is not a principal: expected <issuer>/<subject>"
        );
        for bad in ["", "a/*/b", "**", "a /b"] {
            assert!(principal(bad).is_err(), "{bad}");
        }
    }
}

//! What the call asks for, as RBAC permissions: the destination port, the
//! `:method` header and the URL path.

use envoy_types::pb::envoy::config::rbac::v3::{Permission, permission};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::r#type::matcher::v3::{PathMatcher, path_matcher};
use palisade_model::Operation;

use super::pattern::Pattern;
use super::term::{Term, permission_of};
use super::{Layer, Scope};

/// The permission of one operation: every non-empty list must match.
pub fn permission(scope: &Scope<'_>, operation: &Operation) -> Term<Permission> {
    Term::all_of([
        ports(scope, &operation.ports, false),
        ports(scope, &operation.not_ports, true),
        http(scope, &operation.methods, false, method),
        http(scope, &operation.not_methods, true, method),
        http(scope, &operation.paths, false, path),
        http(scope, &operation.not_paths, true, path),
    ])
}

/// Whether the call is to one of `ports` (or, `negated`, to none). The
/// workloads of a Service receive every port on one inbound port, so only
/// a Service with a single port says which port a call was for.
fn ports(scope: &Scope<'_>, ports: &[u16], negated: bool) -> Term<Permission> {
    if ports.is_empty() {
        return Term::Always;
    }
    match scope.service_ports {
        [only] => Term::constant(ports.contains(&only.port) != negated),
        _ => Term::constant(scope.unknown),
    }
}

/// Any of `patterns` (or, `negated`, none) matches an HTTP attribute; a
/// TCP listener cannot tell.
fn http(
    scope: &Scope<'_>,
    patterns: &[String],
    negated: bool,
    one: fn(Pattern<'_>) -> Term<Permission>,
) -> Term<Permission> {
    if patterns.is_empty() {
        return Term::Always;
    }
    if scope.layer == Layer::Tcp {
        return Term::constant(scope.unknown);
    }

    let any = Term::any_of(patterns.iter().map(|text| one(Pattern::parse(text))));
    match negated {
        true => any.negate(),
        false => any,
    }
}

fn method(pattern: Pattern<'_>) -> Term<Permission> {
    let Some(matcher) = pattern.matcher() else {
        return Term::Always;
    };
    let header = HeaderMatcher {
        name: ":method".to_owned(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(matcher)),
        ..HeaderMatcher::default()
    };
    Term::Match(permission_of(permission::Rule::Header(header)))
}

fn path(pattern: Pattern<'_>) -> Term<Permission> {
    let Some(matcher) = pattern.matcher() else {
        return Term::Always;
    };
    let path = PathMatcher {
        rule: Some(path_matcher::Rule::Path(matcher)),
    };
    Term::Match(permission_of(permission::Rule::UrlPath(path)))
}

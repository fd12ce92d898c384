//! The JwtRules resource: which issuers' tokens a service accepts, merged
//! from every RequestAuthentication that applies to it.

use std::collections::BTreeMap;

use palisade_model::{IssuerRule, RequestAuthenticationSpec};
use palisade_proto::xds as pb;
use pb::jwt_issuer::Keys;

use super::{AgentResource, package, resource_name};
use crate::xds::world::{Named, World};

/// Builds the JwtRules of `service` from the RequestAuthentications that
/// name it and those of its namespace that name no service; `None` when
/// none applies.
///
/// Each JwtIssuer named appears once. It is required when any rule naming it
/// requires it, and forwards the claims of every rule naming it. An issuer
/// whose JwtIssuer document is missing appears with no issuer URL and no
/// keys, so that no token validates for it and, if it is required, requests
/// are refused rather than let through unchecked.
pub fn jwt_rules(world: &World, service: &Named) -> Option<AgentResource> {
    let mut applies = false;
    let mut issuers: BTreeMap<&str, pb::JwtIssuer> = BTreeMap::new();
    for ((_, authentication), spec) in request_authentications_for(world, service) {
        applies = true;
        for rule in &spec.issuers {
            let entry = issuers
                .entry(rule.issuer.as_str())
                .or_insert_with(|| issuer(world, &service.0, &rule.issuer));
            merge(entry, authentication, rule);
        }
    }
    if !applies {
        return None;
    }

    let message = pb::JwtRules {
        revision: 0,
        namespace: service.0.clone(),
        service: service.1.clone(),
        issuers: issuers.into_values().map(tidy).collect(),
    };
    Some(package(resource_name(service), message, world.revision))
}

/// The RequestAuthentications that apply to `service`, in name order.
fn request_authentications_for<'a>(
    world: &'a World,
    service: &'a Named,
) -> impl Iterator<Item = (&'a Named, &'a RequestAuthenticationSpec)> {
    world
        .request_authentications
        .iter()
        .filter(move |((namespace, _), spec)| {
            *namespace == service.0
                && match spec.target_service.as_deref() {
                    None | Some("") => true,
                    Some(target) => target == service.1,
                }
        })
}

/// The JwtIssuer `name` of `namespace`, before any rule is merged in.
fn issuer(world: &World, namespace: &str, name: &str) -> pb::JwtIssuer {
    let mut entry = pb::JwtIssuer {
        name: name.to_owned(),
        ..Default::default()
    };
    let Some(spec) = world.issuers.get(&(namespace.to_owned(), name.to_owned())) else {
        return entry;
    };

    entry.issuer = spec.issuer.clone();
    entry.audiences = spec.audiences.clone();
    entry.keys = match (&spec.jwks, &spec.jwks_uri) {
        (Some(jwks), _) => Some(Keys::JwksJson(jwks.clone())),
        (None, Some(uri)) => Some(Keys::JwksUri(uri.clone())),
        (None, None) => None,
    };
    entry.algorithms = spec.algorithms.clone();
    entry.clock_skew_seconds = spec.clock_skew_seconds;
    entry
}

fn merge(entry: &mut pb::JwtIssuer, authentication: &str, rule: &IssuerRule) {
    entry.required |= rule.required;
    entry
        .request_authentications
        .push(authentication.to_owned());
    entry
        .forward_claims
        .extend(rule.forward_claims.iter().map(|forward| pb::ClaimToHeader {
            claim: forward.claim.clone(),
            header: forward.header.clone(),
        }));
}

/// Sorts and deduplicates what several rules contributed.
fn tidy(mut entry: pb::JwtIssuer) -> pb::JwtIssuer {
    entry.request_authentications.dedup();
    entry
        .forward_claims
        .sort_by(|a, b| (&a.header, &a.claim).cmp(&(&b.header, &b.claim)));
    entry.forward_claims.dedup();
    entry
}

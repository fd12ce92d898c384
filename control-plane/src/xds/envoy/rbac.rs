//! RBAC filters compiled from the AuthorizationPolicies that apply to a
//! Service, for the inbound side of its workloads.
//!
//! The decision follows the agent's: a matching enforced DENY rule refuses;
//! else a matching enforced ALLOW rule lets through; else the call is
//! refused. So the filters are a DENY filter (only when some DENY rule is
//! left) followed by an ALLOW filter that is always present: an ALLOW
//! filter with no policies refuses everything, which is the default deny.
//!
//! Left out of enforcement, as the agent leaves them: AUDIT policies, and
//! every policy in `mode: audit`. gRPC has no shadow rules, so neither is
//! logged either.
//!
//! Some conditions cannot be judged by a proxy's RBAC: token principals
//! (`principals`, `notPrincipals`), `when` conditions, methods and paths on
//! a TCP listener, and destination ports of a Service with several ports
//! (its workloads receive every port on one inbound port, so the port a
//! caller meant is unknown). Such a condition counts as not matching in an
//! ALLOW rule and as matching in a DENY rule: the proxy may refuse more
//! than the policy says, never allow more. A Service with one port decides
//! `ports` when the listener is built.
//!
//! One RBAC policy per rule, named `<namespace>/<policy>/<rule index>`. The
//! policies map is encoded by hand in name order (see [`encode`]), so the
//! bytes are the same on every build.

mod encode;
mod operation;
mod pattern;
mod source;
mod term;

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::listener::v3::Filter;
use envoy_types::pb::envoy::config::rbac::v3::{Policy, rbac::Action};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::google::protobuf::Any;
use palisade_model::{PolicyAction, PolicyMode, Rule, ServicePort};
use prost::{Message, Name};

use super::proto::{http_filter, network_filter};
use crate::xds::world::{Named, World};
use term::Term;

/// The filter names (HTTP and network); names must be unique within one
/// filter list.
pub const DENY_FILTER: &str = "palisade.rbac.deny";
pub const ALLOW_FILTER: &str = "palisade.rbac.allow";

/// What the listener can see of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// HTTP or gRPC: methods and paths too.
    Http,
    /// Opaque TCP: identities, addresses and ports only.
    Tcp,
}

/// The enforced rules of one Service, as RBAC policies by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Compiled {
    pub deny: BTreeMap<String, Policy>,
    pub allow: BTreeMap<String, Policy>,
}

/// How to judge the conditions of one policy.
struct Scope<'a> {
    trust_domain: &'a str,
    /// The Service's ports, for deciding `ports`.
    service_ports: &'a [ServicePort],
    layer: Layer,
    /// What a condition the proxy cannot judge counts as: true in DENY
    /// policies, false in ALLOW ones.
    unknown: bool,
}

/// The RBAC HTTP filters for `service`'s inbound side, to go before the
/// router.
pub fn http_filters(world: &World, service: &Named) -> Vec<HttpFilter> {
    let compiled = compile(world, service, Layer::Http);
    let config = |action, policies: &BTreeMap<String, Policy>| {
        packed::<HttpRbac>(HttpRbac::default().encode_to_vec(), action, policies)
    };

    let mut filters = Vec::new();
    if !compiled.deny.is_empty() {
        filters.push(http_filter(
            DENY_FILTER,
            config(Action::Deny, &compiled.deny),
        ));
    }
    filters.push(http_filter(
        ALLOW_FILTER,
        config(Action::Allow, &compiled.allow),
    ));
    filters
}

/// The RBAC network filters for `service`'s inbound side, to go before the
/// TCP proxy.
pub fn network_filters(world: &World, service: &Named) -> Vec<Filter> {
    let compiled = compile(world, service, Layer::Tcp);
    let config = |action, policies: &BTreeMap<String, Policy>, stat_prefix: &str| {
        let empty = NetworkRbac {
            stat_prefix: stat_prefix.to_owned(),
            ..NetworkRbac::default()
        };
        packed::<NetworkRbac>(empty.encode_to_vec(), action, policies)
    };

    let mut filters = Vec::new();
    if !compiled.deny.is_empty() {
        let deny = config(Action::Deny, &compiled.deny, "inbound_rbac_deny");
        filters.push(network_filter(DENY_FILTER, deny));
    }
    let allow = config(Action::Allow, &compiled.allow, "inbound_rbac_allow");
    filters.push(network_filter(ALLOW_FILTER, allow));
    filters
}

/// The enforced DENY and ALLOW rules that apply to `service`.
pub fn compile(world: &World, service: &Named, layer: Layer) -> Compiled {
    let service_ports = world
        .services
        .get(service)
        .map_or(&[][..], |spec| &spec.ports[..]);

    let mut compiled = Compiled::default();
    for ((namespace, name), policy) in world.policies_for(service) {
        let (policies, unknown) = match (policy.mode, policy.action) {
            (PolicyMode::Audit, _) | (_, PolicyAction::Audit) => continue,
            (_, PolicyAction::Deny) => (&mut compiled.deny, true),
            (_, PolicyAction::Allow) => (&mut compiled.allow, false),
        };
        let scope = Scope {
            trust_domain: &world.trust_domain,
            service_ports,
            layer,
            unknown,
        };

        for (index, rule) in policy.rules.iter().enumerate() {
            if let Some(compiled) = rule_policy(&scope, rule) {
                policies.insert(format!("{namespace}/{name}/{index}"), compiled);
            }
        }
    }
    compiled
}

/// One rule as an RBAC policy: any of its sources and any of its
/// operations; its `when` conditions cannot be judged. `None` when it can
/// never match.
fn rule_policy(scope: &Scope<'_>, rule: &Rule) -> Option<Policy> {
    if !rule.when.is_empty() && !scope.unknown {
        return None;
    }

    let principals = match rule.from.is_empty() {
        true => Term::Always,
        false => Term::any_of(rule.from.iter().map(|from| source::principal(scope, from))),
    };
    let permissions = match rule.to.is_empty() {
        true => Term::Always,
        false => Term::any_of(rule.to.iter().map(|to| operation::permission(scope, to))),
    };

    Some(Policy {
        principals: vec![principals.into_matcher()?],
        permissions: vec![permissions.into_matcher()?],
        ..Policy::default()
    })
}

/// A filter config `T` whose `rules` (field 1) is the RBAC of `action` over
/// `policies`; `without_rules` is the rest of the config, encoded.
fn packed<T: Name>(
    without_rules: Vec<u8>,
    action: Action,
    policies: &BTreeMap<String, Policy>,
) -> Any {
    let rules = encode::rules(action, policies);
    Any {
        type_url: T::type_url(),
        value: encode::with_rules(without_rules, &rules),
    }
}

#[cfg(test)]
mod tests;

//! The Authorization resource: every AuthorizationPolicy that applies to a
//! service, its rules sorted by action and compiled for local decisions.

use palisade_model::{Condition, Operation, PolicyAction, PolicyMode, Rule, Source};
use palisade_proto::xds as pb;

use super::patterns::{ip_networks, string_matches};
use super::{AgentResource, package, resource_name};
use crate::xds::world::{Named, World};

/// Builds the Authorization of `service` from the policies that name it and
/// those of its namespace that name no service.
///
/// Rules keep the name and position of their policy, in policy name order.
/// A service that no ALLOW policy covers gets an empty `allow` list, which
/// agents read as "refuse everything".
///
/// A rule with an IP block that does not parse (validation refuses those,
/// so only a damaged store has them) fails closed: an ALLOW or AUDIT rule is
/// left out, a DENY rule becomes one that matches every request.
pub fn authorization(world: &World, service: &Named) -> AgentResource {
    let mut message = pb::Authorization {
        namespace: service.0.clone(),
        service: service.1.clone(),
        ..Default::default()
    };

    for ((_, policy), spec) in world.policies_for(service) {
        let list = match spec.action {
            PolicyAction::Deny => &mut message.deny,
            PolicyAction::Allow => &mut message.allow,
            PolicyAction::Audit => &mut message.audit,
        };
        let origin = Origin {
            policy,
            action: spec.action,
            mode: mode(spec.mode),
        };
        list.extend(
            spec.rules
                .iter()
                .enumerate()
                .filter_map(|(i, rule)| origin.compile(i, rule)),
        );
    }

    package(resource_name(service), message, world.revision)
}

/// The policy a rule belongs to.
struct Origin<'a> {
    policy: &'a str,
    action: PolicyAction,
    mode: pb::EnforcementMode,
}

impl Origin<'_> {
    /// Compiles the rule at `index`; `None` when it is left out.
    fn compile(&self, index: usize, rule: &Rule) -> Option<pb::AuthorizationRule> {
        let mut compiled = pb::AuthorizationRule {
            policy: self.policy.to_owned(),
            index: u32::try_from(index).unwrap_or(u32::MAX),
            mode: self.mode.into(),
            ..Default::default()
        };

        let Some(from) = rule.from.iter().map(source).collect::<Option<Vec<_>>>() else {
            tracing::error!(
                policy = self.policy,
                index,
                "an IP block does not parse; the rule fails closed"
            );
            return (self.action == PolicyAction::Deny).then_some(compiled);
        };

        compiled.from = from;
        compiled.to = rule.to.iter().map(operation).collect();
        compiled.when = rule.when.iter().map(condition).collect();
        Some(compiled)
    }
}

fn mode(mode: PolicyMode) -> pb::EnforcementMode {
    match mode {
        PolicyMode::Enforce => pb::EnforcementMode::Enforce,
        PolicyMode::Audit => pb::EnforcementMode::Audit,
    }
}

/// `None` when an IP block does not parse.
fn source(source: &Source) -> Option<pb::Source> {
    Some(pb::Source {
        identities: string_matches(&source.identities),
        not_identities: string_matches(&source.not_identities),
        namespaces: string_matches(&source.namespaces),
        not_namespaces: string_matches(&source.not_namespaces),
        ip_blocks: ip_networks(&source.ip_blocks)?,
        not_ip_blocks: ip_networks(&source.not_ip_blocks)?,
        principals: string_matches(&source.principals),
        not_principals: string_matches(&source.not_principals),
    })
}

fn operation(operation: &Operation) -> pb::Operation {
    pb::Operation {
        ports: operation.ports.iter().copied().map(u32::from).collect(),
        not_ports: operation.not_ports.iter().copied().map(u32::from).collect(),
        methods: string_matches(&operation.methods),
        not_methods: string_matches(&operation.not_methods),
        paths: string_matches(&operation.paths),
        not_paths: string_matches(&operation.not_paths),
    }
}

fn condition(condition: &Condition) -> pb::Condition {
    pb::Condition {
        key: condition.key.clone(),
        values: condition.values.clone(),
        not_values: condition.not_values.clone(),
    }
}

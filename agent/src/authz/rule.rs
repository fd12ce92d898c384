//! One compiled rule: any of its sources, any of its operations, and its
//! `when` conditions, as far as a TCP proxy can judge them.

use std::sync::Arc;

use palisade_proto::xds as pb;

use super::matcher::{Network, Pattern, Test};
use super::{Caller, RuleId};

/// What a rule is judged against.
pub struct Request<'a> {
    pub caller: &'a Caller,
    /// The caller's namespace as the policy sees it.
    pub namespace: Option<&'a str>,
    pub port: u16,
}

/// A compiled [`pb::AuthorizationRule`].
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: RuleId,
    /// Any must match; an empty list matches every caller.
    from: Vec<Source>,
    /// Any must match; an empty list matches every operation.
    to: Vec<Operation>,
    /// Whether the `when` conditions count as met.
    when: bool,
}

impl Rule {
    /// Compiles `rule`; `unknown` is what a condition the proxy cannot
    /// judge counts as (true for DENY rules, false for the others).
    pub fn compile(rule: &pb::AuthorizationRule, unknown: bool) -> Self {
        Self {
            id: RuleId {
                policy: Arc::from(rule.policy.as_str()),
                index: rule.index,
            },
            from: rule
                .from
                .iter()
                .map(|s| Source::compile(s, unknown))
                .collect(),
            to: rule
                .to
                .iter()
                .map(|o| Operation::compile(o, unknown))
                .collect(),
            when: rule.when.is_empty() || unknown,
        }
    }

    /// Whether the rule matches `request`.
    pub fn matches(&self, request: &Request<'_>) -> bool {
        let from = self.from.is_empty() || self.from.iter().any(|s| s.matches(request));
        let to = self.to.is_empty() || self.to.iter().any(|o| o.matches(request));
        self.when && from && to
    }
}

/// A compiled [`pb::Source`]: every list must hold.
#[derive(Clone, Debug)]
struct Source {
    identities: Test<Pattern>,
    not_identities: Test<Pattern>,
    namespaces: Test<Pattern>,
    not_namespaces: Test<Pattern>,
    ip_blocks: Test<Network>,
    not_ip_blocks: Test<Network>,
    /// Whether the token principal lists count as met.
    principals: bool,
}

impl Source {
    fn compile(source: &pb::Source, unknown: bool) -> Self {
        let pattern = Pattern::compile;
        let network = Network::compile;
        let no_token = source.principals.is_empty() && source.not_principals.is_empty();

        Self {
            identities: Test::listed(&source.identities, pattern, unknown),
            not_identities: Test::unlisted(&source.not_identities, pattern, unknown),
            namespaces: Test::listed(&source.namespaces, pattern, unknown),
            not_namespaces: Test::unlisted(&source.not_namespaces, pattern, unknown),
            ip_blocks: Test::listed(&source.ip_blocks, network, unknown),
            not_ip_blocks: Test::unlisted(&source.not_ip_blocks, network, unknown),
            principals: no_token || unknown,
        }
    }

    fn matches(&self, request: &Request<'_>) -> bool {
        let identity = |p: &Pattern| p.matches(Some(&request.caller.identity));
        let namespace = |p: &Pattern| p.matches(request.namespace);
        let address = |n: &Network| n.contains(request.caller.address);

        self.principals
            && self.identities.holds(identity)
            && self.not_identities.holds(identity)
            && self.namespaces.holds(namespace)
            && self.not_namespaces.holds(namespace)
            && self.ip_blocks.holds(address)
            && self.not_ip_blocks.holds(address)
    }
}

/// A compiled [`pb::Operation`]: every list must hold.
#[derive(Clone, Debug)]
struct Operation {
    ports: Test<u32>,
    not_ports: Test<u32>,
    /// Whether the method and path lists count as met.
    http: bool,
}

impl Operation {
    fn compile(operation: &pb::Operation, unknown: bool) -> Self {
        let port = |p: &u32| Some(*p);
        let no_http = operation.methods.is_empty()
            && operation.not_methods.is_empty()
            && operation.paths.is_empty()
            && operation.not_paths.is_empty();

        Self {
            ports: Test::listed(&operation.ports, port, unknown),
            not_ports: Test::unlisted(&operation.not_ports, port, unknown),
            http: no_http || unknown,
        }
    }

    fn matches(&self, request: &Request<'_>) -> bool {
        let port = |p: &u32| *p == u32::from(request.port);
        self.http && self.ports.holds(port) && self.not_ports.holds(port)
    }
}

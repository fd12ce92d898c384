//! Authorization decisions for inbound connections.
//!
//! The control plane sends one [`pb::Authorization`] per local Service: its
//! DENY, ALLOW and AUDIT rules, with every pattern already classified. A
//! [`Policy`] compiles that resource once per snapshot into matchers, and
//! [`Policy::decide`] judges one connection from what the proxy knows of it
//! (a [`Caller`] and the destination port):
//!
//! 1. the first matching DENY rule in enforce mode refuses;
//! 2. else the first matching ALLOW rule in enforce mode lets through;
//! 3. else the connection is refused: an empty ALLOW list refuses all.
//!
//! Rules in audit mode, and every AUDIT rule, never change the decision;
//! their matches are returned in [`Decision::audited`] for the caller to
//! log.
//!
//! A TCP proxy cannot see methods, paths, request tokens or `when`
//! conditions. A rule that needs one of them never matches when it would
//! allow, and always matches when it would deny: the agent may refuse more
//! than a policy says, never allow more. This is what the control plane's
//! RBAC filters for Envoy and gRPC do too. Parts the agent cannot read (a
//! pattern with no kind, an IP network of the wrong length) count the same
//! way.

mod matcher;
mod rule;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use palisade_proto::xds as pb;

use rule::{Request, Rule};

/// What the proxy knows of a caller: its verified SPIFFE ID and its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The SPIFFE ID of the caller's certificate.
    pub identity: String,
    /// The caller's IP address, IPv4-mapped IPv6 addresses read as IPv4.
    pub address: IpAddr,
    trust_domain: Option<String>,
    namespace: Option<String>,
}

impl Caller {
    /// A caller, with the trust domain and namespace read from `identity`
    /// when it has the form `spiffe://<td>/ns/<namespace>/...`.
    pub fn new(identity: &str, address: IpAddr) -> Self {
        let (trust_domain, namespace) = split_identity(identity);
        Self {
            identity: identity.to_owned(),
            address: address.to_canonical(),
            trust_domain: trust_domain.map(str::to_owned),
            namespace: namespace.map(str::to_owned),
        }
    }

    /// The caller's namespace, if its SPIFFE ID names one.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The namespace as a policy of `trust_domain` sees it: only callers of
    /// that trust domain have one (any trust domain when it is empty).
    fn namespace_in(&self, trust_domain: &str) -> Option<&str> {
        match trust_domain.is_empty() || self.trust_domain.as_deref() == Some(trust_domain) {
            true => self.namespace(),
            false => None,
        }
    }
}

/// The trust domain and the namespace of `spiffe://<td>/ns/<namespace>/...`;
/// the namespace is `None` unless another segment follows it.
fn split_identity(identity: &str) -> (Option<&str>, Option<&str>) {
    let Some((trust_domain, path)) = identity
        .strip_prefix("spiffe://")
        .and_then(|rest| rest.split_once('/'))
    else {
        return (None, None);
    };

    let namespace = path
        .strip_prefix("ns/")
        .and_then(|rest| rest.split_once('/'))
        .map(|(namespace, _)| namespace);
    (Some(trust_domain), namespace)
}

/// One rule of one AuthorizationPolicy: the policy's name (in the Service's
/// namespace) and the rule's position in it. Displays as `<policy>/<index>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleId {
    pub policy: Arc<str>,
    pub index: u32,
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.policy, self.index)
    }
}

/// What a rule that is only logged would have done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Deny,
    Allow,
    /// An AUDIT rule: it only ever logs.
    Audit,
}

impl Effect {
    /// Lowercase, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Deny => "deny",
            Effect::Allow => "allow",
            Effect::Audit => "audit",
        }
    }
}

/// A logged-only rule that matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audited {
    pub rule: RuleId,
    pub effect: Effect,
}

/// The outcome for one connection. Displays the deciding rule, or
/// `default deny`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The rule that decided; `None` when nothing matched (default deny).
    pub rule: Option<RuleId>,
    /// Logged-only rules that matched, in the order the resource lists them.
    pub audited: Vec<Audited>,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(rule) => rule.fmt(f),
            None => f.write_str("default deny"),
        }
    }
}

/// The compiled authorization of one Service.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Namespace conditions only see callers of this trust domain; empty
    /// when the bundle does not say.
    trust_domain: String,
    deny: Vec<Rule>,
    allow: Vec<Rule>,
    logged: Vec<(Effect, Rule)>,
}

impl Policy {
    /// A policy that refuses everything: for a Service with no
    /// Authorization resource.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Compiles `authorization` for callers of `trust_domain`.
    pub fn compile(authorization: &pb::Authorization, trust_domain: &str) -> Self {
        let audit = pb::EnforcementMode::Audit as i32;
        let enforce = pb::EnforcementMode::Enforce as i32;
        let mut policy = Self {
            trust_domain: trust_domain.to_owned(),
            ..Self::default()
        };

        // An unknown mode fails closed: DENY rules enforce, ALLOW rules only
        // log.
        for rule in &authorization.deny {
            let compiled = Rule::compile(rule, true);
            match rule.mode == audit {
                true => policy.logged.push((Effect::Deny, compiled)),
                false => policy.deny.push(compiled),
            }
        }
        for rule in &authorization.allow {
            let compiled = Rule::compile(rule, false);
            match rule.mode == enforce {
                true => policy.allow.push(compiled),
                false => policy.logged.push((Effect::Allow, compiled)),
            }
        }
        for rule in &authorization.audit {
            policy
                .logged
                .push((Effect::Audit, Rule::compile(rule, false)));
        }
        policy
    }

    /// Decides a connection from `caller` to destination `port`.
    pub fn decide(&self, caller: &Caller, port: u16) -> Decision {
        let request = Request {
            caller,
            namespace: caller.namespace_in(&self.trust_domain),
            port,
        };

        let audited = self
            .logged
            .iter()
            .filter(|(_, rule)| rule.matches(&request))
            .map(|(effect, rule)| Audited {
                rule: rule.id.clone(),
                effect: *effect,
            })
            .collect();

        let matching = |rule: &&Rule| rule.matches(&request);
        let (allowed, rule) = if let Some(deny) = self.deny.iter().find(matching) {
            (false, Some(deny.id.clone()))
        } else if let Some(allow) = self.allow.iter().find(matching) {
            (true, Some(allow.id.clone()))
        } else {
            (false, None)
        };
        Decision {
            allowed,
            rule,
            audited,
        }
    }
}

#[cfg(test)]
mod tests;

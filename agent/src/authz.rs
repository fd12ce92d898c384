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
//! Rules in audit mode never change the decision: the connection is
//! decided as if they were absent. The decision the Service would make
//! with them enforced too is computed beside it, and returned in
//! [`Decision::dry_run`] when it differs, for the caller to log: an ALLOW
//! policy in audit mode that would let a refused caller through, a DENY
//! policy in audit mode that would refuse an allowed one. AUDIT rules never
//! decide either; those that match are returned in [`Decision::audited`].
//! So a Service whose only ALLOW policy is in audit mode refuses every
//! caller, as it would without that policy, and logs the callers the
//! policy would let through: trying a policy never opens a Service nor
//! closes it. The control plane's RBAC for Envoy and gRPC leaves audit
//! mode out the same way.
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

/// What a service decides for one connection, or would decide: allowed or
/// refused, and by which rule. Displays the rule, or `default deny`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The rule that decided; `None` when nothing matched (default deny).
    pub rule: Option<RuleId>,
}

impl Verdict {
    /// `allow` or `deny`, for logs.
    pub fn effect(&self) -> &'static str {
        match self.allowed {
            true => "allow",
            false => "deny",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(rule) => rule.fmt(f),
            None => f.write_str("default deny"),
        }
    }
}

/// The outcome for one connection. Displays the deciding rule, or
/// `default deny`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What the enforced rules decided.
    pub verdict: Verdict,
    /// What the Service would decide with its audit-mode rules enforced
    /// too, when that is another outcome or another rule.
    pub dry_run: Option<Verdict>,
    /// The AUDIT rules that matched, in the order the resource lists them.
    pub audited: Vec<RuleId>,
}

impl Decision {
    /// Whether the connection may go through.
    pub fn allowed(&self) -> bool {
        self.verdict.allowed
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.verdict.fmt(f)
    }
}

/// A compiled DENY or ALLOW rule, and whether it is enforced or only tried
/// (audit mode).
#[derive(Clone, Debug)]
struct Ranked {
    rule: Rule,
    enforced: bool,
}

/// The compiled authorization of one Service.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Namespace conditions only see callers of this trust domain; empty
    /// when the bundle does not say.
    trust_domain: String,
    deny: Vec<Ranked>,
    allow: Vec<Ranked>,
    /// Whether some DENY or ALLOW rule is in audit mode.
    trials: bool,
    audit: Vec<Rule>,
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

        // An unknown mode fails closed: DENY rules enforce, ALLOW rules are
        // only tried.
        let deny: Vec<Ranked> = authorization
            .deny
            .iter()
            .map(|rule| Ranked {
                rule: Rule::compile(rule, true),
                enforced: rule.mode != audit,
            })
            .collect();
        let allow: Vec<Ranked> = authorization
            .allow
            .iter()
            .map(|rule| Ranked {
                rule: Rule::compile(rule, false),
                enforced: rule.mode == enforce,
            })
            .collect();

        let trials = deny.iter().chain(&allow).any(|ranked| !ranked.enforced);
        let audit = authorization
            .audit
            .iter()
            .map(|rule| Rule::compile(rule, false))
            .collect();
        Self {
            trust_domain: trust_domain.to_owned(),
            deny,
            allow,
            trials,
            audit,
        }
    }

    /// Decides a connection from `caller` to destination `port`.
    pub fn decide(&self, caller: &Caller, port: u16) -> Decision {
        let request = Request {
            caller,
            namespace: caller.namespace_in(&self.trust_domain),
            port,
        };

        let verdict = self.judge(&request, |ranked| ranked.enforced);
        let dry_run = self
            .trials
            .then(|| self.judge(&request, |_| true))
            .filter(|tried| *tried != verdict);
        let audited = self
            .audit
            .iter()
            .filter(|rule| rule.matches(&request))
            .map(|rule| rule.id.clone())
            .collect();
        Decision {
            verdict,
            dry_run,
            audited,
        }
    }

    /// The first matching DENY rule, else the first matching ALLOW rule,
    /// else default deny, among the rules `counted` takes.
    fn judge(&self, request: &Request<'_>, counted: impl Fn(&Ranked) -> bool) -> Verdict {
        let first = |rules: &[Ranked]| {
            rules
                .iter()
                .find(|ranked| counted(ranked) && ranked.rule.matches(request))
                .map(|ranked| ranked.rule.id.clone())
        };
        if let Some(deny) = first(&self.deny) {
            return Verdict {
                allowed: false,
                rule: Some(deny),
            };
        }
        let allow = first(&self.allow);
        Verdict {
            allowed: allow.is_some(),
            rule: allow,
        }
    }
}

#[cfg(test)]
mod tests;

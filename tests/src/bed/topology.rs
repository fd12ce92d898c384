//! Who is where in the bed, and what its baseline policies allow: the
//! hosts, the services and their workloads, and the calls between them.
//! A host's address is given by its last octet; [`super::network`] says
//! on which network it is.

use std::net::Ipv4Addr;

/// The bed's trust domain.
pub const TRUST_DOMAIN: &str = "bed.test";
/// The namespace of every service.
pub const NAMESPACE: &str = "shop";

/// A host of the bed: a Node and the agent that runs on it.
#[derive(Clone, Copy, Debug)]
pub struct Host {
    pub node: &'static str,
    /// The last octet of its address.
    pub octet: u8,
}

/// The three hosts.
pub const HOSTS: [Host; 3] = [
    Host {
        node: "node-a",
        octet: 11,
    },
    Host {
        node: "node-b",
        octet: 12,
    },
    Host {
        node: "node-c",
        octet: 13,
    },
];

/// A service and its one workload, `<service>-1`.
#[derive(Clone, Copy, Debug)]
pub struct Member {
    pub service: &'static str,
    /// Which of [`HOSTS`] runs it.
    pub host: usize,
    /// Its own address, a loopback address of its host, when it is not
    /// reached at its node's: where its inbound and outbound listeners
    /// are, and where workloads of the same host call it.
    pub own_address: Option<Ipv4Addr>,
}

impl Member {
    /// Its workload's name.
    pub fn workload(&self) -> String {
        format!("{}-1", self.service)
    }
}

/// Every service of the bed.
pub const MEMBERS: [Member; 5] = [
    Member {
        service: "web",
        host: 0,
        own_address: None,
    },
    Member {
        service: "batch",
        host: 0,
        own_address: Some(Ipv4Addr::new(127, 0, 0, 21)),
    },
    Member {
        service: "orders",
        host: 1,
        own_address: None,
    },
    Member {
        service: "ledger",
        host: 1,
        own_address: Some(Ipv4Addr::new(127, 0, 0, 22)),
    },
    Member {
        service: "payments",
        host: 2,
        own_address: None,
    },
];

/// The policies the bed starts with; `{td}` stands for the trust domain.
pub const BASELINE_POLICIES: &str = r#"
kind: AuthorizationPolicy
metadata: {name: orders-callers, namespace: shop}
spec:
  targetService: orders
  rules:
    - from: [{identities: ["spiffe://{td}/ns/shop/sa/web", "spiffe://{td}/ns/shop/sa/batch"]}]
---
kind: AuthorizationPolicy
metadata: {name: ledger-callers, namespace: shop}
spec:
  targetService: ledger
  rules:
    - from: [{identities: ["spiffe://{td}/ns/shop/sa/orders"]}]
---
kind: AuthorizationPolicy
metadata: {name: payments-callers, namespace: shop}
spec:
  targetService: payments
  rules:
    - from: [{namespaces: [shop]}]
---
kind: AuthorizationPolicy
metadata: {name: payments-not-web, namespace: shop}
spec:
  targetService: payments
  action: DENY
  rules:
    - from: [{identities: ["spiffe://{td}/ns/shop/sa/web"]}]
"#;

/// What a call is expected to do, and for a refusal, who refuses it and
/// why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The service answers and sees the caller's identity.
    Allowed,
    /// The callee's agent completes the handshake and refuses the call by
    /// this rule (`<policy>/<index>`, or `default deny`), and logs so.
    Denied(&'static str),
    /// The callee's agent refuses the caller's certificate at the TLS
    /// handshake, and logs so.
    RefusedAtHandshake,
    /// The caller's agent has no listener for the call: no policy could
    /// allow it.
    NoRoute,
}

/// A call of `service` by the workload of `caller`.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    pub caller: &'static str,
    pub service: &'static str,
    pub expect: Expect,
}

/// A call that must reach the service.
pub const fn allowed(caller: &'static str, service: &'static str) -> Call {
    Call {
        caller,
        service,
        expect: Expect::Allowed,
    }
}

/// A call that the callee's agent must refuse by `rule`, never reaching
/// the service.
pub const fn denied(caller: &'static str, service: &'static str, rule: &'static str) -> Call {
    Call {
        caller,
        service,
        expect: Expect::Denied(rule),
    }
}

/// A call whose certificate the callee's agent must refuse at the
/// handshake.
pub const fn refused_at_handshake(caller: &'static str, service: &'static str) -> Call {
    Call {
        caller,
        service,
        expect: Expect::RefusedAtHandshake,
    }
}

/// A call for which the caller's agent must have no listener.
pub const fn no_route(caller: &'static str, service: &'static str) -> Call {
    Call {
        caller,
        service,
        expect: Expect::NoRoute,
    }
}

/// What [`BASELINE_POLICIES`] allow and refuse: calls between nodes and
/// on one node, from node and own addresses; web to payments is refused
/// by the callee's agent (the DENY policy), web to ledger and payments to
/// orders by the caller's (no policy could allow them, so there is no
/// outbound listener).
pub fn baseline_calls() -> Vec<Call> {
    vec![
        allowed("web", "orders"),
        allowed("batch", "orders"),
        allowed("orders", "ledger"),
        allowed("orders", "payments"),
        allowed("ledger", "payments"),
        allowed("batch", "payments"),
        denied("web", "payments", "payments-not-web/0"),
        no_route("web", "ledger"),
        no_route("payments", "orders"),
    ]
}

/// The outbound listeners the baseline policies must open: every call of
/// [`baseline_calls`] that some policy could allow.
pub const BASELINE_ROUTES: [(&str, &str); 7] = [
    ("web", "orders"),
    ("batch", "orders"),
    ("orders", "ledger"),
    ("orders", "payments"),
    ("ledger", "payments"),
    ("batch", "payments"),
    ("web", "payments"),
];

/// The member running `service`.
///
/// # Panics
///
/// When the bed has no such service.
pub fn member(service: &str) -> &'static Member {
    MEMBERS
        .iter()
        .find(|m| m.service == service)
        .unwrap_or_else(|| panic!("the bed has no service {service}"))
}

/// The SPIFFE ID of `service` in the bed.
pub fn id(service: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{service}")
}

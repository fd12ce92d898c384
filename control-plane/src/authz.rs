//! Who may do what through the admin API.
//!
//! An AdminBinding gives a role to callers whose SPIFFE ID matches one of its
//! subjects, optionally narrowed to some namespaces. A role is a list of
//! rules (verbs, kinds, namespaces): one of the built-in roles or an
//! AdminRole. Anything no rule allows is refused.

use std::collections::BTreeMap;
use std::fmt;

use palisade_model::{AdminBindingSpec, AdminRoleSpec, AdminRule, Kind};

/// An action on the admin API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Apply,
    Delete,
    Audit,
    /// Create join tokens for Nodes.
    Issue,
    /// Revoke Nodes.
    Revoke,
    /// Prepare, activate and retire CAs and JWT signing keys.
    Rotate,
}

impl Verb {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Apply => "apply",
            Verb::Delete => "delete",
            Verb::Audit => "audit",
            Verb::Issue => "issue",
            Verb::Revoke => "revoke",
            Verb::Rotate => "rotate",
        }
    }
}

/// One thing a call needs permission for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    pub verb: Verb,
    /// `None` for calls about no kind (audit).
    pub kind: Option<Kind>,
    /// Empty for cluster-scoped kinds and for "every namespace".
    pub namespace: String,
}

impl Permission {
    pub fn on(verb: Verb, kind: Kind, namespace: &str) -> Self {
        Self {
            verb,
            kind: Some(kind),
            namespace: namespace.to_owned(),
        }
    }

    pub fn audit() -> Self {
        Self::unscoped(Verb::Audit)
    }

    /// A permission about no kind: the audit log, the CAs and signing keys.
    pub fn unscoped(verb: Verb) -> Self {
        Self {
            verb,
            kind: None,
            namespace: String::new(),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.verb.as_str())?;
        match (self.kind, self.namespace.as_str()) {
            (None, _) => Ok(()),
            (Some(kind), "") if kind.is_namespaced() => write!(f, " on {kind} in every namespace"),
            (Some(kind), "") => write!(f, " on {kind}"),
            (Some(kind), namespace) => write!(f, " on {kind} in namespace {namespace:?}"),
        }
    }
}

/// The rules that apply to one caller.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    pub roles: Vec<String>,
    rules: Vec<AdminRule>,
}

impl Grants {
    /// Collects the rules of every binding whose subjects match `identity`.
    /// `roles` holds the stored AdminRoles by name.
    pub fn for_identity(
        identity: &str,
        bindings: &[AdminBindingSpec],
        roles: &BTreeMap<String, AdminRoleSpec>,
    ) -> Self {
        let mut grants = Grants::default();
        for binding in bindings
            .iter()
            .filter(|b| b.subjects.iter().any(|s| matches(s, identity)))
        {
            let Some(rules) = role_rules(&binding.role, roles) else {
                continue;
            };
            grants.roles.push(binding.role.clone());
            grants
                .rules
                .extend(rules.into_iter().map(|r| narrow(r, &binding.namespaces)));
        }
        grants.roles.sort();
        grants.roles.dedup();
        grants
    }

    /// True if some rule allows `permission`.
    pub fn allows(&self, permission: &Permission) -> bool {
        self.rules.iter().any(|rule| rule_allows(rule, permission))
    }

    /// True if some rule allows `verb` on `kind` in at least one namespace.
    pub fn allows_somewhere(&self, verb: Verb, kind: Kind) -> bool {
        self.rules.iter().any(|rule| {
            has(&rule.verbs, verb.as_str())
                && has(&rule.kinds, kind.as_str())
                && (kind.is_namespaced() || unrestricted(&rule.namespaces))
        })
    }
}

fn matches(subject: &str, identity: &str) -> bool {
    match subject.strip_suffix('*') {
        Some(prefix) => identity.starts_with(prefix),
        None => subject == identity,
    }
}

fn has(list: &[String], value: &str) -> bool {
    list.iter()
        .any(|item| item == "*" || item.eq_ignore_ascii_case(value))
}

fn unrestricted(namespaces: &[String]) -> bool {
    namespaces.is_empty() || namespaces.iter().any(|n| n == "*")
}

fn rule_allows(rule: &AdminRule, permission: &Permission) -> bool {
    if !has(&rule.verbs, permission.verb.as_str()) {
        return false;
    }
    if let Some(kind) = permission.kind
        && !has(&rule.kinds, kind.as_str())
    {
        return false;
    }

    let namespaced = permission.kind.is_some_and(|k| k.is_namespaced());
    if namespaced && !permission.namespace.is_empty() {
        unrestricted(&rule.namespaces) || rule.namespaces.contains(&permission.namespace)
    } else {
        unrestricted(&rule.namespaces)
    }
}

/// Narrows a rule to the binding's namespaces.
fn narrow(mut rule: AdminRule, binding_namespaces: &[String]) -> AdminRule {
    if binding_namespaces.is_empty() {
        return rule;
    }
    rule.namespaces = if unrestricted(&rule.namespaces) {
        binding_namespaces.to_vec()
    } else {
        rule.namespaces
            .into_iter()
            .filter(|n| binding_namespaces.contains(n))
            .collect()
    };
    if rule.namespaces.is_empty() {
        rule.verbs.clear();
    }
    rule
}

fn role_rules(role: &str, roles: &BTreeMap<String, AdminRoleSpec>) -> Option<Vec<AdminRule>> {
    builtin(role).or_else(|| roles.get(role).map(|spec| spec.rules.clone()))
}

fn rule(verbs: &[&str], kinds: &[&str]) -> AdminRule {
    AdminRule {
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        namespaces: Vec::new(),
    }
}

/// The rules of a built-in role.
fn builtin(role: &str) -> Option<Vec<AdminRule>> {
    let resource_kinds: Vec<&str> = Kind::ALL
        .iter()
        .filter(|k| !matches!(k, Kind::AdminRole | Kind::AdminBinding))
        .map(|k| k.as_str())
        .collect();
    let rules = match role {
        "admin" => vec![rule(&["*"], &["*"])],
        "editor" => vec![
            rule(
                &["get", "list", "watch", "apply", "delete"],
                &resource_kinds,
            ),
            rule(&["issue", "revoke"], &["Node"]),
        ],
        "viewer" => vec![rule(&["get", "list", "watch"], &resource_kinds)],
        "auditor" => vec![
            rule(&["audit"], &[]),
            rule(&["get", "list", "watch"], &["AdminRole", "AdminBinding"]),
        ],
        _ => return None,
    };
    Some(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "spiffe://example.org/admin/alice";

    fn binding(role: &str, namespaces: &[&str]) -> AdminBindingSpec {
        AdminBindingSpec {
            role: role.into(),
            subjects: vec![ALICE.into()],
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn grants(bindings: &[AdminBindingSpec]) -> Grants {
        Grants::for_identity(ALICE, bindings, &BTreeMap::new())
    }

    #[test]
    fn nobody_is_allowed_anything_by_default() {
        let grants = grants(&[]);

        assert!(!grants.allows(&Permission::on(Verb::Get, Kind::Service, "shop")));
        assert!(!grants.allows(&Permission::audit()));
    }

    #[test]
    fn viewer_reads_but_does_not_write() {
        let grants = grants(&[binding("viewer", &[])]);

        assert!(grants.allows(&Permission::on(Verb::List, Kind::Service, "shop")));
        assert!(!grants.allows(&Permission::on(Verb::Apply, Kind::Service, "shop")));
        assert!(!grants.allows(&Permission::on(Verb::Get, Kind::AdminBinding, "")));
    }

    #[test]
    fn editor_cannot_touch_admin_bindings() {
        let grants = grants(&[binding("editor", &[])]);

        assert!(grants.allows(&Permission::on(Verb::Apply, Kind::Workload, "shop")));
        assert!(!grants.allows(&Permission::on(Verb::Apply, Kind::AdminBinding, "")));
    }

    #[test]
    fn editor_registers_and_revokes_nodes_but_does_not_rotate_keys() {
        let grants = grants(&[binding("editor", &[])]);

        assert!(grants.allows(&Permission::on(Verb::Issue, Kind::Node, "")));
        assert!(grants.allows(&Permission::on(Verb::Revoke, Kind::Node, "")));
        assert!(!grants.allows(&Permission::unscoped(Verb::Rotate)));
    }

    #[test]
    fn viewer_reads_key_status_but_cannot_revoke() {
        let grants = grants(&[binding("viewer", &[])]);

        assert!(grants.allows(&Permission::unscoped(Verb::Get)));
        assert!(!grants.allows(&Permission::on(Verb::Revoke, Kind::Node, "")));
    }

    #[test]
    fn namespace_scoped_binding_stops_at_its_namespaces() {
        let grants = grants(&[binding("editor", &["shop"])]);

        assert!(grants.allows(&Permission::on(Verb::Apply, Kind::Service, "shop")));
        assert!(!grants.allows(&Permission::on(Verb::Apply, Kind::Service, "billing")));
        assert!(!grants.allows(&Permission::on(Verb::Apply, Kind::Node, "")));
        assert!(grants.allows_somewhere(Verb::List, Kind::Service));
    }

    #[test]
    fn custom_role_grants_only_its_rules() {
        let role = AdminRoleSpec {
            rules: vec![rule(&["get"], &["Node"])],
        };
        let roles = BTreeMap::from([("node-reader".to_string(), role)]);

        let grants = Grants::for_identity(ALICE, &[binding("node-reader", &[])], &roles);

        assert!(grants.allows(&Permission::on(Verb::Get, Kind::Node, "")));
        assert!(!grants.allows(&Permission::on(Verb::List, Kind::Node, "")));
        assert_eq!(grants.roles, ["node-reader"]);
    }

    #[test]
    fn subject_prefix_matches_identities_under_it() {
        let mut binding = binding("auditor", &[]);
        binding.subjects = vec!["spiffe://example.org/admin/*".into()];

        let grants = grants(&[binding]);

        assert!(grants.allows(&Permission::audit()));
    }

    #[test]
    fn permission_names_what_is_missing() {
        let permission = Permission::on(Verb::Apply, Kind::AuthorizationPolicy, "shop");

        assert_eq!(
            permission.to_string(),
            r#""apply" on AuthorizationPolicy in namespace "shop""#
        );
    }
}

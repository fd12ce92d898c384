//! Conditions as far as a proxy can judge them: always true, never true, or
//! true when an RBAC matcher matches. Combining them folds the constants
//! away, so that what is left is a plain principal or permission tree.

use envoy_types::pb::envoy::config::rbac::v3::{Permission, Principal, permission, principal};

/// An RBAC matcher tree: a Principal or a Permission.
pub trait Matcher: Sized {
    /// Matches everything.
    fn everything() -> Self;
    /// Matches when every one of `all` matches.
    fn and(all: Vec<Self>) -> Self;
    /// Matches when any of `any` matches.
    fn or(any: Vec<Self>) -> Self;
    /// Matches when `self` does not.
    fn not(self) -> Self;
}

/// A condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Term<T> {
    Always,
    Never,
    Match(T),
}

impl<T: Matcher> Term<T> {
    /// A condition known in advance.
    pub fn constant(value: bool) -> Self {
        match value {
            true => Term::Always,
            false => Term::Never,
        }
    }

    /// True when every term is; true when there are none.
    pub fn all_of(terms: impl IntoIterator<Item = Term<T>>) -> Self {
        let mut matchers = Vec::new();
        for term in terms {
            match term {
                Term::Never => return Term::Never,
                Term::Always => {}
                Term::Match(matcher) => matchers.push(matcher),
            }
        }
        combine(matchers, Term::Always, T::and)
    }

    /// True when any term is; false when there are none.
    pub fn any_of(terms: impl IntoIterator<Item = Term<T>>) -> Self {
        let mut matchers = Vec::new();
        for term in terms {
            match term {
                Term::Always => return Term::Always,
                Term::Never => {}
                Term::Match(matcher) => matchers.push(matcher),
            }
        }
        combine(matchers, Term::Never, T::or)
    }

    /// True when `self` is not.
    pub fn negate(self) -> Self {
        match self {
            Term::Always => Term::Never,
            Term::Never => Term::Always,
            Term::Match(matcher) => Term::Match(matcher.not()),
        }
    }

    /// The matcher; `None` when the condition can never be true.
    pub fn into_matcher(self) -> Option<T> {
        match self {
            Term::Always => Some(T::everything()),
            Term::Never => None,
            Term::Match(matcher) => Some(matcher),
        }
    }
}

/// `empty` for no matchers, the matcher itself for one, else `join`.
fn combine<T>(mut matchers: Vec<T>, empty: Term<T>, join: fn(Vec<T>) -> T) -> Term<T> {
    match matchers.len() {
        0 => empty,
        1 => Term::Match(matchers.remove(0)),
        _ => Term::Match(join(matchers)),
    }
}

impl Matcher for Principal {
    fn everything() -> Self {
        principal_of(principal::Identifier::Any(true))
    }

    fn and(ids: Vec<Self>) -> Self {
        principal_of(principal::Identifier::AndIds(principal::Set { ids }))
    }

    fn or(ids: Vec<Self>) -> Self {
        principal_of(principal::Identifier::OrIds(principal::Set { ids }))
    }

    fn not(self) -> Self {
        principal_of(principal::Identifier::NotId(Box::new(self)))
    }
}

impl Matcher for Permission {
    fn everything() -> Self {
        permission_of(permission::Rule::Any(true))
    }

    fn and(rules: Vec<Self>) -> Self {
        permission_of(permission::Rule::AndRules(permission::Set { rules }))
    }

    fn or(rules: Vec<Self>) -> Self {
        permission_of(permission::Rule::OrRules(permission::Set { rules }))
    }

    fn not(self) -> Self {
        permission_of(permission::Rule::NotRule(Box::new(self)))
    }
}

pub fn principal_of(identifier: principal::Identifier) -> Principal {
    Principal {
        identifier: Some(identifier),
    }
}

pub fn permission_of(rule: permission::Rule) -> Permission {
    Permission { rule: Some(rule) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(port: u32) -> Term<Permission> {
        Term::Match(permission_of(permission::Rule::DestinationPort(port)))
    }

    #[test]
    fn constants_fold_away() {
        assert_eq!(Term::all_of([Term::Always, port(1)]), port(1));
        assert_eq!(Term::all_of([Term::Never, port(1)]), Term::Never);
        assert_eq!(Term::any_of([Term::Never, port(1)]), port(1));
        assert_eq!(Term::any_of([Term::Always, port(1)]), Term::Always);
        assert_eq!(Term::<Permission>::all_of([]), Term::Always);
        assert_eq!(Term::<Permission>::any_of([]), Term::Never);
    }

    #[test]
    fn several_matchers_join_and_negation_wraps() {
        let both = Term::all_of([port(1), port(2)]).into_matcher().unwrap();
        let not = port(1).negate().into_matcher().unwrap();

        assert!(matches!(both.rule, Some(permission::Rule::AndRules(set)) if set.rules.len() == 2));
        assert!(matches!(not.rule, Some(permission::Rule::NotRule(_))));
        assert_eq!(Term::<Permission>::Never.into_matcher(), None);
        assert_eq!(
            Term::<Permission>::Always.into_matcher(),
            Some(Permission::everything())
        );
    }
}

//! Who is calling, as RBAC principals: the SPIFFE ID of the client
//! certificate (for identities and namespaces) and the peer address.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::rbac::v3::{Principal, principal};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::UInt32Value;
use palisade_model::Source;

use super::Scope;
use super::pattern::{Pattern, escape, matching, regex};
use super::term::{Term, principal_of};

/// The principal of one source: every non-empty list must match.
pub fn principal(scope: &Scope<'_>, source: &Source) -> Term<Principal> {
    let identity = |text: &str| identity(Pattern::parse(text));
    let namespace = |text: &str| namespace(scope.trust_domain, Pattern::parse(text));

    Term::all_of([
        listed(&source.identities, identity),
        unlisted(&source.not_identities, identity),
        listed(&source.namespaces, namespace),
        unlisted(&source.not_namespaces, namespace),
        addresses(scope, &source.ip_blocks, false),
        addresses(scope, &source.not_ip_blocks, true),
        unknowable(scope, &source.principals),
        unknowable(scope, &source.not_principals),
    ])
}

/// Any of `values`; always true when there are none.
fn listed(values: &[String], one: impl Fn(&str) -> Term<Principal>) -> Term<Principal> {
    match values.is_empty() {
        true => Term::Always,
        false => Term::any_of(values.iter().map(|value| one(value))),
    }
}

/// A condition on the request token, which RBAC cannot see.
fn unknowable(scope: &Scope<'_>, values: &[String]) -> Term<Principal> {
    Term::constant(values.is_empty() || scope.unknown)
}

/// None of `values`; always true when there are none.
fn unlisted(values: &[String], one: impl Fn(&str) -> Term<Principal>) -> Term<Principal> {
    match values.is_empty() {
        true => Term::Always,
        false => listed(values, one).negate(),
    }
}

/// The caller's SPIFFE ID matches the pattern.
fn identity(pattern: Pattern<'_>) -> Term<Principal> {
    match pattern.matcher() {
        None => Term::Always,
        Some(matcher) => Term::Match(authenticated(matcher)),
    }
}

/// The namespace in the caller's SPIFFE ID,
/// `spiffe://<td>/ns/<namespace>/...`, matches the pattern.
fn namespace(trust_domain: &str, pattern: Pattern<'_>) -> Term<Principal> {
    use string_matcher::MatchPattern;

    let base = format!("spiffe://{trust_domain}/ns/");
    let matcher = match pattern {
        Pattern::Any => return Term::Always,
        Pattern::Exact(namespace) => matching(MatchPattern::Prefix(format!("{base}{namespace}/"))),
        Pattern::Prefix(start) => matching(MatchPattern::Prefix(format!("{base}{start}"))),
        Pattern::Suffix(end) => regex(format!("{}[^/]*{}/.*", escape(&base), escape(end))),
    };
    Term::Match(authenticated(matcher))
}

fn authenticated(name: StringMatcher) -> Principal {
    principal_of(principal::Identifier::Authenticated(
        principal::Authenticated {
            principal_name: Some(name),
        },
    ))
}

/// The peer address is in (or, `negated`, outside) every block. A block
/// that does not parse (validation refuses those) makes the whole list
/// unknowable.
fn addresses(scope: &Scope<'_>, blocks: &[String], negated: bool) -> Term<Principal> {
    if blocks.is_empty() {
        return Term::Always;
    }
    let Some(ranges) = blocks
        .iter()
        .map(|block| cidr(block))
        .collect::<Option<Vec<_>>>()
    else {
        return Term::constant(scope.unknown);
    };

    let ranges = ranges
        .into_iter()
        .map(|range| Term::Match(principal_of(principal::Identifier::DirectRemoteIp(range))));
    let any = Term::any_of(ranges);
    match negated {
        true => any.negate(),
        false => any,
    }
}

/// `10.0.0.0/8`, or a single address as a /32 or /128, with the host bits
/// cleared (documents may write `192.0.2.77/24`).
fn cidr(block: &str) -> Option<CidrRange> {
    let (address, length) = match block.split_once('/') {
        Some((address, length)) => (address.parse::<IpAddr>().ok()?, Some(length.parse().ok()?)),
        None => (block.parse::<IpAddr>().ok()?, None),
    };

    let (network, length) = match address {
        IpAddr::V4(v4) => {
            let length = length.unwrap_or(32);
            let mask = u32::MAX
                .checked_shl(32u32.checked_sub(length)?)
                .unwrap_or(0);
            (IpAddr::V4((u32::from(v4) & mask).into()), length)
        }
        IpAddr::V6(v6) => {
            let length = length.unwrap_or(128);
            let mask = u128::MAX
                .checked_shl(128u32.checked_sub(length)?)
                .unwrap_or(0);
            (IpAddr::V6((u128::from(v6) & mask).into()), length)
        }
    };
    Some(CidrRange {
        address_prefix: network.to_string(),
        prefix_len: Some(UInt32Value { value: length }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_pattern(term: Term<Principal>) -> string_matcher::MatchPattern {
        let Term::Match(Principal {
            identifier: Some(principal::Identifier::Authenticated(auth)),
        }) = term
        else {
            panic!("not an authenticated principal");
        };
        auth.principal_name.unwrap().match_pattern.unwrap()
    }

    #[test]
    fn namespace_patterns_match_the_namespace_segment() {
        use string_matcher::MatchPattern;

        let prefix = namespace("td", Pattern::Prefix("team-"));
        let suffix = namespace("t.d", Pattern::Suffix("-prod"));

        assert_eq!(
            name_pattern(prefix),
            MatchPattern::Prefix("spiffe://td/ns/team-".into())
        );
        let MatchPattern::SafeRegex(regex) = name_pattern(suffix) else {
            panic!("a regex");
        };
        assert_eq!(regex.regex, r"spiffe://t\.d/ns/[^/]*-prod/.*");
    }

    #[test]
    fn cidr_reads_blocks_and_single_addresses() {
        let block = cidr("10.1.2.3/8").unwrap();
        let single = cidr("fd00::1").unwrap();

        assert_eq!(
            (
                block.address_prefix.as_str(),
                block.prefix_len.unwrap().value
            ),
            ("10.0.0.0", 8)
        );
        assert_eq!(
            (
                single.address_prefix.as_str(),
                single.prefix_len.unwrap().value
            ),
            ("fd00::1", 128)
        );
        assert_eq!(cidr("10.0.0.0/33"), None);
        assert_eq!(cidr("2001:db8::1/32").unwrap().address_prefix, "2001:db8::");
        assert_eq!(cidr("nonsense"), None);
    }
}

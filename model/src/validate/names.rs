//! Names: DNS-1123 labels and subdomains, DNS names with wildcards, label keys
//! and values.

const LABEL_RULE: &str = "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";

/// Whether `s` is a DNS-1123 label: 1 to 63 lowercase letters, digits and
/// `-`, starting and ending with a letter or digit.
pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';

    (1..=63).contains(&bytes.len())
        && bytes.iter().all(allowed)
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// Whether `s` is a DNS-1123 subdomain: DNS-1123 labels joined by `.`, at
/// most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// A DNS-1123 label, such as a namespace or most resource names.
pub(crate) fn label(s: &str) -> Result<(), String> {
    if is_dns1123_label(s) {
        return Ok(());
    }
    Err(format!("{s:?} is not a DNS-1123 label ({LABEL_RULE})"))
}

/// A DNS-1123 label or `*`.
pub(crate) fn label_or_any(s: &str) -> Result<(), String> {
    if s == "*" { Ok(()) } else { label(s) }
}

/// A DNS-1123 subdomain, such as a Node's name.
pub(crate) fn subdomain(s: &str) -> Result<(), String> {
    if is_dns1123_subdomain(s) {
        return Ok(());
    }
    Err(format!(
        "{s:?} is not a DNS-1123 subdomain (labels of {LABEL_RULE}, joined by '.', at most 253 characters)"
    ))
}

/// A DNS name a client may use, with `*` allowed as the whole leftmost label.
pub(crate) fn dns_name(s: &str) -> Result<(), String> {
    let rest = s.strip_prefix("*.").unwrap_or(s);
    if rest.contains('*') {
        return Err(format!(
            "{s:?} is not a DNS name: '*' may only be the whole leftmost label"
        ));
    }
    if is_dns1123_subdomain(rest) {
        return Ok(());
    }
    Err(format!(
        "{s:?} is not a DNS name (lowercase labels of letters, digits and '-', joined by '.')"
    ))
}

/// A label or annotation key: an optional DNS subdomain prefix and `/`, then a
/// name of at most 63 letters, digits, `-`, `_` and `.`.
pub(crate) fn label_key(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };

    if prefix.is_some_and(|prefix| !is_dns1123_subdomain(prefix)) {
        return Err(format!(
            "{s:?} is not a label key: the prefix must be a DNS-1123 subdomain"
        ));
    }
    if !is_qualified_name(name) {
        return Err(format!(
            "{s:?} is not a label key: the name must be 1 to 63 letters, digits, '-', '_' \
             or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A label value: empty, or up to 63 letters, digits, `-`, `_` and `.`,
/// starting and ending with a letter or digit.
pub(crate) fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() || is_qualified_name(s) {
        return Ok(());
    }
    Err(format!(
        "{s:?} is not a label value (at most 63 letters, digits, '-', '_' or '.', \
         starting and ending with a letter or digit)"
    ))
}

fn is_qualified_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');

    (1..=63).contains(&bytes.len())
        && bytes.iter().all(allowed)
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_short_lowercase_and_alphanumeric_at_the_ends() {
        for good in ["a", "orders", "web-1", "0x", &"a".repeat(63)] {
            assert!(is_dns1123_label(good), "{good}");
        }
        for bad in ["", "-a", "a-", "Orders", "a.b", "a_b", "é", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
    }

    #[test]
    fn subdomains_are_labels_joined_by_dots() {
        for good in ["web-1", "web-1.example.com", "a.b.c"] {
            assert!(is_dns1123_subdomain(good), "{good}");
        }
        let too_long = vec!["a".repeat(63); 4].join(".") + ".b";
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "A.b",
            &too_long,
            &format!("{}.a", "b".repeat(64)),
        ] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn dns_names_allow_a_wildcard_only_as_the_leftmost_label() {
        for good in ["orders.shop.svc", "*.shop.example.com", "orders"] {
            assert_eq!(dns_name(good), Ok(()), "{good}");
        }
        assert_eq!(
            dns_name("a.*.example.com").unwrap_err(),
            "\"a.*.example.com\" is not a DNS name: '*' may only be the whole leftmost label"
        );
        for bad in [
            "*",
            "*.",
            "**.example.com",
            "a*.example.com",
            "Orders.example.com",
            "a b",
        ] {
            assert!(dns_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_keys_take_an_optional_subdomain_prefix() {
        for good in ["app", "app.kubernetes.io/name", "team_1", "A.b-c"] {
            assert_eq!(label_key(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/app",
            "Example.com/app",
            "a/b/c",
            "-app",
            "app-",
            &"k".repeat(64),
        ] {
            assert!(label_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_values_may_be_empty() {
        assert_eq!(label_value(""), Ok(()));
        assert_eq!(label_value("v1.2_3"), Ok(()));
        assert!(label_value("has space").is_err());
        assert!(label_value(&"v".repeat(64)).is_err());
    }
}

//! SPIFFE IDs, and the patterns of them that policies and bindings accept.

const SCHEME: &str = "spiffe://";
const MAX_ID_BYTES: usize = 2048;
const MAX_TRUST_DOMAIN_BYTES: usize = 255;

/// Checks a SPIFFE ID against the SPIFFE ID specification; the error says
/// what is wrong.
///
/// The scheme is exactly `spiffe://`; the trust domain is lowercase letters,
/// digits, `.`, `-` and `_` (no port, no user info); each path segment is
/// letters, digits, `.`, `-` and `_`, and neither empty, `.` nor `..`. No
/// trailing `/`, query, fragment or percent-encoding; at most 2048 bytes.
pub fn validate_spiffe_id(id: &str) -> Result<(), String> {
    if id.len() > MAX_ID_BYTES {
        return Err(format!("longer than {MAX_ID_BYTES} bytes"));
    }
    let rest = id
        .strip_prefix(SCHEME)
        .ok_or("the scheme must be \"spiffe://\"")?;

    if let Some(found) = rest.chars().find(|c| matches!(c, '?' | '#' | '%')) {
        return Err(match found {
            '?' => "a query is not allowed",
            '#' => "a fragment is not allowed",
            _ => "percent-encoding is not allowed",
        }
        .to_owned());
    }

    let (trust_domain, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    check_trust_domain(trust_domain)?;
    check_path(path)
}

fn check_trust_domain(trust_domain: &str) -> Result<(), String> {
    if trust_domain.is_empty() {
        return Err("the trust domain is empty".to_owned());
    }
    if trust_domain.len() > MAX_TRUST_DOMAIN_BYTES {
        return Err(format!(
            "the trust domain is longer than {MAX_TRUST_DOMAIN_BYTES} bytes"
        ));
    }

    let allowed =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_');
    match trust_domain.chars().find(|c| !allowed(*c)) {
        None => Ok(()),
        Some(c) if c.is_ascii_uppercase() => {
            Err("the trust domain has an uppercase letter".to_owned())
        }
        Some(':') => Err("the trust domain has a port".to_owned()),
        Some('@') => Err("the trust domain has user info".to_owned()),
        Some(c) => Err(format!(
            "the trust domain has {c:?} (only lowercase letters, digits, '.', '-' and '_' are allowed)"
        )),
    }
}

fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Ok(());
    }

    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        check_segment(segment, i + 1 == segments.len())?;
    }
    Ok(())
}

fn check_segment(segment: &str, last: bool) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    match segment {
        "" if last => Err("a trailing '/' is not allowed".to_owned()),
        "" => Err("the path has an empty segment".to_owned()),
        "." | ".." => Err(format!("the path segment {segment:?} is not allowed")),
        _ => match segment.chars().find(|c| !allowed(*c)) {
            None => Ok(()),
            Some(c) => Err(format!(
                "the path has {c:?} (only letters, digits, '.', '-' and '_' are allowed)"
            )),
        },
    }
}

/// A SPIFFE ID, with the reason in the message when it is not one.
pub(crate) fn spiffe_id(s: &str) -> Result<(), String> {
    validate_spiffe_id(s).map_err(|reason| format!("{s:?} is not a SPIFFE ID: {reason}"))
}

/// A SPIFFE ID, or a prefix of one ending in `/*` such as `spiffe://td/ns/shop/*`.
pub(crate) fn id_or_prefix(s: &str) -> Result<(), String> {
    let Some(prefix) = s.strip_suffix("/*") else {
        return spiffe_id(s);
    };
    validate_spiffe_id(prefix)
        .map_err(|reason| format!("{s:?} is not a SPIFFE ID prefix: {reason}"))
}

/// A SPIFFE ID, a `/*` prefix of one, or `*` for any identity.
pub(crate) fn identity_pattern(s: &str) -> Result<(), String> {
    if s == "*" { Ok(()) } else { id_or_prefix(s) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids_follow_the_specification() {
        let cases: &[(&str, Result<(), &str>)] = &[
            ("spiffe://example.org", Ok(())),
            ("spiffe://example.org/ns/shop/sa/orders", Ok(())),
            ("spiffe://my_td-1.example/Path.With-Mixed_Case/0", Ok(())),
            (
                "spiffe://Example.org/ns/shop",
                Err("the trust domain has an uppercase letter"),
            ),
            (
                "spiffe://example.org:8443/ns/shop",
                Err("the trust domain has a port"),
            ),
            (
                "spiffe://admin@example.org/x",
                Err("the trust domain has user info"),
            ),
            ("spiffe:///ns/shop", Err("the trust domain is empty")),
            (
                "spiffe://example.org/ns//shop",
                Err("the path has an empty segment"),
            ),
            (
                "spiffe://example.org/ns/../sa",
                Err("the path segment \"..\" is not allowed"),
            ),
            (
                "spiffe://example.org/./sa",
                Err("the path segment \".\" is not allowed"),
            ),
            (
                "spiffe://example.org/ns/shop/",
                Err("a trailing '/' is not allowed"),
            ),
            (
                "spiffe://example.org/",
                Err("a trailing '/' is not allowed"),
            ),
            ("spiffe://example.org/ns?x=1", Err("a query is not allowed")),
            (
                "spiffe://example.org/ns#frag",
                Err("a fragment is not allowed"),
            ),
            (
                "spiffe://example.org/ns/sh%6fp",
                Err("percent-encoding is not allowed"),
            ),
            (
                "https://example.org/ns/shop",
                Err("the scheme must be \"spiffe://\""),
            ),
            (
                "SPIFFE://example.org/ns/shop",
                Err("the scheme must be \"spiffe://\""),
            ),
            (
                "spiffe:/example.org",
                Err("the scheme must be \"spiffe://\""),
            ),
            ("", Err("the scheme must be \"spiffe://\"")),
        ];
        for (id, expected) in cases {
            let got = validate_spiffe_id(id);
            assert_eq!(
                got.as_ref().map(|_| ()).map_err(String::as_str),
                *expected,
                "{id}"
            );
        }
    }

    #[test]
    fn odd_characters_are_named() {
        let err = validate_spiffe_id("spiffe://example.org/ns/sh op").unwrap_err();
        assert_eq!(
            err,
            "the path has ' ' (only letters, digits, '.', '-' and '_' are allowed)"
        );
        assert!(validate_spiffe_id("spiffe://exa mple.org").is_err());
    }

    #[test]
    fn ids_longer_than_2048_bytes_are_refused() {
        let long = format!("spiffe://example.org/{}", "a".repeat(2048));
        assert_eq!(
            validate_spiffe_id(&long).unwrap_err(),
            "longer than 2048 bytes"
        );
        let fits = format!("spiffe://example.org/{}", "a".repeat(2048 - 21));
        assert_eq!(validate_spiffe_id(&fits), Ok(()));
    }

    #[test]
    fn patterns_accept_prefixes_and_star() {
        assert_eq!(identity_pattern("*"), Ok(()));
        assert_eq!(identity_pattern("spiffe://example.org/ns/shop/*"), Ok(()));
        assert_eq!(identity_pattern("spiffe://example.org/*"), Ok(()));
        assert_eq!(
            identity_pattern("spiffe://example.org/ns/*/sa").unwrap_err(),
            "\"spiffe://example.org/ns/*/sa\" is not a SPIFFE ID: the path has '*' \
             (only letters, digits, '.', '-' and '_' are allowed)"
        );
        assert!(id_or_prefix("*").is_err());
        assert!(identity_pattern("spiffe://Example.org/*").is_err());
    }
}

//! HTTP vocabulary: methods, path patterns, header names and condition keys.

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];
const MAX_PATH_BYTES: usize = 1024;

/// Headers that describe one connection rather than the request, and so
/// cannot carry a forwarded claim.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Condition keys that take no argument.
const PLAIN_KEYS: [&str; 7] = [
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "source.ip",
    "source.identity",
    "source.namespace",
    "destination.port",
];

/// An HTTP method in uppercase, or `*`.
pub(crate) fn method(s: &str) -> Result<(), String> {
    if s == "*" || METHODS.contains(&s) {
        return Ok(());
    }

    let upper = s.to_ascii_uppercase();
    if METHODS.contains(&upper.as_str()) {
        return Err(format!(
            "{s:?} is not an HTTP method (methods are uppercase, e.g. {upper:?})"
        ));
    }
    Err(format!(
        "{s:?} is not an HTTP method (expected one of {} or \"*\")",
        METHODS.join(", ")
    ))
}

/// A path pattern: `*`, an exact path, a prefix such as `/api/*`, or a suffix
/// such as `*.png`.
pub(crate) fn path_pattern(s: &str) -> Result<(), String> {
    let problem = path_problem(s);
    problem.map_or(Ok(()), |problem| {
        Err(format!("{s:?} is not a path pattern: {problem}"))
    })
}

fn path_problem(s: &str) -> Option<&'static str> {
    if s == "*" {
        return None;
    }
    if s.len() > MAX_PATH_BYTES {
        return Some("longer than 1024 bytes");
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("whitespace is not allowed");
    }
    if s.contains(['?', '#']) {
        return Some("'?' and '#' are not allowed; patterns match the path only");
    }

    let inner = s
        .strip_suffix('*')
        .or_else(|| s.strip_prefix('*'))
        .unwrap_or(s);
    if inner.contains('*') {
        return Some("'*' may only be the first or the last character");
    }
    if !s.starts_with(['/', '*']) {
        return Some("must start with '/' (or '*' for a suffix)");
    }
    None
}

/// Whether `s` is an HTTP header name (an RFC 9110 token).
pub(crate) fn is_header_name(s: &str) -> bool {
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    !s.is_empty() && s.as_bytes().iter().all(tchar)
}

/// A header that may receive a forwarded claim.
pub(crate) fn forward_header(s: &str) -> Result<(), String> {
    if s.starts_with(':') {
        return Err(format!("{s:?} is a pseudo header and cannot carry a claim"));
    }
    if !is_header_name(s) {
        return Err(format!("{s:?} is not an HTTP header name"));
    }
    if HOP_BY_HOP.contains(&s.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "{s:?} is a hop-by-hop header and cannot carry a claim"
        ));
    }
    Ok(())
}

/// A condition key such as `request.headers[x-tenant]`,
/// `request.auth.claims[realm][roles]` or `source.ip`.
pub(crate) fn condition_key(key: &str) -> Result<(), String> {
    let valid = if PLAIN_KEYS.contains(&key) {
        true
    } else if let Some(rest) = key.strip_prefix("request.headers") {
        rest.strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .is_some_and(is_header_name)
    } else if let Some(rest) = key.strip_prefix("request.auth.claims") {
        is_claim_path(rest)
    } else {
        false
    };

    if valid {
        return Ok(());
    }
    Err(format!(
        "{key:?} is not a condition key (expected request.headers[<name>], \
         request.auth.claims[<claim>], {})",
        PLAIN_KEYS.join(", ")
    ))
}

/// `[a]`, or nested claims as `[a][b]`; each claim name non-empty.
fn is_claim_path(mut rest: &str) -> bool {
    if rest.is_empty() {
        return false;
    }

    while !rest.is_empty() {
        let Some((claim, after)) = rest.strip_prefix('[').and_then(|r| r.split_once(']')) else {
            return false;
        };
        if claim.is_empty() || claim.contains('[') {
            return false;
        }
        rest = after;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_uppercase_with_a_hint_for_lowercase() {
        for good in ["GET", "PATCH", "CONNECT", "*"] {
            assert_eq!(method(good), Ok(()), "{good}");
        }
        assert_eq!(
            method("get").unwrap_err(),
            "\"get\" is not an HTTP method (methods are uppercase, e.g. \"GET\")"
        );
        assert!(
            method("FETCH")
                .unwrap_err()
                .contains("expected one of GET, HEAD")
        );
        assert!(method("").is_err());
    }

    #[test]
    fn path_patterns_allow_star_only_at_one_end() {
        for good in [
            "*",
            "/",
            "/api",
            "/api/*",
            "*.png",
            "/static/img.png",
            "/a-b_c~d%20",
        ] {
            assert_eq!(path_pattern(good), Ok(()), "{good}");
        }
        let cases = [
            (
                "/api/*/x",
                "'*' may only be the first or the last character",
            ),
            ("*/api/*", "'*' may only be the first or the last character"),
            ("**", "'*' may only be the first or the last character"),
            ("api/v1", "must start with '/' (or '*' for a suffix)"),
            ("", "must start with '/' (or '*' for a suffix)"),
            ("/a b", "whitespace is not allowed"),
            (
                "/search?q=1",
                "'?' and '#' are not allowed; patterns match the path only",
            ),
            (
                "/page#top",
                "'?' and '#' are not allowed; patterns match the path only",
            ),
        ];
        for (bad, problem) in cases {
            assert_eq!(
                path_pattern(bad).unwrap_err(),
                format!("{bad:?} is not a path pattern: {problem}")
            );
        }
        let long = format!("/{}", "a".repeat(1024));
        assert!(
            path_pattern(&long)
                .unwrap_err()
                .contains("longer than 1024 bytes")
        );
    }

    #[test]
    fn forwarded_headers_are_plain_end_to_end_tokens() {
        assert_eq!(forward_header("x-user-id"), Ok(()));
        assert_eq!(forward_header("X-Tenant"), Ok(()));
        assert!(
            forward_header(":authority")
                .unwrap_err()
                .contains("pseudo header")
        );
        assert!(
            forward_header("Transfer-Encoding")
                .unwrap_err()
                .contains("hop-by-hop")
        );
        assert!(
            forward_header("x user")
                .unwrap_err()
                .contains("not an HTTP header name")
        );
        assert!(forward_header("").is_err());
    }

    #[test]
    fn condition_keys_name_known_attributes() {
        for good in [
            "request.headers[x-tenant]",
            "request.auth.claims[group]",
            "request.auth.claims[realm_access][roles]",
            "request.auth.principal",
            "source.ip",
            "destination.port",
        ] {
            assert_eq!(condition_key(good), Ok(()), "{good}");
        }
        for bad in [
            "request.headers",
            "request.headers[]",
            "request.headers[bad header]",
            "request.auth.claims",
            "request.auth.claims[]",
            "request.auth.claims[a]b",
            "request.auth.claims[a[b]]",
            "source.port",
            "",
        ] {
            assert!(condition_key(bad).is_err(), "{bad}");
        }
    }
}

//! Checks on a JwtIssuer and a RequestAuthentication.

use std::collections::HashMap;

use serde_json::Value;

use super::policy::check_target;
use super::{Problems, http, names, net};
use crate::spec::{IssuerRule, JwtIssuerSpec, RequestAuthenticationSpec};

const ALGORITHMS: [&str; 9] = [
    "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA",
];
const MAX_CLOCK_SKEW_SECONDS: u32 = 600;

pub(super) fn check_issuer(spec: &JwtIssuerSpec, p: &mut Problems) {
    if spec.issuer.is_empty() {
        p.add("spec.issuer", "must be set");
    } else {
        p.check("spec.issuer", net::issuer_url(&spec.issuer));
    }
    p.each("spec.audiences", &spec.audiences, |audience| {
        non_empty("audience", audience)
    });

    check_keys(spec, p);

    p.required("spec.algorithms", &spec.algorithms, "algorithm");
    p.each("spec.algorithms", &spec.algorithms, |name| algorithm(name));
    if spec.clock_skew_seconds > MAX_CLOCK_SKEW_SECONDS {
        let message = format!(
            "{} is more than {MAX_CLOCK_SKEW_SECONDS}",
            spec.clock_skew_seconds
        );
        p.add("spec.clockSkewSeconds", message);
    }
}

fn check_keys(spec: &JwtIssuerSpec, p: &mut Problems) {
    match (&spec.jwks, &spec.jwks_uri) {
        (Some(jwks), None) => p.check("spec.jwks", inline_jwks(jwks)),
        (None, Some(uri)) => p.check("spec.jwksUri", net::https_url(uri)),
        _ => p.add("spec", "exactly one of jwks and jwksUri must be set"),
    }
}

/// Inline JWKS text: a JSON object with a `keys` array.
fn inline_jwks(text: &str) -> Result<(), String> {
    let value: Value = serde_json::from_str(text).map_err(|err| format!("is not JSON: {err}"))?;
    if value.get("keys").is_some_and(Value::is_array) {
        return Ok(());
    }
    Err("is not a JWKS: it has no \"keys\" array".to_owned())
}

fn algorithm(name: &str) -> Result<(), String> {
    if ALGORITHMS.contains(&name) {
        return Ok(());
    }

    if name.eq_ignore_ascii_case("none") {
        return Err(format!(
            "{name:?} is refused: unsigned tokens prove nothing"
        ));
    }
    if name.to_ascii_uppercase().starts_with("HS") {
        return Err(format!(
            "{name:?} is refused: with a shared secret, anyone who can verify a token can forge one"
        ));
    }
    Err(format!(
        "{name:?} is not a supported algorithm (expected one of {})",
        ALGORITHMS.join(", ")
    ))
}

pub(super) fn check_request_authentication(spec: &RequestAuthenticationSpec, p: &mut Problems) {
    check_target("spec.targetService", spec.target_service.as_deref(), p);

    p.required("spec.issuers", &spec.issuers, "issuer");
    if !p.length("spec.issuers", &spec.issuers) {
        return;
    }

    let mut seen = HashMap::new();
    for (i, rule) in spec.issuers.iter().enumerate() {
        let path = format!("spec.issuers[{i}]");
        check_issuer_rule(&path, rule, p);
        if let Some(first) = seen.insert(rule.issuer.as_str(), i) {
            let message = format!(
                "issuer {:?} is already listed at spec.issuers[{first}]",
                rule.issuer
            );
            p.add(format!("{path}.issuer"), message);
        }
    }
}

fn check_issuer_rule(path: &str, rule: &IssuerRule, p: &mut Problems) {
    p.check(&format!("{path}.issuer"), names::label(&rule.issuer));

    let claims_path = format!("{path}.forwardClaims");
    if !p.length(&claims_path, &rule.forward_claims) {
        return;
    }

    let mut headers = HashMap::new();
    for (i, forward) in rule.forward_claims.iter().enumerate() {
        let item = format!("{claims_path}[{i}]");
        p.check(&format!("{item}.claim"), non_empty("claim", &forward.claim));
        p.check(
            &format!("{item}.header"),
            http::forward_header(&forward.header),
        );

        if let Some(first) = headers.insert(forward.header.to_ascii_lowercase(), i) {
            let message = format!(
                "header {:?} is already set by {claims_path}[{first}]",
                forward.header
            );
            p.add(format!("{item}.header"), message);
        }
    }
}

fn non_empty(what: &str, s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err(format!("{s:?} is not a {what}: it is empty"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_algorithms_are_refused_with_a_reason() {
        assert_eq!(algorithm("EdDSA"), Ok(()));
        assert!(algorithm("none").unwrap_err().contains("unsigned tokens"));
        assert!(algorithm("HS256").unwrap_err().contains("shared secret"));
        assert!(
            algorithm("es256")
                .unwrap_err()
                .contains("expected one of ES256")
        );
    }

    #[test]
    fn inline_jwks_needs_a_keys_array() {
        assert_eq!(inline_jwks(r#"{"keys": []}"#), Ok(()));
        assert!(
            inline_jwks(r#"{"keys": {}}"#)
                .unwrap_err()
                .contains("no \"keys\" array")
        );
        assert!(
            inline_jwks("not json")
                .unwrap_err()
                .starts_with("is not JSON")
        );
    }
}

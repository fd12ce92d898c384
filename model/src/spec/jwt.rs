//! The JwtIssuer and RequestAuthentication specs: which tokens services accept.

use serde::{Deserialize, Serialize};

/// The signing algorithms a JwtIssuer accepts when its document names none.
pub const DEFAULT_ALGORITHMS: [&str; 2] = ["ES256", "RS256"];

/// An issuer of JSON Web Tokens and the keys that verify them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtIssuerSpec {
    /// The `iss` claim: an https URL (http only for localhost in development).
    pub issuer: String,

    /// Accepted `aud` values; empty accepts any audience.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,

    /// An inline JWKS document (JSON text with a `keys` array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,

    /// An https URL the control plane polls for the JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,

    /// Accepted signing algorithms; `ES256` and `RS256` when unset.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,

    /// Leeway for `exp` and `nbf`, in seconds; 60 when unset, at most 600.
    #[serde(default = "default_clock_skew")]
    pub clock_skew_seconds: u32,
}

fn default_algorithms() -> Vec<String> {
    DEFAULT_ALGORITHMS.map(String::from).to_vec()
}

fn default_clock_skew() -> u32 {
    60
}

/// Which issuers' tokens a service accepts, and which claims it passes on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestAuthenticationSpec {
    /// The Service this applies to; unset or empty means every service in the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_service: Option<String>,

    /// The accepted issuers; at least one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<IssuerRule>,
}

/// One accepted issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerRule {
    /// The name of a JwtIssuer in the same namespace.
    pub issuer: String,

    /// Whether a request without a token is refused; true when unset.
    #[serde(default = "required_by_default")]
    pub required: bool,

    /// Claims copied into request headers for the application.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_claims: Vec<ClaimToHeader>,
}

fn required_by_default() -> bool {
    true
}

/// Copies one token claim into one request header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeader {
    /// The claim's name.
    pub claim: String,
    /// The header to set; an HTTP token, not hop-by-hop, not a pseudo header.
    pub header: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_defaults_fill_algorithms_and_clock_skew() {
        let spec: JwtIssuerSpec =
            serde_json::from_str(r#"{"issuer": "https://id.example.com"}"#).unwrap();
        assert_eq!(spec.algorithms, ["ES256", "RS256"]);
        assert_eq!(spec.clock_skew_seconds, 60);
    }

    #[test]
    fn issuer_rules_are_required_unless_said_otherwise() {
        let rule: IssuerRule = serde_json::from_str(r#"{"issuer": "corp"}"#).unwrap();
        assert!(rule.required);
        let rule: IssuerRule =
            serde_json::from_str(r#"{"issuer": "corp", "required": false}"#).unwrap();
        assert!(!rule.required);
    }
}

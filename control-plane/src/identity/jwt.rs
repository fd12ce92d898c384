//! JWT signing keys (ES256), the JWKS that publishes them, and JWT-SVIDs.
//!
//! A [`SigningKey`] is an ECDSA P-256 private key. Its key id is the RFC 7638
//! thumbprint of its public JWK, so the same key always has the same id, on
//! every replica and after every restart. A token is a compact JWS:
//! `base64url(header) "." base64url(claims) "." base64url(r || s)`, with the
//! header `{"alg":"ES256","kid":...,"typ":"JWT"}`.
//!
//! [`verify`] is the one way tokens are checked: ES256 only (`none`, HMAC and
//! RSA are refused before any key is looked at), the key found by its id in a
//! [`Jwks`], then expiry, audience and a SPIFFE ID subject. Nothing secret is
//! compared here: signature verification is a public-key operation, so it
//! needs no constant-time comparison of ours.

use std::fmt;
use std::time::Duration;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::barrier::SecretBytes;

/// The only signing algorithm Palisade issues and accepts.
pub const ALGORITHM: &str = "ES256";

/// The largest token [`verify`] looks at, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How many seconds past `exp` a token is still accepted, to absorb clock
/// skew between the control plane and the hosts that check its tokens.
pub const EXPIRY_LEEWAY_SECS: i64 = 30;

const KEY_TYPE: &str = "EC";
const CURVE: &str = "P-256";
const KEY_USE: &str = "sig";
const TOKEN_TYPE: &str = "JWT";
const COORDINATE_LEN: usize = 32;
const UNCOMPRESSED_POINT_TAG: u8 = 0x04;

/// Errors of signing keys, JWKS and JWT-SVIDs. Messages never carry token or
/// key bytes.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("could not generate a signing key")]
    KeyGeneration,
    #[error("the PKCS#8 document is not an ECDSA P-256 private key")]
    MalformedKey,
    #[error("signing failed")]
    Signing,
    #[error("claims cannot be signed: {0}")]
    InvalidClaims(&'static str),
    #[error("token is {len} bytes, over the limit of {MAX_TOKEN_BYTES}")]
    TooLarge { len: usize },
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    #[error("token algorithm is not ES256")]
    UnsupportedAlgorithm,
    #[error("token type is neither JWT nor JOSE")]
    UnsupportedType,
    #[error("token header has critical extensions")]
    CriticalExtension,
    #[error("token header has no key id")]
    MissingKeyId,
    #[error("no key in the set has the token's key id")]
    UnknownKey,
    #[error("key {kid:?} in the set is not an ES256 signing key")]
    MalformedJwk { kid: String },
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token expired at {exp} (now {now}, leeway {EXPIRY_LEEWAY_SECS} s)")]
    Expired { exp: i64, now: i64 },
    #[error("token is not for audience {audience:?}")]
    WrongAudience { audience: String },
    #[error("token subject is not a SPIFFE ID: {reason}")]
    InvalidSubject { reason: String },
    #[error("jwks is not valid: {0}")]
    MalformedJwks(serde_json::Error),
}

/// An ES256 signing key. Debug shows only the key id.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    pkcs8: SecretBytes,
    jwk: Jwk,
}

impl SigningKey {
    /// Makes a new random P-256 key.
    pub fn generate() -> Result<Self, JwtError> {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| JwtError::KeyGeneration)?;

        Self::from_pkcs8(&SecretBytes::new(document.as_ref().to_vec()))
    }

    /// Loads a key from an unencrypted PKCS#8 v1 document, as unsealed from
    /// the barrier.
    pub fn from_pkcs8(pkcs8: &SecretBytes) -> Result<Self, JwtError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.expose())
            .map_err(|_| JwtError::MalformedKey)?;
        let jwk = Jwk::from_public_point(pair.public_key().as_ref())?;

        Ok(Self {
            pair,
            pkcs8: pkcs8.clone(),
            jwk,
        })
    }

    /// The PKCS#8 document of this key, for the caller to seal.
    pub fn to_pkcs8(&self) -> SecretBytes {
        self.pkcs8.clone()
    }

    /// The key id: the RFC 7638 thumbprint of the public JWK.
    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    /// The public half, as published in the JWKS.
    pub fn public_jwk(&self) -> Jwk {
        self.jwk.clone()
    }

    /// Signs `claims` into a compact JWT-SVID after checking that the subject
    /// is a SPIFFE ID, that there is an audience and that `exp` is after `iat`.
    pub fn mint(&self, claims: &JwtSvidClaims) -> Result<String, JwtError> {
        check_subject(&claims.sub)?;
        if claims.aud.is_empty() {
            return Err(JwtError::InvalidClaims("no audience"));
        }
        if claims.exp <= claims.iat {
            return Err(JwtError::InvalidClaims("exp is not after iat"));
        }

        let header = MintedHeader {
            alg: ALGORITHM,
            kid: self.kid(),
            typ: TOKEN_TYPE,
        };
        self.sign_compact(&to_json_bytes(&header), &to_json_bytes(claims))
    }

    fn sign_compact(&self, header: &[u8], claims: &[u8]) -> Result<String, JwtError> {
        let mut token = BASE64URL.encode(header);
        token.push('.');
        BASE64URL.encode_string(claims, &mut token);

        let signature = self
            .pair
            .sign(&SystemRandom::new(), token.as_bytes())
            .map_err(|_| JwtError::Signing)?;
        token.push('.');
        BASE64URL.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

/// A public ES256 key as a JSON Web Key (RFC 7517, RFC 7518 section 6.2).
///
/// Only the P-256 signing keys that Palisade publishes are described: every
/// field is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Always `"EC"`.
    pub kty: String,
    /// Always `"P-256"`.
    pub crv: String,
    /// The point's x coordinate, 32 bytes big-endian, base64url without padding.
    pub x: String,
    /// The point's y coordinate, 32 bytes big-endian, base64url without padding.
    pub y: String,
    /// The key id that token headers name.
    pub kid: String,
    /// Always `"sig"`.
    #[serde(rename = "use")]
    pub key_use: String,
    /// Always `"ES256"`.
    pub alg: String,
}

impl Jwk {
    fn from_public_point(point: &[u8]) -> Result<Self, JwtError> {
        let coordinates = point
            .strip_prefix(&[UNCOMPRESSED_POINT_TAG])
            .filter(|coordinates| coordinates.len() == 2 * COORDINATE_LEN)
            .ok_or(JwtError::MalformedKey)?;
        let (x, y) = coordinates.split_at(COORDINATE_LEN);

        let mut jwk = Self {
            kty: KEY_TYPE.to_owned(),
            crv: CURVE.to_owned(),
            x: BASE64URL.encode(x),
            y: BASE64URL.encode(y),
            kid: String::new(),
            key_use: KEY_USE.to_owned(),
            alg: ALGORITHM.to_owned(),
        };
        jwk.kid = jwk.thumbprint();
        Ok(jwk)
    }

    /// The RFC 7638 thumbprint: base64url of the SHA-256 of the required
    /// members (`crv`, `kty`, `x`, `y`) in lexicographic order, no whitespace.
    pub fn thumbprint(&self) -> String {
        let canonical = serde_json::json!({
            "crv": self.crv,
            "kty": self.kty,
            "x": self.x,
            "y": self.y,
        });
        let hash = digest::digest(&digest::SHA256, canonical.to_string().as_bytes());
        BASE64URL.encode(hash.as_ref())
    }

    /// The uncompressed SEC 1 point `04 || x || y`, after checking that this
    /// is an ES256 signing key.
    pub fn public_point(&self) -> Result<Vec<u8>, JwtError> {
        let malformed = || JwtError::MalformedJwk {
            kid: self.kid.clone(),
        };
        let described = self.kty == KEY_TYPE
            && self.crv == CURVE
            && self.key_use == KEY_USE
            && self.alg == ALGORITHM;
        if !described {
            return Err(malformed());
        }

        let mut point = vec![UNCOMPRESSED_POINT_TAG];
        for coordinate in [&self.x, &self.y] {
            let bytes = BASE64URL.decode(coordinate).map_err(|_| malformed())?;
            if bytes.len() != COORDINATE_LEN {
                return Err(malformed());
            }
            point.extend_from_slice(&bytes);
        }
        Ok(point)
    }
}

/// A JSON Web Key Set: `{"keys": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys, current and overlapping ones alike.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// A set of the given keys.
    pub fn new(keys: impl IntoIterator<Item = Jwk>) -> Self {
        Self {
            keys: keys.into_iter().collect(),
        }
    }

    /// The key with id `kid`, if the set has it.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|key| key.kid == kid)
    }

    /// The set as compact JSON, as served at `/.well-known/jwks.json`.
    pub fn to_json(&self) -> String {
        String::from_utf8(to_json_bytes(self)).expect("serde_json writes UTF-8")
    }

    /// Parses a set, as received from the control plane.
    pub fn from_json(text: &str) -> Result<Self, JwtError> {
        serde_json::from_str(text).map_err(JwtError::MalformedJwks)
    }
}

impl FromIterator<Jwk> for Jwks {
    fn from_iter<I: IntoIterator<Item = Jwk>>(keys: I) -> Self {
        Self::new(keys)
    }
}

/// The claims of a JWT-SVID.
///
/// `aud` is written as a JSON string when there is one audience and as an
/// array when there are several; both forms are read. Other claims in a
/// token (`iss`, `nbf`, ...) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtSvidClaims {
    /// The workload's SPIFFE ID.
    pub sub: String,
    /// Who the token is for; [`verify`] wants its audience among them.
    #[serde(with = "audience")]
    pub aud: Vec<String>,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: i64,
    /// Issue time, in seconds since the Unix epoch.
    pub iat: i64,
    /// An optional unique token id, for callers that track replays; Palisade
    /// sets none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl JwtSvidClaims {
    /// Claims for `subject`, issued at `issued_at` (Unix seconds) and valid
    /// for `ttl`, without a `jti`.
    pub fn new(
        subject: impl Into<String>,
        audiences: Vec<String>,
        issued_at: i64,
        ttl: Duration,
    ) -> Self {
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        Self {
            sub: subject.into(),
            aud: audiences,
            exp: issued_at.saturating_add(ttl),
            iat: issued_at,
            jti: None,
        }
    }
}

/// Checks a JWT-SVID against `jwks` and returns its claims.
///
/// Refuses tokens over [`MAX_TOKEN_BYTES`], any algorithm but ES256, a `typ`
/// other than JWT or JOSE, any `crit` header, a key id not in `jwks`, a bad
/// signature, `exp` more than [`EXPIRY_LEEWAY_SECS`] before `now_unix`, an
/// `aud` without `audience`, and a `sub` that is not a SPIFFE ID.
pub fn verify(
    token: &str,
    jwks: &Jwks,
    audience: &str,
    now_unix: i64,
) -> Result<JwtSvidClaims, JwtError> {
    let parts = CompactToken::split(token)?;
    let header: ReceivedHeader =
        decode_segment(parts.header, "header is not a base64url JSON object")?;
    let kid = header.check()?;

    let jwk = jwks.find(kid).ok_or(JwtError::UnknownKey)?;
    parts.check_signature(jwk)?;

    let claims: JwtSvidClaims =
        decode_segment(parts.claims, "claims are not a base64url JWT-SVID object")?;
    check_claims(&claims, audience, now_unix)?;
    Ok(claims)
}

fn check_claims(claims: &JwtSvidClaims, audience: &str, now_unix: i64) -> Result<(), JwtError> {
    if now_unix >= claims.exp.saturating_add(EXPIRY_LEEWAY_SECS) {
        return Err(JwtError::Expired {
            exp: claims.exp,
            now: now_unix,
        });
    }
    if !claims.aud.iter().any(|candidate| candidate == audience) {
        return Err(JwtError::WrongAudience {
            audience: audience.to_owned(),
        });
    }
    check_subject(&claims.sub)
}

fn check_subject(subject: &str) -> Result<(), JwtError> {
    palisade_model::validate_spiffe_id(subject)
        .map_err(|reason| JwtError::InvalidSubject { reason })
}

/// A token cut at its dots, still encoded.
struct CompactToken<'a> {
    signing_input: &'a str,
    header: &'a str,
    claims: &'a str,
    signature: &'a str,
}

impl<'a> CompactToken<'a> {
    fn split(token: &'a str) -> Result<Self, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::TooLarge { len: token.len() });
        }
        let malformed = || JwtError::Malformed("not three dot-separated segments");

        let (signing_input, signature) = token.rsplit_once('.').ok_or_else(malformed)?;
        let (header, claims) = signing_input.split_once('.').ok_or_else(malformed)?;
        if claims.contains('.') {
            return Err(malformed());
        }

        Ok(Self {
            signing_input,
            header,
            claims,
            signature,
        })
    }

    fn check_signature(&self, jwk: &Jwk) -> Result<(), JwtError> {
        let point = jwk.public_point()?;
        let signature = BASE64URL
            .decode(self.signature)
            .map_err(|_| JwtError::Malformed("signature is not base64url"))?;

        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(self.signing_input.as_bytes(), &signature)
            .map_err(|_| JwtError::BadSignature)
    }
}

/// The header `mint` writes, in this field order.
#[derive(Serialize)]
struct MintedHeader<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'static str,
}

/// The header members `verify` looks at.
#[derive(Deserialize)]
struct ReceivedHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde_json::Value>,
}

impl ReceivedHeader {
    /// Checks the header and returns the key id it names.
    fn check(&self) -> Result<&str, JwtError> {
        if self.alg != ALGORITHM {
            return Err(JwtError::UnsupportedAlgorithm);
        }
        if !matches!(self.typ.as_deref(), None | Some("JWT" | "JOSE")) {
            return Err(JwtError::UnsupportedType);
        }
        if self.crit.is_some() {
            return Err(JwtError::CriticalExtension);
        }
        self.kid.as_deref().ok_or(JwtError::MissingKeyId)
    }
}

/// Decodes one base64url JSON segment. Failures are reported as `what` only:
/// serde's messages can quote the offending value.
fn decode_segment<T: DeserializeOwned>(segment: &str, what: &'static str) -> Result<T, JwtError> {
    let bytes = BASE64URL
        .decode(segment)
        .map_err(|_| JwtError::Malformed(what))?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed(what))
}

fn to_json_bytes(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("plain structs of strings and integers always serialize")
}

/// `aud` as a string when single, an array when several.
mod audience {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    pub fn serialize<S: Serializer>(
        audiences: &[String],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match audiences {
            [single] => single.serialize(serializer),
            several => several.serialize(serializer),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<String>, D::Error> {
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(single) => vec![single],
            OneOrMany::Many(several) => several,
        })
    }
}

#[cfg(test)]
mod tests;

//! One-time join tokens: how a new agent proves it may attest as a Node.
//!
//! A token reads `<id>.<secret>`. The id finds the stored record; only a
//! SHA-256 hash of the secret is stored, and it is compared in constant
//! time. A token is good once, until it expires; a used token stays on
//! record, so that a replay is recognised and audited as one.

use std::fmt;
use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use super::records::{JOIN_TOKEN, JoinTokenRecord, key};

/// A token's lifetime unless asked otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// The longest lifetime a token may have.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Anything longer than this is not a token.
const MAX_TOKEN_LEN: usize = 128;
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// Why a presented token is refused. The messages never repeat the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the join token is malformed")]
    Malformed,
    #[error("the join token is not known")]
    Unknown,
    #[error("the join token was already used")]
    Used,
    #[error("the join token expired")]
    Expired,
    #[error("random number generator failed")]
    Random,
}

/// A freshly made token: the text to hand to the agent once, and the
/// record to store.
pub struct NewToken {
    pub id: String,
    pub text: String,
    pub record: JoinTokenRecord,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A token as presented, split into its parts.
pub struct Presented<'a> {
    pub id: &'a str,
    secret: &'a str,
}

impl fmt::Debug for Presented<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presented")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Makes a token for `node`, valid for `ttl` from `now` (Unix seconds).
pub fn generate(
    node: &str,
    created_by: &str,
    ttl: Duration,
    now: i64,
) -> Result<NewToken, TokenError> {
    let id = hex::encode(random::<ID_BYTES>()?);
    let secret = URL_SAFE_NO_PAD.encode(random::<SECRET_BYTES>()?);

    let record = JoinTokenRecord {
        node: node.to_owned(),
        secret_hash: hash(&secret),
        created_by: created_by.to_owned(),
        created: now,
        expires: now + ttl.as_secs() as i64,
        used: None,
    };
    Ok(NewToken {
        text: format!("{id}.{secret}"),
        id,
        record,
    })
}

/// Splits a presented token, refusing anything that cannot be one.
pub fn parse(token: &str) -> Result<Presented<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (id, secret) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let id_ok = id.len() == ID_BYTES * 2 && id.bytes().all(|b| b.is_ascii_hexdigit());
    if !id_ok || secret.is_empty() {
        return Err(TokenError::Malformed);
    }
    Ok(Presented { id, secret })
}

/// The store key of a token's record.
pub fn record_key(id: &str) -> String {
    key(JOIN_TOKEN, "", &id.to_ascii_lowercase())
}

/// Checks a presented token against its record at `now`.
pub fn check(
    presented: &Presented<'_>,
    record: &JoinTokenRecord,
    now: i64,
) -> Result<(), TokenError> {
    let expected = record.secret_hash.as_bytes();
    let matches: bool = hash(presented.secret).as_bytes().ct_eq(expected).into();
    if !matches {
        return Err(TokenError::Unknown);
    }
    if record.used.is_some() {
        return Err(TokenError::Used);
    }
    if record.expires <= now {
        return Err(TokenError::Expired);
    }
    Ok(())
}

fn hash(secret: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, secret.as_bytes()))
}

fn random<const N: usize>() -> Result<[u8; N], TokenError> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| TokenError::Random)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> NewToken {
        generate("web-1", "spiffe://td/admin/a", DEFAULT_TTL, 1000).unwrap()
    }

    #[test]
    fn fresh_token_passes_once_parsed() {
        let token = token();

        let presented = parse(&token.text).unwrap();

        assert_eq!(presented.id, token.id);
        assert_eq!(check(&presented, &token.record, 1001), Ok(()));
    }

    #[test]
    fn record_holds_no_secret() {
        let token = token();
        let secret = token.text.split_once('.').unwrap().1;

        assert!(
            !serde_json::to_string(&token.record)
                .unwrap()
                .contains(secret)
        );
        assert!(!format!("{token:?}").contains(secret));
    }

    #[test]
    fn wrong_secret_is_unknown() {
        let token = token();
        let forged = format!("{}.{}", token.id, "A".repeat(43));

        let presented = parse(&forged).unwrap();

        assert_eq!(
            check(&presented, &token.record, 1001),
            Err(TokenError::Unknown)
        );
    }

    #[test]
    fn used_and_expired_tokens_are_refused() {
        let mut token = token();
        let text = token.text.clone();
        let presented = parse(&text).unwrap();

        assert_eq!(
            check(&presented, &token.record, 1000 + 3600),
            Err(TokenError::Expired)
        );
        token.record.used = Some(1002);
        assert_eq!(
            check(&presented, &token.record, 1003),
            Err(TokenError::Used)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for text in ["", "nodot", "xyz.secret", &format!("{}.s", "a".repeat(200))] {
            assert!(matches!(parse(text), Err(TokenError::Malformed)), "{text}");
        }
    }
}

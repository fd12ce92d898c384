//! Identity settings of `palisade-cp serve`: certificate and token
//! lifetimes, automatic rotation, and where the JWKS is published. In a
//! TOML file they sit under `[identity]`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// A workload certificate's lifetime unless configured.
pub const DEFAULT_WORKLOAD_TTL_SECS: u64 = 3600;
/// A node certificate's lifetime unless configured.
pub const DEFAULT_NODE_TTL_SECS: u64 = 24 * 3600;
/// The longest JWT-SVID lifetime unless configured.
pub const DEFAULT_JWT_SVID_TTL_SECS: u64 = 300;
/// How long a CA made by rotation is valid.
pub const DEFAULT_CA_LIFETIME_SECS: u64 = 365 * 24 * 3600;
/// How long a JWT signing key signs before the schedule replaces it.
pub const DEFAULT_JWT_KEY_LIFETIME_SECS: u64 = 30 * 24 * 3600;
/// Where the JWKS is served over HTTPS unless configured.
pub const DEFAULT_JWKS_LISTEN: &str = "0.0.0.0:7444";
/// No certificate lives shorter than this, nor longer than a year.
const MIN_TTL_SECS: u64 = 2;
const MAX_TTL_SECS: u64 = 366 * 24 * 3600;

/// The `[identity]` table of the TOML file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    pub workload_ttl_secs: Option<u64>,
    pub node_ttl_secs: Option<u64>,
    pub jwt_svid_ttl_secs: Option<u64>,
    pub ca_lifetime_secs: Option<u64>,
    pub jwt_key_lifetime_secs: Option<u64>,
    pub auto_rotate: Option<bool>,
    /// An address, or "off".
    pub jwks_listen: Option<String>,
}

/// The same settings from flags or the environment.
#[derive(Clone, Debug, Default)]
pub struct IdentityOverrides {
    pub workload_ttl_secs: Option<u64>,
    pub node_ttl_secs: Option<u64>,
    pub jwt_svid_ttl_secs: Option<u64>,
    pub ca_lifetime_secs: Option<u64>,
    pub jwt_key_lifetime_secs: Option<u64>,
    pub auto_rotate: Option<bool>,
    pub jwks_listen: Option<String>,
}

/// The effective identity settings.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentityConfig {
    pub workload_ttl: Duration,
    pub node_ttl: Duration,
    /// JWT-SVIDs asked for longer are shortened to this.
    pub jwt_svid_ttl: Duration,
    pub ca_lifetime: Duration,
    pub jwt_key_lifetime: Duration,
    /// Prepare, activate and retire CAs and JWT keys on a schedule.
    pub auto_rotate: bool,
    /// `None` serves no JWKS endpoint.
    pub jwks_listen: Option<SocketAddr>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig::resolve(IdentityFile::default(), IdentityOverrides::default())
            .expect("the defaults are valid")
    }
}

impl IdentityConfig {
    /// Merges flags over the file over the defaults, and checks the result.
    pub fn resolve(file: IdentityFile, over: IdentityOverrides) -> Result<Self, ConfigError> {
        let ttl = |setting, over: Option<u64>, file: Option<u64>, default| {
            seconds(setting, over.or(file).unwrap_or(default))
        };
        let jwks_listen = over
            .jwks_listen
            .or(file.jwks_listen)
            .unwrap_or_else(|| DEFAULT_JWKS_LISTEN.into());

        Ok(Self {
            workload_ttl: ttl(
                "workload_ttl_secs",
                over.workload_ttl_secs,
                file.workload_ttl_secs,
                DEFAULT_WORKLOAD_TTL_SECS,
            )?,
            node_ttl: ttl(
                "node_ttl_secs",
                over.node_ttl_secs,
                file.node_ttl_secs,
                DEFAULT_NODE_TTL_SECS,
            )?,
            jwt_svid_ttl: ttl(
                "jwt_svid_ttl_secs",
                over.jwt_svid_ttl_secs,
                file.jwt_svid_ttl_secs,
                DEFAULT_JWT_SVID_TTL_SECS,
            )?,
            ca_lifetime: Duration::from_secs(
                over.ca_lifetime_secs
                    .or(file.ca_lifetime_secs)
                    .unwrap_or(DEFAULT_CA_LIFETIME_SECS),
            ),
            jwt_key_lifetime: Duration::from_secs(
                over.jwt_key_lifetime_secs
                    .or(file.jwt_key_lifetime_secs)
                    .unwrap_or(DEFAULT_JWT_KEY_LIFETIME_SECS),
            ),
            auto_rotate: over.auto_rotate.or(file.auto_rotate).unwrap_or(true),
            jwks_listen: parse_listen(&jwks_listen)?,
        })
    }
}

fn seconds(setting: &'static str, value: u64) -> Result<Duration, ConfigError> {
    if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&value) {
        return Err(ConfigError::Invalid {
            setting,
            detail: format!("{value} is outside {MIN_TTL_SECS} to {MAX_TTL_SECS} seconds"),
        });
    }
    Ok(Duration::from_secs(value))
}

fn parse_listen(value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if value == "off" {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| ConfigError::Invalid {
        setting: "jwks_listen",
        detail: format!("{value:?} is not an address like 0.0.0.0:7444, nor \"off\""),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_documented_lifetimes() {
        let config = IdentityConfig::default();

        assert_eq!(config.workload_ttl, Duration::from_secs(3600));
        assert_eq!(config.node_ttl, Duration::from_secs(86400));
        assert!(config.auto_rotate);
        assert_eq!(
            config.jwks_listen,
            Some(DEFAULT_JWKS_LISTEN.parse().unwrap())
        );
    }

    #[test]
    fn flag_overrides_file() {
        let file = IdentityFile {
            workload_ttl_secs: Some(600),
            jwks_listen: Some("off".into()),
            ..IdentityFile::default()
        };
        let over = IdentityOverrides {
            workload_ttl_secs: Some(60),
            ..IdentityOverrides::default()
        };

        let config = IdentityConfig::resolve(file, over).unwrap();

        assert_eq!(config.workload_ttl, Duration::from_secs(60));
        assert_eq!(config.jwks_listen, None);
    }

    #[test]
    fn zero_lifetime_is_refused_with_its_setting() {
        let over = IdentityOverrides {
            node_ttl_secs: Some(0),
            ..IdentityOverrides::default()
        };

        let error = IdentityConfig::resolve(IdentityFile::default(), over).unwrap_err();

        assert!(
            error.to_string().starts_with("node_ttl_secs: 0 is outside"),
            "{error}"
        );
    }
}

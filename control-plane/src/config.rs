//! Configuration of `palisade-cp serve`: a TOML file, then the environment,
//! then flags, each overriding the one before. Every setting is declared once
//! here with its default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod identity;

pub use identity::{IdentityConfig, IdentityFile, IdentityOverrides};

/// Where the data directory is unless configured.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/palisade";
/// Where the admin API listens unless configured.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7443";
/// How long in-flight calls may take to finish on shutdown.
pub const DEFAULT_DRAIN_SECS: u64 = 15;
/// The largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Errors in configuration; the process exits with code 64 on any of them.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("{setting}: {detail}")]
    Invalid {
        setting: &'static str,
        detail: String,
    },
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// How the process logs.
#[derive(Clone, Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `palisade_control_plane=debug`;
    /// `RUST_LOG` overrides it.
    pub level: String,
}

/// The settings a TOML file may hold. Unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub master_key_file: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    pub insecure_plaintext: Option<bool>,
    pub xds_plaintext_listen: Option<String>,
    pub drain_timeout_secs: Option<u64>,
    #[serde(default)]
    pub identity: IdentityFile,
}

/// Settings given on the command line or in the environment (clap fills
/// both); `None` means not given.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub master_key_file: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    pub insecure_plaintext: Option<bool>,
    pub xds_plaintext_listen: Option<String>,
    pub drain_timeout_secs: Option<u64>,
    pub identity: IdentityOverrides,
}

/// The effective configuration of `serve`.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub master_key_file: Option<PathBuf>,
    pub log: LogConfig,
    /// Serve the admin API without TLS. Development only; loopback only.
    pub insecure_plaintext: bool,
    /// Also serve xDS without TLS here, believing the node each client
    /// claims. Development only; loopback only.
    pub xds_plaintext_listen: Option<SocketAddr>,
    pub drain_timeout: Duration,
    pub identity: IdentityConfig,
}

impl FileConfig {
    /// Reads a TOML file.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let error = |detail: String| ConfigError::File {
            path: path.to_owned(),
            detail,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| error(e.to_string()))?
            .len();
        if size > MAX_CONFIG_BYTES {
            return Err(error(format!("larger than {MAX_CONFIG_BYTES} bytes")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        toml::from_str(&text).map_err(|e| error(one_line(&text, &e)))
    }
}

/// A TOML error on one line: where in `text` it is, then what it is.
fn one_line(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', "; ");
    let Some(span) = error.span() else {
        return message;
    };

    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("line {line}, column {column}: {message}")
}

impl ServeConfig {
    /// Merges file and overrides over the defaults, and checks the result.
    pub fn resolve(file: FileConfig, over: Overrides) -> Result<Self, ConfigError> {
        let listen = over
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen.parse().map_err(|_| ConfigError::Invalid {
            setting: "listen",
            detail: format!("{listen:?} is not an address like 127.0.0.1:7443"),
        })?;
        let insecure_plaintext = over
            .insecure_plaintext
            .or(file.insecure_plaintext)
            .unwrap_or(false);
        if insecure_plaintext && !listen.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                setting: "insecure_plaintext",
                detail: format!("plaintext is allowed on loopback only, not on {listen}"),
            });
        }

        let xds_plaintext_listen =
            plaintext_xds(over.xds_plaintext_listen.or(file.xds_plaintext_listen))?;

        Ok(Self {
            xds_plaintext_listen,
            data_dir: over
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            listen,
            master_key_file: over.master_key_file.or(file.master_key_file),
            log: LogConfig {
                format: over.log_format.or(file.log_format).unwrap_or_default(),
                level: over
                    .log_level
                    .or(file.log_level)
                    .unwrap_or_else(|| "info".into()),
            },
            insecure_plaintext,
            drain_timeout: Duration::from_secs(
                over.drain_timeout_secs
                    .or(file.drain_timeout_secs)
                    .unwrap_or(DEFAULT_DRAIN_SECS),
            ),
            identity: IdentityConfig::resolve(file.identity, over.identity)?,
        })
    }
}

/// The plaintext xDS address, which must be on loopback.
fn plaintext_xds(value: Option<String>) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let setting = "xds_plaintext_listen";
    let address: SocketAddr = value.parse().map_err(|_| ConfigError::Invalid {
        setting,
        detail: format!("{value:?} is not an address like 127.0.0.1:7445"),
    })?;
    if !address.ip().is_loopback() {
        return Err(ConfigError::Invalid {
            setting,
            detail: format!("plaintext xDS is allowed on loopback only, not on {address}"),
        });
    }
    Ok(Some(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let file = FileConfig {
            listen: Some("127.0.0.1:9000".into()),
            data_dir: Some("/from/file".into()),
            ..FileConfig::default()
        };
        let over = Overrides {
            data_dir: Some("/from/flag".into()),
            ..Overrides::default()
        };

        let config = ServeConfig::resolve(file, over).unwrap();

        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(
            config.drain_timeout,
            Duration::from_secs(DEFAULT_DRAIN_SECS)
        );
    }

    /// A file that switches both booleans on.
    fn file_with_booleans_on() -> FileConfig {
        FileConfig {
            listen: Some("127.0.0.1:7443".into()),
            insecure_plaintext: Some(true),
            identity: IdentityFile {
                auto_rotate: Some(true),
                ..IdentityFile::default()
            },
            ..FileConfig::default()
        }
    }

    #[test]
    fn a_later_layer_switches_a_boolean_off_as_well_as_on() {
        let off = Overrides {
            insecure_plaintext: Some(false),
            identity: IdentityOverrides {
                auto_rotate: Some(false),
                ..IdentityOverrides::default()
            },
            ..Overrides::default()
        };

        let from_file =
            ServeConfig::resolve(file_with_booleans_on(), Overrides::default()).unwrap();
        let overridden = ServeConfig::resolve(file_with_booleans_on(), off).unwrap();

        assert!(from_file.insecure_plaintext && from_file.identity.auto_rotate);
        assert!(!overridden.insecure_plaintext);
        assert!(!overridden.identity.auto_rotate);
    }

    #[test]
    fn plaintext_off_loopback_is_refused() {
        let over = Overrides {
            listen: Some("0.0.0.0:7443".into()),
            insecure_plaintext: Some(true),
            ..Overrides::default()
        };

        let error = ServeConfig::resolve(FileConfig::default(), over).unwrap_err();

        assert!(error.to_string().contains("loopback only"), "{error}");
    }

    #[test]
    fn plaintext_xds_off_loopback_is_refused() {
        let over = Overrides {
            xds_plaintext_listen: Some("0.0.0.0:7445".into()),
            ..Overrides::default()
        };

        let error = ServeConfig::resolve(FileConfig::default(), over).unwrap_err();

        assert!(
            error
                .to_string()
                .starts_with("xds_plaintext_listen: plaintext xDS is allowed on loopback only"),
            "{error}"
        );
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap();

        let error = FileConfig::read(&path).unwrap_err();

        assert!(error.to_string().contains("listen_port"), "{error}");
    }

    #[test]
    fn file_errors_are_one_line_that_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\ndrain_timeout_secs = \"soon\"\n",
        )
        .unwrap();

        let error = FileConfig::read(&path).unwrap_err().to_string();

        assert_eq!(error.lines().count(), 1, "{error}");
        assert!(error.contains("cp.toml: line 2, column 22: "), "{error}");
    }
}

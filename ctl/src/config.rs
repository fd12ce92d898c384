//! Connection settings: flags and environment first, then the config file.
//!
//! The config file is TOML with the keys `server`, `ca`, `cert` and `key`;
//! relative paths in it are relative to the file's own directory. Without
//! `--config`, the first of [`SEARCH_PATHS`] that exists is read
//! (`palisade-cp dev` writes the first one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::cli::ConnectionArgs;

/// Where the config file is looked for when none is given: relative to the
/// working directory, then to the home directory.
pub const SEARCH_PATHS: [&str; 2] = [
    "./.palisade-dev/palisadectl.toml",
    "~/.config/palisade/palisadectl.toml",
];

/// Why the settings are unusable. These exit with code 64.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {}", .path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("config file {} is not valid TOML", .path.display())]
    Malformed {
        path: PathBuf,
        source: toml::de::Error,
    },

    #[error("no control plane server is configured")]
    NoServer,

    #[error("server address {0:?} must start with https:// or http://")]
    BadScheme(String),

    #[error("server address {url:?} is not a valid URL")]
    BadUrl {
        url: String,
        source: tonic::transport::Error,
    },

    #[error("no CA certificate is configured for {0}")]
    NoCa(String),

    #[error("no client certificate and key are configured for {0}")]
    NoIdentity(String),

    #[error("cannot read the {what} {}", .path.display())]
    UnreadablePem {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ConfigError {
    /// What to do about it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            ConfigError::NoServer => {
                "pass --server URL, set PALISADECTL_SERVER, \
                 or write `server = \"https://...\"` in a config file"
            }
            ConfigError::NoCa(_) => {
                "pass --ca FILE, set PALISADECTL_CA, or set `ca` in the config file"
            }
            ConfigError::NoIdentity(_) => {
                "pass --cert FILE and --key FILE, set PALISADECTL_CERT and PALISADECTL_KEY, \
                 or set `cert` and `key` in the config file"
            }
            _ => return None,
        };
        Some(hint.to_owned())
    }
}

/// The resolved settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The admin API's URL.
    pub server: String,
    /// The CA certificate file.
    pub ca: Option<PathBuf>,
    /// The client certificate file.
    pub cert: Option<PathBuf>,
    /// The client key file.
    pub key: Option<PathBuf>,
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
}

/// The config file as written.
#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    server: Option<String>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

impl Settings {
    /// Resolves the settings from flags and environment (already merged by
    /// clap) and the config file.
    pub fn resolve(args: &ConnectionArgs) -> Result<Settings, ConfigError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let path = match &args.config {
            Some(path) => Some(path.clone()),
            None => search(&search_paths(home.as_deref())),
        };
        Settings::merge(args, path)
    }

    fn merge(args: &ConnectionArgs, path: Option<PathBuf>) -> Result<Settings, ConfigError> {
        let file = match &path {
            Some(path) => read_file(path)?,
            None => ConfigFile::default(),
        };
        let dir = path
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."));
        let relative = |p: Option<PathBuf>| p.map(|p| dir.join(p));

        let server = args
            .server
            .clone()
            .or(file.server)
            .ok_or(ConfigError::NoServer)?;
        Ok(Settings {
            server,
            ca: args.ca.clone().or_else(|| relative(file.ca)),
            cert: args.cert.clone().or_else(|| relative(file.cert)),
            key: args.key.clone().or_else(|| relative(file.key)),
            file: path,
        })
    }

    /// Whether the server is reached over plaintext HTTP.
    pub fn is_plaintext(&self) -> bool {
        self.server.starts_with("http://")
    }
}

/// The config file candidates, in order; the home one only when `HOME` is set.
fn search_paths(home: Option<&Path>) -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from(SEARCH_PATHS[0])];
    if let Some(home) = home {
        paths.push(home.join(".config/palisade/palisadectl.toml"));
    }
    paths
}

fn search(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates.iter().find(|path| path.is_file()).cloned()
}

fn read_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let file: ConfigFile = toml::from_str(&text).map_err(|source| ConfigError::Malformed {
        path: path.to_owned(),
        source,
    })?;

    for key in file.unknown.keys() {
        eprintln!(
            "warning: config file {}: unknown key {key:?} ignored",
            path.display()
        );
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ConnectionArgs {
        ConnectionArgs::default()
    }

    fn temp_config(name: &str, text: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("palisadectl-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("palisadectl.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn config_file_paths_are_relative_to_its_directory() {
        let text = "server = \"https://cp:7443\"\nca = \"ca.pem\"\ncert = \"/abs/cert.pem\"\n";
        let path = temp_config("relative", text);
        let dir = path.parent().unwrap();

        let settings = Settings::merge(&args(), Some(path.clone())).unwrap();

        assert_eq!(settings.server, "https://cp:7443");
        assert_eq!(settings.ca, Some(dir.join("ca.pem")));
        assert_eq!(settings.cert, Some(PathBuf::from("/abs/cert.pem")));
        assert_eq!(settings.key, None);
        assert_eq!(settings.file, Some(path));
    }

    #[test]
    fn flags_win_over_the_config_file() {
        let text = "server = \"https://file:7443\"\nca = \"ca.pem\"\nkey = \"key.pem\"\n";
        let path = temp_config("precedence", text);
        let flags = ConnectionArgs {
            server: Some("https://flag:7443".into()),
            ca: Some("flag-ca.pem".into()),
            ..args()
        };

        let settings = Settings::merge(&flags, Some(path.clone())).unwrap();

        assert_eq!(settings.server, "https://flag:7443");
        assert_eq!(settings.ca, Some(PathBuf::from("flag-ca.pem")));
        assert_eq!(settings.key, Some(path.parent().unwrap().join("key.pem")));
    }

    #[test]
    fn missing_server_is_a_config_error() {
        let err = Settings::merge(&args(), None).unwrap_err();

        assert!(matches!(err, ConfigError::NoServer));
        assert!(err.hint().unwrap().contains("--server"));
    }

    #[test]
    fn malformed_file_is_a_config_error() {
        let path = temp_config("malformed", "server = \n");

        let err = Settings::merge(&args(), Some(path)).unwrap_err();

        assert!(matches!(err, ConfigError::Malformed { .. }));
    }

    #[test]
    fn missing_explicit_file_is_a_config_error() {
        let path = PathBuf::from("/nonexistent/palisadectl.toml");

        let err = Settings::merge(&args(), Some(path)).unwrap_err();

        assert!(matches!(err, ConfigError::Unreadable { .. }));
    }

    #[test]
    fn search_order_is_working_directory_then_home() {
        let paths = search_paths(Some(Path::new("/home/ada")));

        assert_eq!(
            paths,
            [
                PathBuf::from("./.palisade-dev/palisadectl.toml"),
                PathBuf::from("/home/ada/.config/palisade/palisadectl.toml"),
            ]
        );
        assert_eq!(search_paths(None).len(), 1);
    }

    #[test]
    fn search_takes_the_first_existing_file() {
        let second = temp_config("search", "server = \"http://x\"\n");
        let candidates = [
            PathBuf::from("/nonexistent/palisadectl.toml"),
            second.clone(),
        ];

        assert_eq!(search(&candidates), Some(second));
        assert_eq!(search(&candidates[..1]), None);
    }
}

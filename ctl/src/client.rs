//! Connecting to the control plane's admin API.

use std::path::Path;
use std::time::Duration;

use palisade_proto::admin::admin_client;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::cli::ConnectionArgs;
use crate::config::{ConfigError, SEARCH_PATHS, Settings};
use crate::error::ConnectError;

/// The admin API client every command uses.
pub type AdminClient = admin_client::AdminClient<Channel>;

/// How long to wait for the TCP connection and the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest message accepted from the server (64 MiB).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The control plane as named on the command line. Nothing is read or
/// dialled until a command asks to [`connect`](Server::connect).
pub struct Server {
    args: ConnectionArgs,
}

impl Server {
    pub fn new(args: ConnectionArgs) -> Self {
        Server { args }
    }

    /// Resolves the settings and connects.
    pub async fn connect(&self) -> anyhow::Result<AdminClient> {
        let settings = Settings::resolve(&self.args)?;
        let endpoint = endpoint(&settings)?;

        let channel = endpoint.connect().await.map_err(|source| ConnectError {
            server: settings.server.clone(),
            hint: connect_hint(&settings),
            source,
        })?;

        Ok(AdminClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

fn endpoint(settings: &Settings) -> Result<Endpoint, ConfigError> {
    let url = &settings.server;
    if !url.starts_with("https://") && !url.starts_with("http://") {
        return Err(ConfigError::BadScheme(url.clone()));
    }
    let bad_url = |source| ConfigError::BadUrl {
        url: url.clone(),
        source,
    };
    let endpoint = Endpoint::from_shared(url.clone()).map_err(bad_url)?;
    let endpoint = endpoint.connect_timeout(CONNECT_TIMEOUT);

    if settings.is_plaintext() {
        return Ok(endpoint);
    }
    let host = endpoint.uri().host().unwrap_or_default();
    let tls = tls_config(settings, host.trim_start_matches('[').trim_end_matches(']'))?;
    endpoint.tls_config(tls).map_err(bad_url)
}

/// Trusts the configured CA and presents the configured client certificate.
fn tls_config(settings: &Settings, host: &str) -> Result<ClientTlsConfig, ConfigError> {
    let Some(ca) = &settings.ca else {
        return Err(ConfigError::NoCa(settings.server.clone()));
    };
    let (Some(cert), Some(key)) = (&settings.cert, &settings.key) else {
        return Err(ConfigError::NoIdentity(settings.server.clone()));
    };

    let ca = Certificate::from_pem(read_pem("CA certificate", ca)?);
    let identity = Identity::from_pem(
        read_pem("client certificate", cert)?,
        read_pem("client key", key)?,
    );
    Ok(ClientTlsConfig::new()
        .ca_certificate(ca)
        .identity(identity)
        .domain_name(host))
}

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::UnreadablePem {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Says where the settings came from, so that a wrong one can be found.
fn connect_hint(settings: &Settings) -> String {
    let origin = match &settings.file {
        Some(file) => format!("the config file {}", file.display()),
        None => format!(
            "a config file (none found at {})",
            SEARCH_PATHS.join(" or ")
        ),
    };
    format!(
        "check the address and credentials; set them with --server, --ca, --cert and --key, \
         the PALISADECTL_* variables, or {origin}"
    )
}

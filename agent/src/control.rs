//! The connection to the control plane: its addresses, the TLS material the
//! agent presents and trusts, and gRPC channels built from both.
//!
//! Every channel is built from the material current when it connects, so a
//! renewed node certificate or a rotated bundle takes effect on the next
//! connection; the xDS client reconnects when the material changes. While
//! the material stays the same, each address keeps one TLS client and its
//! session cache, so a reconnection (after the control plane restarted, for
//! instance) resumes the TLS session instead of repeating a full handshake.

use std::error::Error as _;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::Authority;
use tokio::sync::watch;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::identity::svid::Svid;

pub mod backoff;

/// The control plane's port when an address names none.
pub const DEFAULT_PORT: u16 = 7443;
/// How long a TCP connect and TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle connection is probed, and how long a probe may take.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the control plane could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// There is nothing to verify the control plane's certificate with.
    #[error("no trust bundle to verify the control plane with")]
    NoBundle,
    /// The connection or the TLS handshake failed, with every cause.
    #[error("{address}: {detail}")]
    Connect { address: String, detail: String },
}

/// One control plane address, as a URI and the name its certificate must
/// carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// `https://host:port`.
    pub uri: String,
    /// The host, without brackets for IPv6.
    pub server_name: String,
}

impl Address {
    /// Parses `host`, `host:port` or `https://host:port`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, rest) = text.split_once("://").unwrap_or(("https", text));
        if scheme != "https" {
            return Err(format!(
                "{text:?}: only https addresses are accepted (the control plane speaks mTLS)"
            ));
        }
        let bad = || format!("{text:?} is not an address like cp.example.org:7443");
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let authority: Authority = rest
            .parse()
            .ok()
            .filter(|_| !rest.contains('@'))
            .ok_or_else(bad)?;

        let host = authority.host();
        let port = match authority.port_u16() {
            Some(0) => return Err(bad()),
            Some(port) => port,
            None if authority.as_str() == host => DEFAULT_PORT,
            None => return Err(bad()),
        };
        Ok(Self {
            uri: format!("https://{host}:{port}"),
            server_name: host.trim_start_matches('[').trim_end_matches(']').into(),
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

/// What the agent presents to the control plane and trusts in it.
#[derive(Clone, Debug, Default)]
pub struct TlsMaterial {
    /// The node certificate; `None` until the node attested.
    pub node: Option<Arc<Svid>>,
    /// The CA certificates the control plane's certificate must chain to.
    pub bundle_pem: String,
}

impl TlsMaterial {
    /// Whether `other` would make a different TLS client.
    pub fn differs_from(&self, other: &TlsMaterial) -> bool {
        let serial = |m: &TlsMaterial| m.node.as_ref().map(|n| n.serial.clone());
        serial(self) != serial(other) || self.bundle_pem != other.bundle_pem
    }
}

/// The control plane, as the agent reaches it.
#[derive(Clone, Debug)]
pub struct ControlPlane {
    addresses: Arc<[Address]>,
    server_name: Option<String>,
    material: watch::Receiver<Arc<TlsMaterial>>,
    /// By address: the endpoint last built and the material it was built
    /// with.
    endpoints: Arc<Mutex<Vec<Option<BuiltEndpoint>>>>,
    /// Counts the connections made, so that tasks waiting to retry learn
    /// that the control plane answers again.
    reached: Arc<watch::Sender<u64>>,
}

/// An endpoint and the material it presents and trusts.
type BuiltEndpoint = (Arc<TlsMaterial>, Endpoint);

impl ControlPlane {
    /// The control plane at `addresses`, reached with the material that
    /// `material` follows. `server_name`, when set, replaces each address's
    /// host as the name to verify.
    pub fn new(
        addresses: Vec<Address>,
        server_name: Option<String>,
        material: watch::Receiver<Arc<TlsMaterial>>,
    ) -> Self {
        let endpoints = vec![None; addresses.len()];
        Self {
            addresses: addresses.into(),
            server_name,
            material,
            endpoints: Arc::new(Mutex::new(endpoints)),
            reached: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Every address, in the order they are tried.
    pub fn addresses(&self) -> &[Address] {
        &self.addresses
    }

    /// The TLS material now.
    pub fn material(&self) -> Arc<TlsMaterial> {
        self.material.borrow().clone()
    }

    /// Follows the TLS material as it changes.
    pub fn watch_material(&self) -> watch::Receiver<Arc<TlsMaterial>> {
        self.material.clone()
    }

    /// Changes each time a connection to the control plane is made.
    pub fn watch_reached(&self) -> watch::Receiver<u64> {
        self.reached.subscribe()
    }

    /// Connects to the address at `index` (modulo their number) with
    /// `material`.
    pub async fn connect_at(
        &self,
        index: usize,
        material: &TlsMaterial,
    ) -> Result<Channel, ControlError> {
        let address = &self.addresses[index % self.addresses.len()];
        let failed = |detail: String| ControlError::Connect {
            address: address.uri.clone(),
            detail,
        };
        if material.bundle_pem.trim().is_empty() {
            return Err(ControlError::NoBundle);
        }

        let endpoint = self.endpoint(index % self.addresses.len(), material)?;
        let channel = endpoint.connect().await.map_err(|e| failed(describe(&e)))?;
        self.reached.send_modify(|count| *count += 1);
        Ok(channel)
    }

    /// The endpoint for the address at `index` with `material`: the one
    /// built before while the material is the same, else a new one.
    fn endpoint(&self, index: usize, material: &TlsMaterial) -> Result<Endpoint, ControlError> {
        let mut endpoints = self.endpoints.lock().expect("endpoints lock");
        if let Some((built_with, endpoint)) = &endpoints[index]
            && !built_with.differs_from(material)
        {
            return Ok(endpoint.clone());
        }

        let address = &self.addresses[index];
        let failed = |detail: String| ControlError::Connect {
            address: address.uri.clone(),
            detail,
        };
        let endpoint = Channel::from_shared(address.uri.clone())
            .map_err(|e| failed(describe(&e)))?
            .tls_config(self.tls(address, material))
            .map_err(|e| failed(describe(&e)))?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        endpoints[index] = Some((Arc::new(material.clone()), endpoint.clone()));
        Ok(endpoint)
    }

    /// Connects to the first address that answers, starting at `start`;
    /// returns its index and the channel, or the last address's error.
    pub async fn connect_any(
        &self,
        start: usize,
        material: &TlsMaterial,
    ) -> Result<(usize, Channel), ControlError> {
        let mut last = None;
        for offset in 0..self.addresses.len() {
            let index = (start + offset) % self.addresses.len();
            match self.connect_at(index, material).await {
                Ok(channel) => return Ok((index, channel)),
                Err(error) => {
                    tracing::debug!(address = %self.addresses[index], %error, "control plane unreachable");
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or(ControlError::NoBundle))
    }

    fn tls(&self, address: &Address, material: &TlsMaterial) -> ClientTlsConfig {
        let server_name = self.server_name.as_ref().unwrap_or(&address.server_name);
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&material.bundle_pem))
            .domain_name(server_name.clone());
        match &material.node {
            Some(node) => tls.identity(Identity::from_pem(&node.chain_pem, node.key_pem.expose())),
            None => tls,
        }
    }
}

/// An error with every cause it wraps, because tonic's own message for a
/// failed connection is only "transport error". A cause that repeats the
/// one before it is left out.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// A gRPC status, with its code, for logs and errors.
pub fn describe_status(status: &tonic::Status) -> String {
    match status.source() {
        Some(source) => format!(
            "{:?}: {}: {}",
            status.code(),
            status.message(),
            describe(source)
        ),
        None => format!("{:?}: {}", status.code(), status.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_https_and_port_7443() {
        let address = Address::parse("cp.example.org").unwrap();

        assert_eq!(address.uri, "https://cp.example.org:7443");
        assert_eq!(address.server_name, "cp.example.org");
        assert_eq!(
            Address::parse("https://127.0.0.1:9000/").unwrap().uri,
            "https://127.0.0.1:9000"
        );
    }

    #[test]
    fn plaintext_and_paths_are_refused() {
        for bad in [
            "http://cp:7443",
            "cp:7443/admin",
            "user@cp:7443",
            "cp:port",
            "cp:0",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }
}

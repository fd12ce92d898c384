//! Envoy's secret discovery service (SDS) on a Unix socket, for an Envoy
//! that runs on this host: it hands each workload's key and certificate to
//! that workload's proxy without the key ever leaving the host.
//!
//! The caller is whoever the kernel says is at the other end of the socket
//! (`SO_PEERCRED`: uid, gid, pid). Exactly one local workload must select
//! that process by its selectors (`unix_uid`, `unix_gid`, `process_path`);
//! otherwise every call is refused with `PERMISSION_DENIED`. A workload
//! without any selector selects nobody.
//!
//! Secrets, named as Envoy's TLS contexts from the control plane name them:
//! [`SVID_SECRET`] (`default`) is the workload's certificate chain and key,
//! [`BUNDLE_SECRET`] (`ROOTCA`) the trust bundle. Other names do not exist:
//! they are left out of responses. Streams follow the certificates, so a
//! renewal or a new bundle is pushed at once; versions are content hashes.
//!
//! `StreamSecrets` (state of the world, what Envoy uses), `DeltaSecrets`
//! (incremental) and `FetchSecrets` (one request, one answer) are served.
//!
//! [`socket`] binds the socket, [`caller`] identifies the caller,
//! [`secrets`] builds the resources, [`service`] is the gRPC service, and
//! [`sotw`] and [`delta`] run the two kinds of stream over a [`feed`].

mod caller;
mod delta;
mod feed;
mod secrets;
mod service;
mod socket;
mod sotw;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::SecretDiscoveryServiceServer;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;

use crate::identity::svid::Certificates;
use crate::state::State;

pub use caller::{Caller, CallerError};
pub use secrets::{BUNDLE_SECRET, SVID_SECRET};
pub use socket::SOCKET_MODE;

/// Why the SDS socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum SdsError {
    /// The socket or its directory could not be made.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Something else than a socket is where the socket should be.
    #[error("{path} exists and is not a socket; not replacing it")]
    NotASocket { path: PathBuf },
    /// Another process accepts connections on the socket.
    #[error("{path} is in use by another process")]
    InUse { path: PathBuf },
    /// The gRPC server stopped with an error.
    #[error("serving SDS: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// The SDS server, bound to its socket and not yet serving.
#[derive(Debug)]
pub struct SdsServer {
    listener: UnixListener,
    socket: socket::Bound,
}

impl SdsServer {
    /// Binds the socket at `path`, replacing a stale socket file left by an
    /// earlier run, with mode [`SOCKET_MODE`].
    pub fn bind(path: &Path) -> Result<Self, SdsError> {
        let (listener, socket) = socket::bind(path)?;
        Ok(Self { listener, socket })
    }

    /// Where the socket is.
    pub fn path(&self) -> &Path {
        self.socket.path()
    }

    /// Serves SDS from `state` and `certificates` until `shutdown` turns
    /// true, then removes the socket file.
    pub async fn serve(
        self,
        state: State,
        certificates: Certificates,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), SdsError> {
        let service = service::SecretService::new(state, certificates, shutdown.clone());
        let incoming = UnixListenerStream::new(self.listener);

        let served = tonic::transport::Server::builder()
            .add_service(SecretDiscoveryServiceServer::new(service))
            .serve_with_incoming_shutdown(incoming, stopped(shutdown))
            .await;
        self.socket.remove();
        Ok(served?)
    }
}

/// Resolves once `shutdown` turns true or its sender is gone.
async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

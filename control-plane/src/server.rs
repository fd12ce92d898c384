//! The running server: TLS accept loop, the gRPC services (admin, identity,
//! health, reflection), request limits, and a drain with a deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use palisade_proto::admin::admin_server::AdminServer;
use palisade_proto::identity::identity_server::IdentityServer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::service::LayerExt as _;
use tonic::transport::Server;

use crate::admin::{AdminService, EarlyRefusalLayer, PeerMode};
use crate::identity;
use crate::identity::authority::Authority;
use crate::identity::service::IdentityService;
use crate::limits::{MAX_REQUEST_BYTES, RequestLimitLayer};
use crate::store::Store;
use crate::xds::runtime::Xds;

/// Largest response the admin API sends (a List of 10,000 resources fits).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections the kernel may hold for the accept loop (it caps this at
/// `net.core.somaxconn`): a fleet of agents reconnecting at once after a
/// restart must not find the queue full, or each refused agent waits a SYN
/// retransmission (one second, then more) before it is heard.
const LISTEN_BACKLOG: u32 = 65_535;

/// The control plane's parts that the services share.
#[derive(Clone, Debug)]
pub struct Planes {
    pub authority: Arc<Authority>,
    pub xds: Arc<Xds>,
}

/// How the server listens.
pub struct Listening {
    pub listener: TcpListener,
    /// `None` serves plaintext (development only).
    pub tls: Option<TlsAcceptor>,
    pub peers: PeerMode,
    pub drain_timeout: Duration,
}

/// Binds the admin address and records it in `<data_dir>/admin.addr`, so
/// that scripts and tests can find a server started on port 0.
pub async fn bind(address: SocketAddr, data_dir: &Path) -> anyhow::Result<TcpListener> {
    let listener = listen(address).with_context(|| format!("binding {address}"))?;
    let bound = listener.local_addr()?;
    crate::fsutil::write_public(&data_dir.join("admin.addr"), bound.to_string().as_bytes())
        .context("recording the bound address")?;
    Ok(listener)
}

fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves until `signal` resolves, then drains and flushes the store.
pub async fn run(
    store: Arc<dyn Store>,
    planes: Planes,
    listening: Listening,
    signal: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (draining_tx, draining) = watch::channel(false);
    let address = listening.listener.local_addr()?;
    let mtls = matches!(listening.peers, PeerMode::Mtls(_));

    // The services.
    let (health, health_service) = tonic_health::server::health_reporter();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(palisade_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(palisade_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let node_peers = match &listening.peers {
        PeerMode::Mtls(verifier) => Some(verifier.clone()),
        PeerMode::Plaintext { .. } => None,
    };
    let ads = planes.xds.service(node_peers.clone(), draining.clone());
    let ads = AggregatedDiscoveryServiceServer::new(ads)
        .max_decoding_message_size(planes.xds.limits().max_request_bytes)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let identity = IdentityServer::new(IdentityService::new(planes.authority.clone(), node_peers))
        .max_decoding_message_size(identity::service::MAX_REQUEST_BYTES);
    let admin = AdminService::new(store.clone(), planes, listening.peers, draining.clone());
    let early_refusals = EarlyRefusalLayer::new(admin.clone());
    let admin = AdminServer::new(admin)
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let admin = early_refusals.named_layer(admin);

    // The router, with every request body counted against the limit.
    let router = Server::builder()
        .layer(RequestLimitLayer::new(MAX_REQUEST_BYTES))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(admin)
        .add_service(identity)
        .add_service(ads);
    let mut until_drained = draining.clone();
    let stop = async move {
        let _ = until_drained.wait_for(|draining| *draining).await;
    };

    // Accept connections.
    let server = match listening.tls {
        Some(acceptor) => {
            let incoming = tls_incoming(listening.listener, acceptor);
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, stop))
        }
        None => {
            let incoming = TcpListenerStream::new(listening.listener);
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, stop))
        }
    };
    health.set_serving::<AdminServer<AdminService>>().await;
    health
        .set_serving::<IdentityServer<IdentityService>>()
        .await;
    tracing::info!(%address, mtls, "admin API serving");

    // Run until the signal, then drain with a deadline.
    signal.await;
    tracing::info!(deadline = ?listening.drain_timeout, "draining in-flight calls");
    health.set_not_serving::<AdminServer<AdminService>>().await;
    health
        .set_not_serving::<IdentityServer<IdentityService>>()
        .await;
    let _ = draining_tx.send(true);
    match tokio::time::timeout(listening.drain_timeout, server).await {
        Ok(Ok(Ok(()))) => tracing::info!("drained"),
        Ok(Ok(Err(error))) => tracing::error!(%error, "admin server failed"),
        Ok(Err(error)) => tracing::error!(%error, "admin server task failed"),
        Err(_) => tracing::warn!("drain deadline passed; closing the remaining connections"),
    }

    store.flush().await.context("flushing the store")?;
    tracing::info!("store flushed; stopped");
    Ok(())
}

/// Accepts TCP connections and completes their TLS handshakes off the accept
/// path, so one slow client cannot hold up the others.
fn tls_incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = mpsc::channel(128);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            tokio::spawn(handshake(tcp, peer, acceptor.clone(), tx.clone()));
        }
    });
    ReceiverStream::new(rx)
}

async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<std::io::Result<TlsStream<TcpStream>>>,
) {
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            let kind = stream.get_ref().1.handshake_kind();
            let resumed = kind == Some(rustls::HandshakeKind::Resumed);
            tracing::debug!(%peer, resumed, "TLS handshake done");
            let _ = tx.send(Ok(stream)).await;
        }
        Ok(Err(error)) => tracing::warn!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::warn!(%peer, "TLS handshake timed out"),
    }
}

//! Outbound connections from a local client: carried over mTLS, with the
//! local workload's SVID, to one of the service's endpoints.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::counters::Counters;
use super::forward::forward;
use super::tables::OutboundRoute;
use super::{Context, listeners};

/// Why a connection to one endpoint failed.
#[derive(Debug, thiserror::Error)]
enum EndpointError {
    #[error("connect or handshake failed: {0}")]
    Io(#[from] io::Error),
    #[error("connect and handshake did not finish in time")]
    Timeout,
}

/// What a local client's connection is carried by.
struct Upstream {
    endpoint: SocketAddr,
    stream: TlsStream<TcpStream>,
}

/// Accepts local clients on `listener`, for `workload` calling `service`,
/// until `stop`.
pub async fn serve(
    listener: TcpListener,
    workload: String,
    service: String,
    context: Arc<Context>,
    stop: oneshot::Receiver<()>,
) {
    let Ok(listen) = listener.local_addr() else {
        return;
    };
    let route = move |context: &Context| {
        let tables = context.tables.get();
        let route = tables.outbound.get(&listen)?;
        (route.workload == workload && route.service == service).then(|| route.clone())
    };

    listeners::accept(listener, &context, stop, |client, _peer, permit| {
        let route = route(&context);
        connection(client, route, context.clone(), permit)
    })
    .await;
}

/// Carries one local client's connection, or closes it when no endpoint
/// can be reached.
async fn connection(
    client: TcpStream,
    route: Option<Arc<OutboundRoute>>,
    context: Arc<Context>,
    _permit: OwnedSemaphorePermit,
) {
    let Some(route) = route else {
        tracing::debug!("listener no longer routed; connection closed");
        return;
    };
    let Some(upstream) = connect(&route, &context).await else {
        Counters::bump(&context.counters.outbound_unreachable);
        tracing::info!(
            service = %route.service,
            endpoints = route.balancer.len(),
            "no endpoint reachable; connection closed"
        );
        return;
    };
    Counters::bump(&context.counters.outbound_connected);

    let started = Instant::now();
    let forwarded = forward(client, upstream.stream).await;
    let (transferred, error) = match forwarded {
        Ok(transferred) => (transferred, None),
        Err(error) => (Default::default(), Some(error.to_string())),
    };
    tracing::info!(
        target: "palisade_agent::access",
        workload = %route.workload,
        service = %route.service,
        endpoint = %upstream.endpoint,
        sent = transferred.sent,
        received = transferred.received,
        duration_ms = started.elapsed().as_millis() as u64,
        error = error.as_deref(),
        "outbound connection closed"
    );
}

/// Tries the service's endpoints in the balancer's order, each at most
/// once, until one connects and completes the handshake.
async fn connect(route: &OutboundRoute, context: &Context) -> Option<Upstream> {
    let connector = TlsConnector::from(route.client.clone());
    let mut tried = Vec::new();

    while let Some(endpoint) = route.balancer.pick(Instant::now(), &tried) {
        tried.push(endpoint);
        let attempt = timeout(
            context.settings.handshake_timeout,
            attempt(&connector, endpoint),
        );
        let result = attempt.await.unwrap_or(Err(EndpointError::Timeout));

        match result {
            Ok(stream) => {
                route.balancer.succeeded(endpoint);
                return Some(Upstream { endpoint, stream });
            }
            Err(error) => {
                Counters::bump(&context.counters.outbound_endpoint_failed);
                route.balancer.failed(endpoint, Instant::now());
                tracing::info!(
                    service = %route.service,
                    %endpoint,
                    expected = %route.spiffe_id,
                    %error,
                    "endpoint failed; out of rotation"
                );
            }
        }
    }
    None
}

async fn attempt(
    connector: &TlsConnector,
    endpoint: SocketAddr,
) -> Result<TlsStream<TcpStream>, EndpointError> {
    let stream = TcpStream::connect(endpoint).await?;
    let _ = stream.set_nodelay(true);

    let name = ServerName::IpAddress(endpoint.ip().into());
    Ok(connector.connect(name, stream).await?)
}

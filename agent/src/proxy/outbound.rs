//! Outbound connections from a local client: carried over mTLS, with the
//! local workload's SVID, to one of the service's endpoints, while the
//! registry finds the server allowed.
//!
//! A connection to an endpoint leaves from the inbound bind address when
//! that is a specific address of the endpoint's family, so that the
//! callee's agent, and its IP-block rules, see this host's address rather
//! than whichever one the kernel would choose. With the wildcard, or an
//! address of the other family, the kernel chooses.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls::pki_types::{ServerName, UnixTime};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::counters::Counters;
use super::forward::forward_until;
use super::peer::PeerError;
use super::registry::{Admitted, OutboundConnection, OutboundRefusal, PeerCertificate};
use super::tables::OutboundRoute;
use super::verified::Role;
use super::{Context, listeners};

/// Why a connection to one endpoint failed.
#[derive(Debug, thiserror::Error)]
enum EndpointError {
    #[error("binding the source address {address} failed: {error}")]
    Bind {
        address: SocketAddr,
        error: io::Error,
    },
    #[error("connect or handshake failed: {0}")]
    Io(#[from] io::Error),
    #[error("connect and handshake did not finish in time")]
    Timeout,
    #[error("the server's certificate names no peer: {0}")]
    Peer(#[from] PeerError),
}

/// What a local client's connection is carried by.
struct Upstream {
    endpoint: SocketAddr,
    stream: TlsStream<TcpStream>,
    server: PeerCertificate,
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
/// can be reached or the server is no longer allowed.
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
    let endpoint = upstream.endpoint;

    let established = OutboundConnection {
        route: route.clone(),
        endpoint,
        server: upstream.server,
    };
    let registry = &context.outbound_connections;
    let admitted = match registry.admit(established, &context.tables) {
        Ok(admitted) => admitted,
        Err(refusal) => return refused(&route, endpoint, &refusal, &context),
    };
    Counters::bump(&context.counters.outbound_connected);
    carry(client, upstream.stream, &route, endpoint, admitted).await;
}

/// Closes a connection whose server a change refused during the handshake.
fn refused(
    route: &OutboundRoute,
    endpoint: SocketAddr,
    refusal: &OutboundRefusal,
    context: &Context,
) {
    Counters::bump(&context.counters.outbound_revoked);
    tracing::info!(
        target: "palisade_agent::access",
        workload = %route.workload,
        service = %route.service,
        %endpoint,
        reason = %refusal,
        "outbound connection refused"
    );
}

/// Forwards until both sides finish or the registry closes the
/// connection, then logs the access line.
async fn carry(
    client: TcpStream,
    upstream: TlsStream<TcpStream>,
    route: &OutboundRoute,
    endpoint: SocketAddr,
    admitted: Admitted<OutboundConnection>,
) {
    let started = Instant::now();
    let cut = admitted.registration.closed();
    let why = "closed by a change: the server is no longer allowed";
    let carried = forward_until(client, upstream, cut, why).await;

    tracing::info!(
        target: "palisade_agent::access",
        workload = %route.workload,
        service = %route.service,
        %endpoint,
        sent = carried.transferred.sent,
        received = carried.transferred.received,
        duration_ms = started.elapsed().as_millis() as u64,
        error = carried.error.as_deref(),
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
            attempt(&connector, endpoint, context),
        );
        let result = attempt.await.unwrap_or(Err(EndpointError::Timeout));

        match result {
            Ok((stream, server)) => {
                route.balancer.succeeded(endpoint);
                return Some(Upstream {
                    endpoint,
                    stream,
                    server,
                });
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

/// Connects to `endpoint` and completes the handshake; returns the
/// stream and the server's certificate as the handshake verified it.
async fn attempt(
    connector: &TlsConnector,
    endpoint: SocketAddr,
    context: &Context,
) -> Result<(TlsStream<TcpStream>, PeerCertificate), EndpointError> {
    let anchors = context.trust.get().anchors.clone();
    let verified_at = UnixTime::now();
    let source = source_for(context.settings.bind_address, endpoint);
    let stream = open(endpoint, source).await?;
    let _ = stream.set_nodelay(true);

    let name = ServerName::IpAddress(endpoint.ip().into());
    let stream = connector.connect(name, stream).await?;

    // The verifier checked the chain already; this only reads it again.
    let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
    let server = PeerCertificate::read(Role::Server, chain.to_vec(), verified_at, anchors)?;
    Ok((stream, server))
}

/// Where a connection to `endpoint` leaves from: `bind` (the inbound bind
/// address), any port, when it is a specific address of the endpoint's
/// family; else nowhere in particular.
fn source_for(bind: IpAddr, endpoint: SocketAddr) -> Option<SocketAddr> {
    let same_family = bind.is_ipv4() == endpoint.is_ipv4();
    (same_family && !bind.is_unspecified()).then_some(SocketAddr::new(bind, 0))
}

/// Opens a TCP connection to `endpoint`, from `source` when given.
async fn open(
    endpoint: SocketAddr,
    source: Option<SocketAddr>,
) -> Result<TcpStream, EndpointError> {
    let Some(source) = source else {
        return Ok(TcpStream::connect(endpoint).await?);
    };
    let socket = match source {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // With SO_REUSEADDR, the port taken here (while the connection and its
    // TIME_WAIT last) does not keep a listener from binding the same
    // address and port, such as this agent's own for an inbound port in
    // the ephemeral range.
    socket.set_reuseaddr(true)?;
    let bound = socket.bind(source);
    bound.map_err(|error| EndpointError::Bind {
        address: source,
        error,
    })?;
    Ok(socket.connect(endpoint).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(address: &str) -> SocketAddr {
        address.parse().unwrap()
    }

    #[test]
    fn connections_leave_from_a_specific_bind_address_of_the_endpoints_family() {
        let v4 = IpAddr::from([10, 0, 0, 1]);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();

        assert_eq!(source_for(v4, at("10.0.0.2:80")), Some(at("10.0.0.1:0")));
        assert_eq!(
            source_for(v6, at("[2001:db8::2]:80")),
            Some(at("[2001:db8::1]:0"))
        );
        assert_eq!(source_for(v4, at("[2001:db8::2]:80")), None);
        assert_eq!(source_for(v6, at("10.0.0.2:80")), None);
        assert_eq!(source_for([0, 0, 0, 0].into(), at("10.0.0.2:80")), None);
        assert_eq!(
            source_for("::".parse().unwrap(), at("[2001:db8::2]:80")),
            None
        );
    }
}

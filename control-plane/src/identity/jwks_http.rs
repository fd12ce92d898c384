//! The JWKS over HTTPS, at `/.well-known/jwks.json`.
//!
//! Anyone may fetch the public keys that check Palisade's JWT-SVIDs, so the
//! endpoint guards itself instead: it answers only `GET` and `HEAD` on one
//! path, bounds request headers, drops clients that are slow to finish the TLS
//! handshake or to send their headers, and holds at most a fixed number of
//! connections. Each connection runs in its own task, so a slow client blocks
//! nobody. The document served is whatever the `watch` channel holds when a
//! request arrives, so a rotated key set is served from the next request on.
//!
//! With TLS, the protocol follows ALPN: the caller's acceptor should offer
//! [`ALPN_PROTOCOLS`] (`h2`, then `http/1.1`). A client that negotiates no
//! protocol gets HTTP/1.1. Without TLS (development only) it is HTTP/1.1.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument as _, debug, info, info_span, warn};

use super::rotation::JWKS_MAX_AGE_SECS;

/// The one path served.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The ALPN protocols the caller's TLS acceptor should offer, in this order.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

const ALLOWED_METHODS: &str = "GET, HEAD";
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);
const H2_MAX_CONCURRENT_STREAMS: u32 = 16;
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// hyper refuses an HTTP/1 buffer smaller than this.
const H1_MIN_BUFFER_BYTES: usize = 8 * 1024;

/// Errors of the JWKS endpoint.
#[derive(Debug, thiserror::Error)]
pub enum JwksHttpError {
    #[error("jwks listener has no local address: {0}")]
    LocalAddr(std::io::Error),
}

/// How the endpoint bounds what its clients can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksHttpLimits {
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to finish the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time an HTTP/1 client has to send a request's headers, idle
    /// keep-alive time included.
    pub header_read_timeout: Duration,
    /// Bytes of request head accepted (at least 8 KiB over HTTP/1).
    pub max_header_bytes: usize,
    /// Age after which a connection is asked to close, so that idle HTTP/2
    /// clients do not hold a slot for ever.
    pub max_connection_age: Duration,
    /// Time open connections get to finish after shutdown or their maximum
    /// age before they are cut.
    pub drain_timeout: Duration,
}

impl Default for JwksHttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_connection_age: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Serves the JWKS held by `jwks` on `listener` with the default limits until
/// `shutdown` completes; `tls: None` serves plaintext, for development only.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    jwks: watch::Receiver<Arc<String>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), JwksHttpError> {
    JwksServer::new(jwks, tls).serve(listener, shutdown).await
}

/// The JWKS endpoint, configured and ready to serve.
#[derive(Clone)]
pub struct JwksServer {
    jwks: watch::Receiver<Arc<String>>,
    tls: Option<TlsAcceptor>,
    limits: JwksHttpLimits,
}

impl JwksServer {
    /// An endpoint serving the document held by `jwks`, over TLS when `tls`
    /// is given, with the default limits.
    pub fn new(jwks: watch::Receiver<Arc<String>>, tls: Option<TlsAcceptor>) -> Self {
        Self {
            jwks,
            tls,
            limits: JwksHttpLimits::default(),
        }
    }

    /// Replaces the limits.
    pub fn with_limits(mut self, limits: JwksHttpLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Accepts connections until `shutdown` completes, then stops accepting,
    /// lets open connections finish within the drain timeout and cuts the rest.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), JwksHttpError> {
        let address = listener.local_addr().map_err(JwksHttpError::LocalAddr)?;
        info!(%address, tls = self.tls.is_some(), "jwks endpoint listening");

        let (closing, closing_rx) = watch::channel(());
        let slots = Arc::new(Semaphore::new(self.limits.max_connections));
        let mut connections = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);

        loop {
            let (stream, peer, slot) = tokio::select! {
                () = &mut shutdown => break,
                accepted = accept(&listener, &slots) => accepted,
            };
            let connection = self.connection(closing_rx.clone());
            let span = info_span!("jwks_connection", %peer);
            connections.spawn(connection.run(stream, slot).instrument(span));
            while connections.try_join_next().is_some() {}
        }

        // Stop accepting; dropping `closing` asks every connection to finish
        // its request in flight and close.
        drop(listener);
        info!(%address, open = connections.len(), "jwks endpoint draining");
        drop(closing);
        drain(connections, self.limits.drain_timeout).await;
        info!(%address, "jwks endpoint stopped");
        Ok(())
    }

    fn connection(&self, closing: watch::Receiver<()>) -> Connection {
        Connection {
            jwks: self.jwks.clone(),
            tls: self.tls.clone(),
            limits: self.limits,
            closing,
        }
    }
}

impl std::fmt::Debug for JwksServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksServer")
            .field("tls", &self.tls.is_some())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Waits for a free slot, then for a client. Accept errors (such as running
/// out of file descriptors) are logged and retried after a short pause.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
    let slot = Arc::clone(slots)
        .acquire_owned()
        .await
        .expect("the connection semaphore is never closed");

    loop {
        match listener.accept().await {
            Ok((stream, peer)) => return (stream, peer, slot),
            Err(error) => {
                warn!(%error, "jwks endpoint accept failed");
                tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
            }
        }
    }
}

async fn drain(mut connections: JoinSet<()>, deadline: Duration) {
    let finished = tokio::time::timeout(deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;

    if finished.is_err() {
        warn!(
            cut = connections.len(),
            "jwks connections outlived the drain timeout"
        );
        connections.shutdown().await;
    }
}

/// The HTTP version spoken on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// One accepted client, served in its own task.
struct Connection {
    jwks: watch::Receiver<Arc<String>>,
    tls: Option<TlsAcceptor>,
    limits: JwksHttpLimits,
    closing: watch::Receiver<()>,
}

impl Connection {
    async fn run(self, stream: TcpStream, _slot: OwnedSemaphorePermit) {
        let _ = stream.set_nodelay(true);
        let Some(acceptor) = self.tls.clone() else {
            return self.serve_http(TokioIo::new(stream), Protocol::Http1).await;
        };

        let handshake =
            tokio::time::timeout(self.limits.tls_handshake_timeout, acceptor.accept(stream));
        match handshake.await {
            Ok(Ok(stream)) => {
                let protocol = match stream.get_ref().1.alpn_protocol() {
                    Some(b"h2") => Protocol::Http2,
                    _ => Protocol::Http1,
                };
                self.serve_http(TokioIo::new(stream), protocol).await;
            }
            Ok(Err(error)) => debug!(%error, "jwks tls handshake failed"),
            Err(_) => debug!("jwks tls handshake timed out"),
        }
    }

    async fn serve_http<I>(mut self, io: I, protocol: Protocol)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let jwks = self.jwks.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            std::future::ready(Ok::<_, Infallible>(respond(&jwks, &request)))
        });
        let builder = connection_builder(protocol, &self.limits);
        let mut connection = std::pin::pin!(builder.serve_connection(io, service));

        // Serve until the client leaves, the server shuts down or the
        // connection reaches its maximum age.
        tokio::select! {
            result = connection.as_mut() => return log_end(protocol, result),
            _ = self.closing.changed() => {}
            () = tokio::time::sleep(self.limits.max_connection_age) => {}
        }

        // Then let the request in flight finish.
        connection.as_mut().graceful_shutdown();
        match tokio::time::timeout(self.limits.drain_timeout, connection).await {
            Ok(result) => log_end(protocol, result),
            Err(_) => debug!(?protocol, "jwks connection cut after the drain timeout"),
        }
    }
}

fn connection_builder(protocol: Protocol, limits: &JwksHttpLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(H1_MIN_BUFFER_BYTES));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);

    match protocol {
        Protocol::Http1 => builder.http1_only(),
        Protocol::Http2 => builder.http2_only(),
    }
}

fn log_end(protocol: Protocol, result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    match result {
        Ok(()) => debug!(?protocol, "jwks connection closed"),
        Err(error) => debug!(?protocol, %error, "jwks connection ended with an error"),
    }
}

/// The response to one request: the current JWKS, or 404 or 405.
fn respond(jwks: &watch::Receiver<Arc<String>>, request: &Request<Incoming>) -> Response<String> {
    let method = request.method();
    let path = request.uri().path();

    let response = if path != JWKS_PATH {
        empty(StatusCode::NOT_FOUND)
    } else if method != Method::GET && method != Method::HEAD {
        let mut response = empty(StatusCode::METHOD_NOT_ALLOWED);
        let allow = HeaderValue::from_static(ALLOWED_METHODS);
        response.headers_mut().insert(header::ALLOW, allow);
        response
    } else {
        document(jwks.borrow().as_str())
    };

    debug!(%method, path, status = response.status().as_u16(), "jwks request");
    response
}

fn document(jwks: &str) -> Response<String> {
    let mut response = Response::new(jwks.to_owned());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, cache_control());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// How long caches may keep the JWKS: a rotation waits this long (and
/// longer) between publishing a key and signing with it.
fn cache_control() -> HeaderValue {
    HeaderValue::try_from(format!("max-age={JWKS_MAX_AGE_SECS}"))
        .expect("a number makes a valid header value")
}

fn empty(status: StatusCode) -> Response<String> {
    let mut response = Response::new(String::new());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests;

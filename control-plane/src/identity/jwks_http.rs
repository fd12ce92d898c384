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

/// The one path served.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The ALPN protocols the caller's TLS acceptor should offer, in this order.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

const CACHE_CONTROL: &str = "max-age=60";
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
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn empty(status: StatusCode) -> Response<String> {
    let mut response = Response::new(String::new());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;
    use tokio_rustls::TlsConnector;
    use tokio_rustls::client::TlsStream;

    const FIRST: &str = r#"{"keys":[{"kid":"first"}]}"#;
    const SECOND: &str = r#"{"keys":[{"kid":"first"},{"kid":"second"}]}"#;
    /// Long enough for a loaded machine, short against the defaults.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// A running endpoint, stopped when `stop` is sent or dropped.
    struct Running {
        address: SocketAddr,
        jwks: watch::Sender<Arc<String>>,
        stop: oneshot::Sender<()>,
        task: JoinHandle<Result<(), JwksHttpError>>,
    }

    async fn start(tls: Option<TlsAcceptor>, limits: JwksHttpLimits) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (jwks, jwks_rx) = watch::channel(Arc::new(FIRST.to_owned()));
        let (stop, stopped) = oneshot::channel::<()>();

        let server = JwksServer::new(jwks_rx, tls).with_limits(limits);
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(server.serve(listener, shutdown));
        Running {
            address,
            jwks,
            stop,
            task,
        }
    }

    struct TestTls {
        acceptor: TlsAcceptor,
        certificate: CertificateDer<'static>,
    }

    fn test_tls() -> TestTls {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let certificate = certified.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certificate.clone()], PrivateKeyDer::Pkcs8(key))
            .unwrap();
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        TestTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
        }
    }

    async fn tls_connect(
        address: SocketAddr,
        certificate: &CertificateDer<'static>,
        alpn: &[&[u8]],
    ) -> TlsStream<TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certificate.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();

        let stream = TcpStream::connect(address).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let connector = TlsConnector::from(Arc::new(config));
        connector.connect(name, stream).await.unwrap()
    }

    /// An HTTP/1.1 response, split into its parts.
    struct Reply {
        status: u16,
        head: String,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.head.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name).then(|| value.trim())
            })
        }
    }

    /// Sends one request with `Connection: close` and reads the reply to EOF.
    async fn request<S>(mut stream: S, method: &str, path: &str) -> Reply
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();

        let mut raw = Vec::new();
        tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
            .await
            .expect("the server answers in time")
            .unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .expect("a complete response head");
        Reply {
            status: head[9..12].parse().unwrap(),
            head: head.to_owned(),
            body: body.to_owned(),
        }
    }

    async fn plaintext(address: SocketAddr, method: &str, path: &str) -> Reply {
        request(TcpStream::connect(address).await.unwrap(), method, path).await
    }

    /// How long the server takes to close `stream`; nothing is sent on it.
    async fn time_until_closed<S: AsyncRead + Unpin>(mut stream: S) -> Duration {
        let started = tokio::time::Instant::now();
        let mut sink = Vec::new();
        let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "the server kept the connection open");
        started.elapsed()
    }

    #[tokio::test]
    async fn plaintext_get_serves_the_current_jwks() {
        let server = start(None, JwksHttpLimits::default()).await;

        let reply = plaintext(server.address, "GET", JWKS_PATH).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, FIRST);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.header("cache-control"), Some("max-age=60"));
    }

    #[tokio::test]
    async fn updated_jwks_is_served_on_the_next_request() {
        let server = start(None, JwksHttpLimits::default()).await;
        assert_eq!(
            plaintext(server.address, "GET", JWKS_PATH).await.body,
            FIRST
        );

        server.jwks.send_replace(Arc::new(SECOND.to_owned()));
        assert_eq!(
            plaintext(server.address, "GET", JWKS_PATH).await.body,
            SECOND
        );
    }

    #[tokio::test]
    async fn head_returns_the_headers_without_the_body() {
        let server = start(None, JwksHttpLimits::default()).await;

        let reply = plaintext(server.address, "HEAD", JWKS_PATH).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("content-length"),
            Some(FIRST.len().to_string().as_str())
        );
        assert_eq!(reply.body, "");
    }

    #[tokio::test]
    async fn other_paths_are_not_found() {
        let server = start(None, JwksHttpLimits::default()).await;

        for path in [
            "/",
            "/.well-known/openid-configuration",
            "/.well-known/jwks.json/x",
        ] {
            assert_eq!(
                plaintext(server.address, "GET", path).await.status,
                404,
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn methods_other_than_get_and_head_are_not_allowed() {
        let server = start(None, JwksHttpLimits::default()).await;

        for method in ["POST", "PUT", "DELETE"] {
            let reply = plaintext(server.address, method, JWKS_PATH).await;
            assert_eq!(reply.status, 405, "{method}");
            assert_eq!(reply.header("allow"), Some("GET, HEAD"));
        }
    }

    #[tokio::test]
    async fn oversized_request_headers_are_refused() {
        let server = start(None, JwksHttpLimits::default()).await;
        let mut stream = TcpStream::connect(server.address).await.unwrap();

        let filler = "a".repeat(32 * 1024);
        let request =
            format!("GET {JWKS_PATH} HTTP/1.1\r\nHost: localhost\r\nX-Filler: {filler}\r\n\r\n");
        let _ = stream.write_all(request.as_bytes()).await;
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw)).await;

        let raw = String::from_utf8_lossy(&raw);
        assert!(raw.is_empty() || raw.starts_with("HTTP/1.1 431"), "{raw}");
        assert!(!raw.contains(FIRST));
    }

    #[tokio::test]
    async fn tls_get_serves_the_jwks_with_and_without_alpn() {
        let tls = test_tls();
        let server = start(Some(tls.acceptor.clone()), JwksHttpLimits::default()).await;

        for alpn in [&[][..], &[&b"http/1.1"[..]][..]] {
            let stream = tls_connect(server.address, &tls.certificate, alpn).await;
            let reply = request(stream, "GET", JWKS_PATH).await;
            assert_eq!((reply.status, reply.body.as_str()), (200, FIRST));
        }
    }

    #[tokio::test]
    async fn tls_client_offering_h2_is_served_http2() {
        let tls = test_tls();
        let server = start(Some(tls.acceptor.clone()), JwksHttpLimits::default()).await;
        let mut stream = tls_connect(server.address, &tls.certificate, &[b"h2", b"http/1.1"]).await;
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

        let (status, body) = h2::get(&mut stream, JWKS_PATH).await;
        assert_eq!(status, 200);
        assert_eq!(body, FIRST.as_bytes());
    }

    #[tokio::test]
    async fn silent_tls_client_is_dropped_after_the_handshake_timeout() {
        let tls = test_tls();
        let limits = JwksHttpLimits {
            tls_handshake_timeout: Duration::from_millis(200),
            ..JwksHttpLimits::default()
        };
        let server = start(Some(tls.acceptor), limits).await;

        let silent = TcpStream::connect(server.address).await.unwrap();
        assert!(time_until_closed(silent).await >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn idle_client_is_dropped_after_the_header_read_timeout() {
        let limits = JwksHttpLimits {
            header_read_timeout: Duration::from_millis(200),
            ..JwksHttpLimits::default()
        };
        let server = start(None, limits).await;

        let idle = TcpStream::connect(server.address).await.unwrap();
        assert!(time_until_closed(idle).await >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn clients_beyond_the_connection_cap_wait_for_a_free_slot() {
        let limits = JwksHttpLimits {
            max_connections: 1,
            ..JwksHttpLimits::default()
        };
        let server = start(None, limits).await;
        let holder = TcpStream::connect(server.address).await.unwrap();
        let waiting = tokio::spawn(plaintext(server.address, "GET", JWKS_PATH));

        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "served past the cap");

        drop(holder);
        assert_eq!(waiting.await.unwrap().status, 200);
    }

    #[tokio::test]
    async fn shutdown_stops_accepting() {
        let server = start(None, JwksHttpLimits::default()).await;
        assert_eq!(
            plaintext(server.address, "GET", JWKS_PATH).await.status,
            200
        );

        server.stop.send(()).unwrap();
        let stopped = tokio::time::timeout(PATIENCE, server.task).await;
        assert!(stopped.expect("serve returns").unwrap().is_ok());
        assert!(TcpStream::connect(server.address).await.is_err());
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections() {
        let server = start(None, JwksHttpLimits::default()).await;
        let idle = TcpStream::connect(server.address).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;

        server.stop.send(()).unwrap();
        assert!(time_until_closed(idle).await < JwksHttpLimits::default().header_read_timeout);
        assert!(server.task.await.unwrap().is_ok());
    }

    /// Just enough HTTP/2 to send one GET and read the reply: frames by hand,
    /// header fields as HPACK literals that need no table.
    mod h2 {
        use super::*;

        const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        const DATA: u8 = 0x0;
        const HEADERS: u8 = 0x1;
        const SETTINGS: u8 = 0x4;
        const END_STREAM: u8 = 0x1;
        const END_HEADERS: u8 = 0x4;
        const ACK: u8 = 0x1;
        /// HPACK static table entry 8, `:status: 200`, as an indexed field.
        const STATUS_200: u8 = 0x88;

        fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
            let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
            let mut frame = length[1..].to_vec();
            frame.extend_from_slice(&[kind, flags]);
            frame.extend_from_slice(&stream.to_be_bytes());
            frame.extend_from_slice(payload);
            frame
        }

        /// A literal field without indexing whose name is static entry `index`.
        fn literal(index: u8, value: &str) -> Vec<u8> {
            let mut field = vec![index, u8::try_from(value.len()).unwrap()];
            field.extend_from_slice(value.as_bytes());
            field
        }

        async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> (u8, u8, u32, Vec<u8>) {
            let mut head = [0u8; 9];
            stream.read_exact(&mut head).await.unwrap();
            let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let stream_id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; length];
            stream.read_exact(&mut payload).await.unwrap();
            (head[3], head[4], stream_id, payload)
        }

        /// Sends `GET path` on stream 1; returns the status and the body.
        pub(super) async fn get<S>(stream: &mut S, path: &str) -> (u16, Vec<u8>)
        where
            S: AsyncRead + AsyncWrite + Unpin,
        {
            // :method GET (2) and :scheme https (7) are indexed; :authority
            // (1) and :path (4) are literals.
            let mut block = vec![0x82, 0x87];
            block.extend(literal(1, "localhost"));
            block.extend(literal(4, path));
            let mut hello = PREFACE.to_vec();
            hello.extend(frame(SETTINGS, 0, 0, &[]));
            hello.extend(frame(HEADERS, END_STREAM | END_HEADERS, 1, &block));
            stream.write_all(&hello).await.unwrap();

            let (mut status, mut body) = (0, Vec::new());
            loop {
                let (kind, flags, id, payload) = read_frame(stream).await;
                if kind == SETTINGS && flags & ACK == 0 {
                    stream
                        .write_all(&frame(SETTINGS, ACK, 0, &[]))
                        .await
                        .unwrap();
                }
                if id != 1 {
                    continue;
                }
                if kind == HEADERS && payload.first() == Some(&STATUS_200) {
                    status = 200;
                }
                if kind == DATA {
                    body.extend_from_slice(&payload);
                }
                if flags & END_STREAM != 0 {
                    return (status, body);
                }
            }
        }
    }
}

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

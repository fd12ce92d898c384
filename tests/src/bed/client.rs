//! The bed's callers: plain TCP clients of an agent's outbound listeners,
//! on the caller's host, as local applications are, and TLS clients that
//! go straight to an inbound port from the test's own namespace, as a
//! stranger on the network would.
//!
//! A call writes one line and expects two back: the caller identity the
//! service read from the agent's PROXY header, then the line echoed. A
//! refused call is one that ends without a byte of the service's answer,
//! and how it ends tells who refused it: nothing listening (the caller's
//! agent opened no listener), a TLS alert (an agent refused the
//! certificate), or a connection taken and then closed (an agent refused
//! it after the handshake, or the caller's agent found no way through).

use std::fmt;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsConnector;

use super::network::Site;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an answer, or the end of a refused connection, may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// What every call sends.
const PING: &str = "ping from the bed\n";

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The service answered and echoed; it saw `caller`.
    Answered { caller: String },
    /// A listener took the connection (on an inbound port, the TLS
    /// handshake completed too), then it was closed or reset before any
    /// answer.
    Closed(String),
    /// The TLS handshake failed, or the server's first words were a TLS
    /// alert: the certificate was refused.
    HandshakeFailed(String),
    /// Nothing listens at the address: the TCP connection was refused.
    NoListener(String),
    /// None of those: a partial answer, a wrong echo, or no end at all.
    Broken(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Answered { caller } => write!(f, "answered, the service saw {caller}"),
            Outcome::Closed(how) => write!(f, "closed unanswered ({how})"),
            Outcome::HandshakeFailed(how) => write!(f, "refused at the TLS handshake ({how})"),
            Outcome::NoListener(how) => write!(f, "nothing listening ({how})"),
            Outcome::Broken(how) => write!(f, "broken ({how})"),
        }
    }
}

/// The TCP connection from `site` to `address`, or how the call ended
/// without one.
async fn connect(site: &Site, address: SocketAddr) -> Result<TcpStream, Outcome> {
    match timeout(CONNECT_TIMEOUT, site.connect(address)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) if error.kind() == ErrorKind::ConnectionRefused => {
            Err(Outcome::NoListener(format!("connect: {error}")))
        }
        Ok(Err(error)) => Err(Outcome::Broken(format!("connect: {error}"))),
        Err(_) => Err(Outcome::Broken("connect timed out".into())),
    }
}

/// How a connection that was taken ended, from the error that ended it.
fn ended(what: &str, error: &std::io::Error) -> Outcome {
    let tls = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::AlertReceived(alert)) => {
            Outcome::HandshakeFailed(format!("{what}: alert {alert:?}"))
        }
        _ => Outcome::Closed(format!("{what}: {error}")),
    }
}

/// Calls the plain TCP listener at `address`, from `site`.
pub async fn call(site: &Site, address: SocketAddr) -> Outcome {
    match connect(site, address).await {
        Ok(stream) => converse(stream).await,
        Err(outcome) => outcome,
    }
}

/// Calls the inbound (mTLS) listener at `address` directly from `site`,
/// presenting `identity` (a chain and key, PEM) or no certificate.
pub async fn call_tls(site: &Site, address: SocketAddr, identity: Option<(&str, &str)>) -> Outcome {
    let config = match tls_config(identity) {
        Ok(config) => config,
        Err(error) => return Outcome::Broken(format!("client settings: {error}")),
    };
    let stream = match connect(site, address).await {
        Ok(stream) => stream,
        Err(outcome) => return outcome,
    };

    let name = ServerName::IpAddress(address.ip().into());
    let connect = TlsConnector::from(config).connect(name, stream);
    match timeout(ANSWER_TIMEOUT, connect).await {
        Ok(Ok(tls)) => converse(tls).await,
        Ok(Err(error)) => Outcome::HandshakeFailed(format!("handshake: {error}")),
        Err(_) => Outcome::Broken("handshake neither finished nor failed".into()),
    }
}

/// Writes the ping and reads the answer.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Outcome {
    let mut stream = BufReader::new(stream);
    if let Err(error) = stream.get_mut().write_all(PING.as_bytes()).await {
        return ended("write", &error);
    }

    let caller = match read_line(&mut stream).await {
        Line::Full(line) => line,
        Line::Closed(None) => return Outcome::Closed("closed without data".into()),
        Line::Closed(Some(error)) => return ended("read", &error),
        Line::Partial(how) => return Outcome::Broken(how),
    };
    match read_line(&mut stream).await {
        Line::Full(echo) if format!("{echo}\n") == PING => Outcome::Answered { caller },
        Line::Full(echo) => Outcome::Broken(format!("echoed {echo:?}")),
        Line::Closed(_) => Outcome::Broken(format!("answered {caller:?}, then closed")),
        Line::Partial(how) => Outcome::Broken(format!("answered {caller:?}, then {how}")),
    }
}

enum Line {
    Full(String),
    /// Ended before any byte: cleanly, or with this error.
    Closed(Option<std::io::Error>),
    /// Some bytes, then no more, or nothing in time.
    Partial(String),
}

impl Line {
    /// What went wrong, for a line that is not full.
    fn describe(self) -> String {
        match self {
            Line::Full(line) => format!("read {line:?}"),
            Line::Closed(None) => "closed without data".into(),
            Line::Closed(Some(error)) => format!("read: {error}"),
            Line::Partial(how) => how,
        }
    }
}

async fn read_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> Line {
    let mut line = String::new();
    match timeout(ANSWER_TIMEOUT, reader.read_line(&mut line)).await {
        Err(_) if line.is_empty() => Line::Partial("neither answered nor closed".into()),
        Err(_) => Line::Partial(format!("{line:?}, then nothing")),
        Ok(Ok(0)) => Line::Closed(None),
        Ok(Err(error)) if line.is_empty() => Line::Closed(Some(error)),
        Ok(Ok(_)) if line.ends_with('\n') => Line::Full(line.trim_end().to_owned()),
        Ok(_) => Line::Partial(format!("{line:?}, then closed")),
    }
}

/// A connection that was answered and stays open, to see whether the
/// agents close it later.
pub struct Session {
    stream: BufReader<TcpStream>,
    /// The caller the service saw.
    pub caller: String,
}

impl Session {
    /// Opens a connection from `site` to the plain TCP listener at
    /// `address` and checks that it is answered.
    pub async fn open(site: &Site, address: SocketAddr) -> Result<Session, String> {
        let stream = timeout(CONNECT_TIMEOUT, site.connect(address))
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|error| format!("connect: {error}"))?;
        let mut session = Session {
            stream: BufReader::new(stream),
            caller: String::new(),
        };
        session.caller = match read_line(&mut session.stream).await {
            Line::Full(caller) => caller,
            other => return Err(other.describe()),
        };
        session.exchange().await?;
        Ok(session)
    }

    /// Sends a line and reads it echoed.
    pub async fn exchange(&mut self) -> Result<(), String> {
        let written = self.stream.get_mut().write_all(PING.as_bytes()).await;
        written.map_err(|error| format!("write: {error}"))?;
        match read_line(&mut self.stream).await {
            Line::Full(echo) if format!("{echo}\n") == PING => Ok(()),
            Line::Full(echo) => Err(format!("echoed {echo:?}")),
            other => Err(other.describe()),
        }
    }

    /// Waits until the connection is closed, at most `deadline`.
    pub async fn closed_within(&mut self, deadline: Duration) -> Result<(), String> {
        let mut byte = [0u8; 1];
        match timeout(deadline, self.stream.read(&mut byte)).await {
            Ok(Ok(0) | Err(_)) => Ok(()),
            Ok(Ok(_)) => Err("data arrived on a connection that should be closed".into()),
            Err(_) => Err(format!("still open after {deadline:?}")),
        }
    }
}

/// Opens a TCP connection to `address` from `source`, an address of the
/// test's own namespace, as a host other than the bed's callers would.
pub async fn connect_from(source: IpAddr, address: SocketAddr) -> std::io::Result<TcpStream> {
    timeout(CONNECT_TIMEOUT, Site::here().connect_from(source, address))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Opens a TCP connection to `address` and sends a real TLS ClientHello,
/// then nothing more: the server's answer goes unread and the handshake
/// never finishes.
pub async fn stall_mid_handshake(address: SocketAddr) -> std::io::Result<TcpStream> {
    let config = tls_config(None).map_err(std::io::Error::other)?;
    let name = ServerName::IpAddress(address.ip().into());
    let mut connection =
        rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut hello = Vec::new();
    connection.write_tls(&mut hello)?;

    let mut stream = TcpStream::connect(address).await?;
    stream.write_all(&hello).await?;
    Ok(stream)
}

/// Reads and drops what arrives on `stream` until it ends, at most
/// `deadline`; returns how long that took, or `None` if it did not end.
pub async fn time_until_closed(stream: &mut TcpStream, deadline: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    let drained = async {
        while let Ok(read) = stream.read(&mut buffer).await
            && read > 0
        {}
    };
    timeout(deadline, drained).await.ok()?;
    Some(started.elapsed())
}

/// TLS 1.3 client settings: `identity` or no certificate; any server is
/// taken, since these clients test what the server does with them.
fn tls_config(identity: Option<(&str, &str)>) -> Result<Arc<ClientConfig>, rustls::Error> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer { provider }));

    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| rustls::Error::General(error.to_string()))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|error| rustls::Error::General(error.to_string()))?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    Ok(Arc::new(config))
}

/// Takes any server certificate, but checks the handshake's signatures.
#[derive(Debug)]
struct AnyServer {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

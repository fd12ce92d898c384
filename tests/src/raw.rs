//! A raw gRPC caller over HTTP/2 and mTLS, for what a client library hides:
//! a message whose length prefix promises more bytes than follow it, and
//! whether a connection resumed an earlier TLS session.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

use crate::{ControlPlane, Credentials};

/// What the server answered: the gRPC status code and message.
#[derive(Debug)]
pub struct Answer {
    pub code: i32,
    pub message: String,
}

/// Calls `path` with one message prefix declaring `declared` bytes, followed
/// by only `sent` bytes of it, and the stream left open. A server that
/// checks the declared length answers at once; one that waits for the body
/// never answers, and this gives up after `patience`.
pub async fn declared_message(
    cp: &ControlPlane,
    credentials: &Credentials,
    path: &str,
    declared: u32,
    sent: usize,
    patience: Duration,
) -> anyhow::Result<Answer> {
    let (mut client, _) = Session::new(credentials)?.connect(cp).await?;
    let (response, mut body) = client.send_request(grpc_request(path)?, false)?;
    let mut data = vec![0u8];
    data.extend_from_slice(&declared.to_be_bytes());
    data.resize(5 + sent, b'#');
    body.send_data(Bytes::from(data), false)?;

    let answer = tokio::time::timeout(patience, answer(response)).await;
    drop(body);
    answer.map_err(|_| anyhow::anyhow!("no answer within {patience:?}"))?
}

/// A client's TLS settings with their session cache: connections made from
/// one session resume the TLS sessions of the ones before, when the server
/// allows it.
pub struct Session {
    config: Arc<rustls::ClientConfig>,
}

impl Session {
    pub fn new(credentials: &Credentials) -> anyhow::Result<Self> {
        Ok(Self {
            config: client_config(credentials)?,
        })
    }

    /// Opens an HTTP/2 connection; says whether its TLS session resumed.
    pub async fn connect(
        &self,
        cp: &ControlPlane,
    ) -> anyhow::Result<(h2::client::SendRequest<Bytes>, bool)> {
        let tcp = TcpStream::connect(cp.address()).await?;
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        let tls = connector
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);

        let (client, connection) = h2::client::handshake(tls).await?;
        tokio::spawn(connection);
        Ok((client, resumed))
    }
}

/// Makes one unary call on `client` and decodes its answer.
pub async fn unary<Reply: prost::Message + Default>(
    client: &mut h2::client::SendRequest<Bytes>,
    path: &str,
    request: &impl prost::Message,
) -> anyhow::Result<Result<Reply, Answer>> {
    let mut data = vec![0u8];
    data.extend_from_slice(&(request.encoded_len() as u32).to_be_bytes());
    request.encode(&mut data)?;
    let (response, mut body) = client.send_request(grpc_request(path)?, false)?;
    body.send_data(Bytes::from(data), true)?;

    let (head, mut body) = response.await?.into_parts();
    let mut message = Vec::new();
    while let Some(chunk) = body.data().await.transpose()? {
        message.extend_from_slice(&chunk);
    }
    let trailers = match head.headers.contains_key("grpc-status") {
        true => head.headers,
        false => body.trailers().await?.unwrap_or_default(),
    };
    let status = status(&trailers)?;
    if status.code != 0 {
        return Ok(Err(status));
    }
    let payload = message.get(5..).unwrap_or_default();
    Ok(Ok(Reply::decode(payload)?))
}

fn grpc_request(path: &str) -> anyhow::Result<http::Request<()>> {
    Ok(http::Request::post(format!("https://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?)
}

async fn answer(response: h2::client::ResponseFuture) -> anyhow::Result<Answer> {
    let response = response.await?;
    let (head, mut body) = response.into_parts();
    let trailers = match head.headers.contains_key("grpc-status") {
        true => head.headers,
        false => {
            while body.data().await.transpose()?.is_some() {}
            body.trailers().await?.unwrap_or_default()
        }
    };
    status(&trailers)
}

fn status(trailers: &http::HeaderMap) -> anyhow::Result<Answer> {
    let text = |name: &str| {
        trailers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    Ok(Answer {
        code: text("grpc-status").parse()?,
        message: percent_decoded(&text("grpc-message")),
    })
}

/// `grpc-message` is percent-encoded on the wire.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn client_config(credentials: &Credentials) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&credentials.ca)? {
        roots.add(cert?)?;
    }
    let cert_path = credentials.cert.as_ref().expect("a client certificate");
    let key_path = credentials.key.as_ref().expect("a client key");
    let chain = CertificateDer::pem_file_iter(cert_path)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key_path)?;
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

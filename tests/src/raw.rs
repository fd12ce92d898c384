//! A raw gRPC caller over HTTP/2 and mTLS, for requests that a well-behaved
//! client library will not send: a message whose length prefix promises more
//! bytes than follow it.

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
    let tls = connect(cp, credentials).await?;
    let (mut client, connection) = h2::client::handshake(tls).await?;
    tokio::spawn(connection);

    let request = http::Request::post(format!("https://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?;
    let (response, mut body) = client.send_request(request, false)?;
    let mut data = vec![0u8];
    data.extend_from_slice(&declared.to_be_bytes());
    data.resize(5 + sent, b'#');
    body.send_data(Bytes::from(data), false)?;

    let answer = tokio::time::timeout(patience, answer(response)).await;
    drop(body);
    answer.map_err(|_| anyhow::anyhow!("no answer within {patience:?}"))?
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

async fn connect(
    cp: &ControlPlane,
    credentials: &Credentials,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
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

    let tcp = TcpStream::connect(cp.address()).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost")?;
    Ok(connector.connect(name, tcp).await?)
}

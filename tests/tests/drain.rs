//! SIGTERM drains: the server stops taking new calls, but a call already in
//! flight is answered, its writes survive a restart, and the process exits
//! 0 after flushing the store. Open watches end so that they do not hold
//! the drain up.
//!
//! To be sure the apply is in flight when the signal arrives, the test
//! speaks HTTP/2 itself: it sends the request's headers and half its body,
//! signals, waits until the server says it is draining, and only then sends
//! the rest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use palisade_tests::{ControlPlane, list_all, pb, revision};
use prost::Message as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Documents in the apply that the signal interrupts.
const DOCUMENTS: usize = 5_000;
/// How long the request's first half gets to reach the server.
const ARRIVAL: Duration = Duration::from_millis(300);
const LOG_TIMEOUT: Duration = Duration::from_secs(30);

fn nodes(count: usize) -> String {
    (0..count)
        .map(|index| {
            let address = format!(
                "10.{}.{}.{}",
                index / 65_536,
                index / 256 % 256,
                index % 256
            );
            format!("kind: Node\nmetadata: {{name: n{index}}}\nspec: {{address: {address}}}\n")
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// An apply of `content` as one gRPC message: flag, length, bytes.
fn apply_message(content: String) -> Vec<u8> {
    let request = pb::ApplyRequest {
        source: "nodes.yaml".into(),
        content,
        dry_run: false,
    };
    let encoded = request.encode_to_vec();
    let mut message = vec![0];
    message.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    message.extend_from_slice(&encoded);
    message
}

/// An HTTP/2 connection to the admin API as the first admin.
async fn http2(cp: &ControlPlane) -> h2::client::SendRequest<Bytes> {
    let credentials = cp.admin_credentials();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&credentials.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let chain = CertificateDer::pem_file_iter(credentials.cert.unwrap())
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(credentials.key.unwrap()).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];

    let tcp = tokio::net::TcpStream::connect(cp.address()).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Reads a unary gRPC answer: the reply, or the status code and message.
async fn unary_answer(response: h2::client::ResponseFuture) -> Result<pb::ApplyResponse, String> {
    let (head, mut body) = response.await.unwrap().into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap().unwrap_or(head.headers);

    let status = trailers
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    match status.as_deref() {
        Some("0") => Ok(pb::ApplyResponse::decode(&data[5..]).unwrap()),
        _ => Err(format!("{status:?}: {:?}", trailers.get("grpc-message"))),
    }
}

/// Waits until the control plane's log contains `line`.
async fn logged(cp: &ControlPlane, line: &str) {
    let deadline = Instant::now() + LOG_TIMEOUT;
    while !cp.log().contains(line) {
        assert!(
            Instant::now() < deadline,
            "never logged {line:?}:\n{}",
            cp.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_the_apply_in_flight_and_keeps_its_writes() {
    let mut cp = ControlPlane::init("drain.test").unwrap();
    cp.start_with(&["--drain-timeout-secs", "120"])
        .await
        .unwrap();
    let mut h2 = http2(&cp).await;
    let message = apply_message(nodes(DOCUMENTS));
    let (first, rest) = message.split_at(message.len() / 2);

    // Half the apply, then the signal.
    let request = http::Request::post("https://localhost/palisade.admin.v1.Admin/Apply")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = h2.send_request(request, false).unwrap();
    body.send_data(Bytes::copy_from_slice(first), false)
        .unwrap();
    tokio::time::sleep(ARRIVAL).await;
    cp.send_sigterm().unwrap();
    logged(&cp, "draining in-flight calls").await;

    // The rest, once the server drains; the answer; the exit.
    body.send_data(Bytes::copy_from_slice(rest), true).unwrap();
    let reply = unary_answer(response).await;
    let (exit, mut cp) = tokio::task::spawn_blocking(move || (cp.wait_for_exit(), cp))
        .await
        .unwrap();

    let reply = reply.unwrap_or_else(|status| panic!("{status}\n{}", cp.log()));
    assert_eq!(reply.changes.len(), DOCUMENTS);
    assert!(exit.unwrap().success(), "{}", cp.log());
    let log = cp.log();
    assert!(
        log.contains("drained") && !log.contains("drain deadline passed"),
        "{log}"
    );
    assert!(log.contains("store flushed; stopped"), "{log}");

    // Everything it wrote is there after a restart.
    cp.start().await.unwrap();
    let mut client = cp.admin().await.unwrap();
    assert_eq!(revision(&mut client).await.unwrap(), reply.revision);
    assert_eq!(
        list_all(&mut client, "Node").await.unwrap().len(),
        DOCUMENTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_watches_and_exits_0() {
    let mut cp = ControlPlane::init("drain.test").unwrap();
    cp.start().await.unwrap();
    let mut client = cp.admin().await.unwrap();
    let request = pb::WatchRequest::default();
    let mut events = client.watch(request).await.unwrap().into_inner();

    let (stopped, cp) = tokio::task::spawn_blocking(move || (cp.terminate().unwrap(), cp))
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), events.message()).await;

    assert!(stopped.success(), "{}", cp.log());
    assert!(!cp.log().contains("drain deadline passed"), "{}", cp.log());
    let ended = ended.expect("the watch stayed open after the server stopped");
    assert!(!matches!(ended, Ok(Some(_))), "{ended:?}");
}

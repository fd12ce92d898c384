//! What the data path tests share: a test CA, SVIDs, snapshots, test
//! applications and TLS clients, and a harness around the data path.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use palisade_proto::xds as pb;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType,
    SerialNumber,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::identity::svid::{Certificates, KeyPem, Svid, WorkloadCertificates};
use crate::proxy::proxy_protocol::parse::{Parsed, parse};
use crate::proxy::trust::algorithms;
use crate::proxy::{Counters, Settings, run_counted};
use crate::state::{Snapshot, State};

pub const TD: &str = "td";
/// How long a test waits for something that should happen at once.
pub const PROMPTLY: Duration = Duration::from_secs(5);

pub fn spiffe_id(namespace: &str, account: &str) -> String {
    format!("spiffe://{TD}/ns/{namespace}/sa/{account}")
}

/// A CA that signs SVIDs.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A signed leaf and its key.
#[derive(Clone)]
pub struct Leaf {
    pub serial: String,
    pub certificate_pem: String,
    pub certificate: CertificateDer<'static>,
    key_pem: String,
}

/// When a leaf is valid.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Until the year 4096, rcgen's default.
    Current,
    /// Through 2020 only.
    Expired,
    /// From 2020 until this moment.
    Until(time::OffsetDateTime),
}

impl TestCa {
    pub fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test ca");

        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    pub fn bundle_pem(&self) -> &str {
        &self.pem
    }

    /// An SVID for `spiffe_id`, valid now.
    pub fn leaf(&self, spiffe_id: &str) -> Leaf {
        self.leaf_with(&[spiffe_id], Validity::Current)
    }

    /// A leaf with these URI SANs.
    pub fn leaf_with(&self, uris: &[&str], validity: Validity) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        for uri in uris {
            let uri = (*uri).to_owned().try_into().unwrap();
            params.subject_alt_names.push(SanType::URI(uri));
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        match validity {
            Validity::Current => {}
            Validity::Expired => {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            Validity::Until(end) => {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = end;
            }
        }
        let serial = next_serial();
        params.serial_number = Some(SerialNumber::from_slice(&serial));

        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            serial: hex::encode(serial),
            certificate_pem: certificate.pem(),
            certificate: certificate.der().clone(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// Distinct serials, without a leading zero byte.
fn next_serial() -> [u8; 8] {
    static NEXT: AtomicU64 = AtomicU64::new(0x1000);
    let serial = NEXT.fetch_add(1, Ordering::Relaxed) | 0x0100_0000_0000_0000;
    serial.to_be_bytes()
}

impl Leaf {
    pub fn svid(&self) -> Arc<Svid> {
        let svid = Svid::from_pem(
            self.certificate_pem.clone(),
            KeyPem::new(self.key_pem.clone()),
        );
        Arc::new(svid.unwrap())
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap()
    }

    /// Settings for a test client presenting this leaf; the server is not
    /// checked.
    pub fn client(&self) -> Arc<ClientConfig> {
        let config = client_builder()
            .with_client_auth_cert(vec![self.certificate.clone()], self.key())
            .unwrap();
        Arc::new(config)
    }
}

/// Settings for a test client with no certificate.
pub fn anonymous_client() -> Arc<ClientConfig> {
    Arc::new(client_builder().with_no_client_auth())
}

fn client_builder() -> rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer))
}

/// Accepts any server certificate, checking only the handshake signature.
#[derive(Debug)]
struct AnyServer;

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }
}

/// Opens a TLS connection to `address`.
pub async fn connect(
    address: SocketAddr,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<TcpStream>> {
    let stream = TcpStream::connect(address).await?;
    let name = ServerName::IpAddress(address.ip().into());
    TlsConnector::from(config).connect(name, stream).await
}

/// A plain TCP connection to `address` from the loopback address
/// `source`, that sends nothing.
pub async fn connect_from(source: [u8; 4], address: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(address).await.unwrap()
}

/// Whether `address` refuses a client with `config`: the handshake fails,
/// or the connection ends before the application answers.
pub async fn refused(address: SocketAddr, config: Arc<ClientConfig>) -> bool {
    let Ok(mut stream) = connect(address, config).await else {
        return true;
    };
    let _ = stream.write_all(b"ping\n").await;
    closed(&mut stream).await
}

/// Whether the peer closes `stream` (soon) without sending anything.
pub async fn closed<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> bool {
    let mut buffer = [0u8; 64];
    match tokio::time::timeout(PROMPTLY, stream.read(&mut buffer)).await {
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => panic!("the connection stayed open"),
    }
}

/// Whether the peer ends `stream` (soon), whatever it sends first: for
/// plain TCP clients, which may receive a TLS alert.
pub async fn ends(stream: &mut TcpStream) -> bool {
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut buffer)).await;
    read.is_ok()
}

/// Sends a line and reads the reply line.
pub async fn exchange<S>(stream: &mut S, line: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream
        .write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    read_line(stream).await
}

async fn read_line<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while tokio::time::timeout(PROMPTLY, stream.read_exact(&mut byte))
        .await
        .expect("a reply in time")
        .is_ok()
    {
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

/// A test application on 127.0.0.1: answers each line with
/// `<name>:<line>`, after reading a PROXY header when told to.
pub struct App {
    pub port: u16,
    /// One per connection: the PROXY header it began with, if read.
    pub connections: mpsc::UnboundedReceiver<Option<Parsed>>,
}

impl App {
    pub async fn start(name: &str, proxy_protocol: bool) -> Self {
        let name = name.to_owned();
        Self::serving(move |stream, connections| {
            serve_app(stream, name.clone(), proxy_protocol, connections)
        })
        .await
    }

    /// An application that reads until the caller stops sending, and only
    /// then answers `read <bytes>` and closes.
    pub async fn counting() -> Self {
        Self::serving(count_to_end).await
    }

    async fn serving<F, Fut>(serve: F) -> Self
    where
        F: Fn(TcpStream, mpsc::UnboundedSender<Option<Parsed>>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sender, connections) = mpsc::unbounded_channel();

        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, sender.clone()));
            }
        });
        Self { port, connections }
    }

    /// The next connection's header, waiting for it.
    pub async fn next_connection(&mut self) -> Option<Parsed> {
        tokio::time::timeout(PROMPTLY, self.connections.recv())
            .await
            .expect("a connection in time")
            .expect("the application runs")
    }

    /// Whether no connection reached the application.
    pub fn untouched(&mut self) -> bool {
        self.connections.try_recv().is_err()
    }
}

async fn serve_app(
    mut stream: TcpStream,
    name: String,
    proxy_protocol: bool,
    connections: mpsc::UnboundedSender<Option<Parsed>>,
) {
    let header = match proxy_protocol {
        true => Some(read_header(&mut stream).await),
        false => None,
    };
    let _ = connections.send(header);

    loop {
        let line = read_line(&mut stream).await;
        if line.is_empty() {
            return;
        }
        let reply = format!("{name}:{line}\n");
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn count_to_end(mut stream: TcpStream, connections: mpsc::UnboundedSender<Option<Parsed>>) {
    let _ = connections.send(None);
    let mut received = Vec::new();
    if stream.read_to_end(&mut received).await.is_ok() {
        let reply = format!("read {}\n", received.len());
        let _ = stream.write_all(reply.as_bytes()).await;
    }
}

async fn read_header(stream: &mut TcpStream) -> Parsed {
    let mut header = vec![0u8; 16];
    stream.read_exact(&mut header).await.unwrap();
    let length = usize::from(u16::from_be_bytes([header[14], header[15]]));
    header.resize(16 + length, 0);
    stream.read_exact(&mut header[16..]).await.unwrap();
    parse(&header).expect("a PROXY v2 header")
}

/// A port that was free a moment ago.
pub async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A workload of `namespace/name`, instance of `service`, whose account is
/// its name.
pub fn workload(
    namespace: &str,
    name: &str,
    service: &str,
    inbound: u16,
    app: u16,
) -> pb::Workload {
    pb::Workload {
        namespace: namespace.into(),
        name: name.into(),
        service: service.into(),
        spiffe_id: spiffe_id(namespace, name),
        inbound_port: inbound.into(),
        app_port: app.into(),
        address: "127.0.0.1".into(),
        ..Default::default()
    }
}

/// An Authorization of `namespace/service` with one ALLOW rule per source.
pub fn allow(namespace: &str, service: &str, sources: Vec<pb::Source>) -> pb::Authorization {
    let rule = pb::AuthorizationRule {
        policy: "allow".into(),
        from: sources,
        ..Default::default()
    };
    pb::Authorization {
        namespace: namespace.into(),
        service: service.into(),
        allow: vec![rule],
        ..Default::default()
    }
}

/// A source that matches exactly these identities.
pub fn identities(ids: &[&str]) -> pb::Source {
    let exact = |id: &&str| pb::StringMatch {
        pattern: Some(pb::string_match::Pattern::Exact((*id).to_owned())),
    };
    pb::Source {
        identities: ids.iter().map(exact).collect(),
        ..Default::default()
    }
}

/// A snapshot of these workloads and authorizations, trusting `ca`.
pub fn snapshot(
    ca: &TestCa,
    workloads: Vec<pb::Workload>,
    authorizations: Vec<pb::Authorization>,
) -> Snapshot {
    let by_name = |w: pb::Workload| (format!("{}/{}", w.namespace, w.name), w);
    let by_service = |a: pb::Authorization| (format!("{}/{}", a.namespace, a.service), a);
    Snapshot {
        revision: 1,
        workloads: workloads.into_iter().map(by_name).collect(),
        authorizations: authorizations.into_iter().map(by_service).collect(),
        bundle: Some(pb::TrustBundle {
            trust_domain: TD.into(),
            x509_pem: ca.bundle_pem().to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Settings for tests: everything on 127.0.0.1.
pub fn settings() -> Settings {
    Settings {
        bind_address: [127, 0, 0, 1].into(),
        outbound_address: [127, 0, 0, 1].into(),
        proxy_protocol: false,
        handshake_timeout: Duration::from_secs(5),
        max_connections: 64,
        max_handshakes: 64,
        max_handshakes_per_source: 64,
    }
}

/// The data path, running.
pub struct Harness {
    pub state: State,
    pub certificates: Certificates,
    pub counters: Arc<Counters>,
    shutdown: watch::Sender<bool>,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl Harness {
    /// Starts the data path with nothing applied.
    pub async fn start(settings: Settings) -> Self {
        let state = State::new();
        let certificates = Certificates::default();
        let counters = Arc::new(Counters::default());
        let (shutdown, stopped) = watch::channel(false);

        let run = run_counted(
            state.clone(),
            certificates.clone(),
            settings,
            stopped,
            counters.clone(),
        );
        let harness = Self {
            state,
            certificates,
            counters,
            shutdown,
            task: tokio::spawn(run),
        };
        harness.applied_past(0).await;
        harness
    }

    /// Publishes these SVIDs (by workload) with `ca`'s bundle, and waits
    /// until they are applied.
    pub async fn publish(&self, ca: &TestCa, svids: &[(&str, &Leaf)]) {
        let by_workload: BTreeMap<String, Arc<Svid>> = svids
            .iter()
            .map(|(workload, leaf)| ((*workload).to_owned(), leaf.svid()))
            .collect();
        let before = self.read(&self.counters.applied);

        self.certificates.publish(WorkloadCertificates {
            by_workload,
            bundle_pem: ca.bundle_pem().to_owned(),
        });
        self.applied_past(before).await;
    }

    /// Applies `snapshot` and waits until the data path did.
    pub async fn apply(&self, snapshot: Snapshot) {
        let before = self.read(&self.counters.applied);
        self.state.apply(snapshot);
        self.applied_past(before).await;
    }

    pub fn read(&self, counter: &AtomicU64) -> u64 {
        Counters::read(counter)
    }

    /// Waits until `counter` reaches `value`.
    pub async fn reaches(&self, counter: &AtomicU64, value: u64) {
        let deadline = tokio::time::Instant::now() + PROMPTLY;
        while Counters::read(counter) < value {
            assert!(
                tokio::time::Instant::now() < deadline,
                "counter stayed at {}",
                Counters::read(counter)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn applied_past(&self, before: u64) {
        self.reaches(&self.counters.applied, before + 1).await;
    }

    /// Asks the data path to stop.
    pub fn stop(&self) {
        self.shutdown.send_replace(true);
    }
}

//! Nodes as agents see themselves: a key made here, a join token from the
//! admin API, a node certificate from the identity API, and mTLS endpoints
//! that present it. Only CSRs leave the bench, as with a real agent.

use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use palisade_proto::admin::CreateJoinTokenRequest;
use palisade_proto::identity::AttestRequest;
use palisade_proto::identity::identity_client::IdentityClient;
use rcgen::{CertificateParams, KeyPair, SanType};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::cp::{Admin, CALL_TIMEOUT, ControlPlane, CpError, SERVER_NAME, TRUST_DOMAIN};

/// Join tokens live this long; attestation follows at once.
const TOKEN_TTL_SECS: u32 = 3600;
/// Connections that attestations share.
const CONNECTIONS: usize = 8;

/// Errors attesting nodes.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    #[error(transparent)]
    ControlPlane(#[from] CpError),
    #[error("connecting to the identity API: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("creating a join token for {node}: {status}")]
    Token { node: String, status: tonic::Status },
    #[error("attesting {node}: {status}")]
    Attest { node: String, status: tonic::Status },
}

/// A node that attested: its name, its private key and its certificate.
/// Deliberately not `Debug`: it holds a private key.
pub struct AttestedNode {
    pub name: String,
    key_pem: String,
    chain_pem: String,
}

impl AttestedNode {
    /// An endpoint of `cp` that presents this node's certificate and trusts
    /// `bundle_pem`.
    pub fn endpoint(&self, cp: &ControlPlane, bundle_pem: &str) -> Result<Endpoint, CpError> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(bundle_pem))
            .identity(Identity::from_pem(&self.chain_pem, &self.key_pem))
            .domain_name(SERVER_NAME);
        cp.endpoint(tls)
    }
}

/// A new P-256 key, as agents make them.
pub fn new_key() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("generating a P-256 key")
}

/// A PEM CSR signed by `key` whose only name is the URI SAN `spiffe_id`.
pub fn csr_pem(key: &KeyPair, spiffe_id: &str) -> String {
    let uri = spiffe_id.try_into().expect("a SPIFFE ID is an IA5 string");
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(uri)];
    params
        .serialize_request(key)
        .and_then(|csr| csr.pem())
        .expect("serializing a CSR")
}

/// The SPIFFE ID of the workloads of `service` in `namespace`.
pub fn workload_spiffe_id(namespace: &str, service: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service}")
}

/// Attests every node in `names` (which must exist as Nodes), at most
/// `concurrency` at a time; returns them in the order of `names`.
pub async fn attest_all(
    cp: &ControlPlane,
    names: &[String],
    concurrency: usize,
) -> Result<Vec<AttestedNode>, NodesError> {
    // A few connections, shared by every attestation.
    let bundle = cp.bundle_pem()?;
    let mut pool = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&bundle))
            .domain_name(SERVER_NAME);
        let identity = cp.endpoint(tls)?.timeout(CALL_TIMEOUT).connect().await?;
        pool.push((cp.admin().await?, IdentityClient::new(identity)));
    }

    // One token and one attestation per node.
    let calls = names.iter().enumerate().map(|(index, name)| {
        let (admin, identity) = pool[index % CONNECTIONS].clone();
        attest(admin, identity, name.clone())
    });
    stream::iter(calls)
        .buffered(concurrency)
        .try_collect()
        .await
}

async fn attest(
    mut admin: Admin,
    mut identity: IdentityClient<Channel>,
    name: String,
) -> Result<AttestedNode, NodesError> {
    let request = CreateJoinTokenRequest {
        node: name.clone(),
        ttl_seconds: TOKEN_TTL_SECS,
    };
    let token = match admin.create_join_token(request).await {
        Ok(reply) => reply.into_inner().token,
        Err(status) => return Err(NodesError::Token { node: name, status }),
    };

    let key = new_key();
    let spiffe_id = format!("spiffe://{TRUST_DOMAIN}/node/{name}");
    let request = AttestRequest {
        join_token: token,
        csr: csr_pem(&key, &spiffe_id).into_bytes(),
    };
    match identity.attest(request).await {
        Ok(reply) => Ok(AttestedNode {
            key_pem: key.serialize_pem(),
            chain_pem: reply.into_inner().certificate_chain_pem,
            name,
        }),
        Err(status) => Err(NodesError::Attest { node: name, status }),
    }
}

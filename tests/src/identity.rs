//! A test agent: it makes its keys, attests with a join token, and asks for
//! workload certificates and JWT-SVIDs over mTLS, as a real agent would.

use std::time::Duration;

use anyhow::Context as _;
use palisade_proto::admin::{AuditEntry, CreateJoinTokenRequest, ListAuditRequest};
use palisade_proto::identity as idpb;
use palisade_proto::identity::identity_client::IdentityClient;
use rcgen::{CertificateParams, KeyPair, SanType};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::{Admin, ControlPlane};

/// The identity API client type.
pub type Client = IdentityClient<Channel>;

/// A new P-256 key.
pub fn new_key() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("generating a key")
}

/// A PEM CSR signed by `key` asking for the given SANs.
pub fn csr(key: &KeyPair, uris: &[&str], dns_names: &[&str]) -> String {
    let mut sans: Vec<SanType> = uris
        .iter()
        .map(|uri| SanType::URI((*uri).try_into().expect("an IA5 URI")))
        .collect();
    sans.extend(
        dns_names
            .iter()
            .map(|name| SanType::DnsName((*name).try_into().expect("an IA5 name"))),
    );
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    params
        .serialize_request(key)
        .expect("a CSR")
        .pem()
        .expect("PEM")
}

/// Creates a join token for `node` through the admin API.
pub async fn join_token(admin: &mut Admin, node: &str, ttl_seconds: u32) -> anyhow::Result<String> {
    let request = CreateJoinTokenRequest {
        node: node.into(),
        ttl_seconds,
    };
    Ok(admin.create_join_token(request).await?.into_inner().token)
}

/// Every entry of the audit log, oldest first.
pub async fn audit_entries(admin: &mut Admin) -> anyhow::Result<Vec<AuditEntry>> {
    let mut entries: Vec<AuditEntry> = Vec::new();
    loop {
        let request = ListAuditRequest {
            after_sequence: entries.last().map_or(0, |e| e.sequence),
            ..Default::default()
        };
        let page = admin.list_audit(request).await?.into_inner();
        let last = page
            .entries
            .last()
            .map_or(page.head_sequence, |e| e.sequence);
        entries.extend(page.entries);
        if last >= page.head_sequence {
            return Ok(entries);
        }
    }
}

/// An identity API client that presents no certificate, for attestation.
pub async fn anonymous(cp: &ControlPlane) -> anyhow::Result<Client> {
    let bundle = std::fs::read_to_string(cp.data_dir.join("ca.pem"))?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(bundle))
        .domain_name("localhost");
    connect(cp, tls).await
}

async fn connect(cp: &ControlPlane, tls: ClientTlsConfig) -> anyhow::Result<Client> {
    Ok(IdentityClient::new(tls_channel(cp, tls).await?))
}

/// A channel to the control plane presenting `chain_pem` and `key_pem`.
pub async fn mtls_channel(
    cp: &ControlPlane,
    chain_pem: &str,
    key_pem: &str,
    bundle_pem: &str,
) -> anyhow::Result<Channel> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(bundle_pem))
        .domain_name("localhost")
        .identity(Identity::from_pem(chain_pem, key_pem));
    tls_channel(cp, tls).await
}

async fn tls_channel(cp: &ControlPlane, tls: ClientTlsConfig) -> anyhow::Result<Channel> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Channel::from_shared(format!("https://{}", cp.address()))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .context("connecting to the control plane")
}

/// A node that attested: its key, certificate chain and bundle.
pub struct TestNode {
    pub name: String,
    pub trust_domain: String,
    pub key: KeyPair,
    pub chain_pem: String,
    pub serial: String,
    pub bundle_pem: String,
}

impl TestNode {
    /// The node's SPIFFE ID.
    pub fn spiffe_id(&self) -> String {
        format!("spiffe://{}/node/{}", self.trust_domain, self.name)
    }

    /// Attests as `name` with `token`, using a fresh key.
    pub async fn attest(
        cp: &ControlPlane,
        name: &str,
        token: &str,
    ) -> Result<TestNode, tonic::Status> {
        let key = new_key();
        let id = format!("spiffe://{}/node/{name}", cp.trust_domain);
        let request = idpb::AttestRequest {
            join_token: token.into(),
            csr: csr(&key, &[&id], &[]).into_bytes(),
        };

        let mut client = anonymous(cp)
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let issued = client.attest(request).await?.into_inner();
        Ok(TestNode {
            name: name.into(),
            trust_domain: cp.trust_domain.clone(),
            key,
            chain_pem: issued.certificate_chain_pem,
            serial: issued.serial,
            bundle_pem: issued
                .bundle
                .map(|b| b.x509_authorities_pem)
                .unwrap_or_default(),
        })
    }

    /// An identity API client authenticated by this node's certificate.
    pub async fn client(&self, cp: &ControlPlane) -> anyhow::Result<Client> {
        Ok(IdentityClient::new(self.channel(cp).await?))
    }

    /// A channel to the control plane authenticated by this node's
    /// certificate.
    pub async fn channel(&self, cp: &ControlPlane) -> anyhow::Result<Channel> {
        mtls_channel(
            cp,
            &self.chain_pem,
            &self.key.serialize_pem(),
            &self.bundle_pem,
        )
        .await
    }

    /// Asks for a workload certificate with a CSR of the caller's making.
    pub async fn sign_raw(
        &self,
        cp: &ControlPlane,
        namespace: &str,
        workload: &str,
        csr: Vec<u8>,
    ) -> Result<idpb::WorkloadCertificate, tonic::Status> {
        let request = idpb::SignWorkloadRequest {
            namespace: namespace.into(),
            workload: workload.into(),
            csr,
        };
        let mut client = self
            .client(cp)
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        Ok(client.sign_workload(request).await?.into_inner())
    }

    /// Makes a key for a workload and asks for its certificate.
    pub async fn sign(
        &self,
        cp: &ControlPlane,
        namespace: &str,
        workload: &str,
        spiffe_id: &str,
    ) -> Result<(KeyPair, idpb::WorkloadCertificate), tonic::Status> {
        let key = new_key();
        let csr = csr(&key, &[spiffe_id], &[]).into_bytes();
        let issued = self.sign_raw(cp, namespace, workload, csr).await?;
        Ok((key, issued))
    }

    /// Renews the node certificate with a fresh key.
    pub async fn renew(&self, cp: &ControlPlane) -> Result<idpb::NodeCertificate, tonic::Status> {
        let key = new_key();
        let request = idpb::RenewNodeRequest {
            csr: csr(&key, &[&self.spiffe_id()], &[]).into_bytes(),
        };
        let mut client = self
            .client(cp)
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        Ok(client.renew_node(request).await?.into_inner())
    }
}

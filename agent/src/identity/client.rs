//! Calls to the control plane's identity API (`palisade.identity.v1`),
//! each with a deadline. Every call that yields a certificate makes a
//! fresh key here first and sends only its CSR.

use std::future::Future;
use std::time::Duration;

use palisade_proto::identity as pb;
use palisade_proto::identity::identity_client::IdentityClient;
use tonic::transport::Channel;

use super::IdentityError;
use super::keys::key_request;
use super::node::JoinToken;
use super::svid::Svid;
use crate::control::{ControlPlane, TlsMaterial, describe_status};

/// How long one identity call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// A certificate the control plane issued, with the bundle it sent along.
#[derive(Debug)]
pub struct Issued {
    /// The certificate, with the key made for it.
    pub svid: Svid,
    /// Every CA certificate to trust now, as PEM; may be empty.
    pub bundle_pem: String,
}

/// An identity API client on one connection.
#[derive(Debug)]
pub struct Client {
    inner: IdentityClient<Channel>,
}

impl Client {
    /// Connects to the first control plane address that answers, with
    /// `material`.
    pub async fn connect(
        control: &ControlPlane,
        material: &TlsMaterial,
    ) -> Result<Self, IdentityError> {
        let (_, channel) = control.connect_any(0, material).await?;
        Ok(Self {
            inner: IdentityClient::new(channel),
        })
    }

    /// The control plane's trust domain, which needs no credentials.
    pub async fn trust_domain(&mut self) -> Result<String, IdentityError> {
        let call = "Bundle";
        let bundle = within(call, self.inner.bundle(pb::BundleRequest {})).await?;
        Ok(bundle.trust_domain)
    }

    /// Trades `token` for the node certificate `spiffe_id`.
    pub async fn attest(
        &mut self,
        token: &JoinToken,
        spiffe_id: &str,
    ) -> Result<Issued, IdentityError> {
        let call = "Attest";
        let request = key_request(spiffe_id)?;
        let attest = pb::AttestRequest {
            join_token: token.expose().to_owned(),
            csr: request.csr_pem.into_bytes(),
        };

        let issued = within(call, self.inner.attest(attest)).await?;
        let svid = checked(
            call,
            spiffe_id,
            issued.certificate_chain_pem,
            request.key_pem,
        )?;
        Ok(Issued {
            svid,
            bundle_pem: bundle_pem(issued.bundle),
        })
    }

    /// A fresh node certificate for `spiffe_id`, with a fresh key.
    pub async fn renew_node(&mut self, spiffe_id: &str) -> Result<Issued, IdentityError> {
        let call = "RenewNode";
        let request = key_request(spiffe_id)?;
        let renew = pb::RenewNodeRequest {
            csr: request.csr_pem.into_bytes(),
        };

        let issued = within(call, self.inner.renew_node(renew)).await?;
        let svid = checked(
            call,
            spiffe_id,
            issued.certificate_chain_pem,
            request.key_pem,
        )?;
        Ok(Issued {
            svid,
            bundle_pem: bundle_pem(issued.bundle),
        })
    }

    /// The X.509-SVID `spiffe_id` of the workload `namespace/name`.
    pub async fn sign_workload(
        &mut self,
        namespace: &str,
        name: &str,
        spiffe_id: &str,
    ) -> Result<Issued, IdentityError> {
        let call = "SignWorkload";
        let request = key_request(spiffe_id)?;
        let sign = pb::SignWorkloadRequest {
            namespace: namespace.to_owned(),
            workload: name.to_owned(),
            csr: request.csr_pem.into_bytes(),
        };

        let issued = within(call, self.inner.sign_workload(sign)).await?;
        let svid = checked(
            call,
            spiffe_id,
            issued.certificate_chain_pem,
            request.key_pem,
        )?;
        Ok(Issued {
            svid,
            bundle_pem: bundle_pem(issued.bundle),
        })
    }
}

/// Runs one call with the deadline.
async fn within<T>(
    call: &'static str,
    future: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, IdentityError> {
    match tokio::time::timeout(CALL_TIMEOUT, future).await {
        Err(_) => Err(IdentityError::Timeout { call }),
        Ok(Err(status)) => Err(IdentityError::Refused {
            call,
            code: status.code(),
            status: describe_status(&status),
        }),
        Ok(Ok(response)) => Ok(response.into_inner()),
    }
}

/// The issued chain with its key, which must carry `expected`.
fn checked(
    call: &'static str,
    expected: &str,
    chain_pem: String,
    key_pem: super::svid::KeyPem,
) -> Result<Svid, IdentityError> {
    let svid = Svid::from_pem(chain_pem, key_pem)
        .map_err(|source| IdentityError::BadCertificate { call, source })?;
    if svid.spiffe_id != expected {
        return Err(IdentityError::WrongIdentity {
            call,
            got: svid.spiffe_id,
            expected: expected.to_owned(),
        });
    }
    Ok(svid)
}

fn bundle_pem(bundle: Option<pb::TrustBundle>) -> String {
    bundle.map(|b| b.x509_authorities_pem).unwrap_or_default()
}

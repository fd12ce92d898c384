//! The node certificate: loaded from the data directory when it is still
//! good, otherwise obtained by attesting with the join token; renewed at
//! half life with RenewNode. Together with the trust bundle it is the
//! [`TlsMaterial`] every control-plane connection is made with.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;
use zeroize::Zeroizing;

use super::client::{Client, Issued};
use super::renewal::{Held, NodeStep, delay_until, node_step};
use super::svid::Svid;
use super::{IdentityError, stored, unix_now};
use crate::cache::{self, DataDir, PUBLIC};
use crate::control::backoff::{IDENTITY_RETRY, sleep_unless_stopped};
use crate::control::{ControlPlane, TlsMaterial};

/// The largest join token file read.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// A one-time join token; Debug prints nothing of it, and its memory is
/// zeroed on drop.
pub struct JoinToken(Zeroizing<String>);

impl JoinToken {
    /// Reads the token from `path`, without surrounding whitespace.
    pub fn read(path: &Path) -> Result<Self, IdentityError> {
        let failed = |detail: String| IdentityError::JoinToken {
            path: path.to_owned(),
            detail,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| failed(e.to_string()))?
            .len();
        if size > MAX_TOKEN_FILE_BYTES {
            return Err(failed(format!("larger than {MAX_TOKEN_FILE_BYTES} bytes")));
        }

        let text =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?);
        let token = text.trim();
        if token.is_empty() {
            return Err(failed("empty".into()));
        }
        Ok(Self(Zeroizing::new(token.to_owned())))
    }

    /// The token, to send to the control plane.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JoinToken(<redacted>)")
    }
}

/// This node's identity, shared by everyone that talks to the control
/// plane.
#[derive(Clone, Debug)]
pub struct NodeIdentity {
    name: String,
    dir: DataDir,
    material: watch::Sender<Arc<TlsMaterial>>,
}

impl NodeIdentity {
    /// Loads the node certificate from `dir` if it is this node's and still
    /// valid at `now`, and the bundle the control plane last sent, else
    /// the configured `bootstrap_bundle`.
    pub fn load(
        dir: &DataDir,
        name: &str,
        bootstrap_bundle: &Path,
        now: i64,
    ) -> Result<Self, IdentityError> {
        let node = stored_node(dir, name, now);
        let bundle_pem = match cache::read_optional(&dir.node_bundle())? {
            Some(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
            _ => read_bundle(bootstrap_bundle)?,
        };

        let material = TlsMaterial {
            node: node.map(Arc::new),
            bundle_pem,
        };
        Ok(Self {
            name: name.to_owned(),
            dir: dir.clone(),
            material: watch::Sender::new(Arc::new(material)),
        })
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The TLS material now.
    pub fn material(&self) -> Arc<TlsMaterial> {
        self.material.borrow().clone()
    }

    /// Follows the TLS material as the certificate renews and the bundle
    /// rotates.
    pub fn watch(&self) -> watch::Receiver<Arc<TlsMaterial>> {
        self.material.subscribe()
    }

    /// Trusts `bundle_pem` for the control plane from now on, and after a
    /// restart.
    pub fn set_bundle(&self, bundle_pem: &str) -> Result<(), IdentityError> {
        if self.material().bundle_pem == bundle_pem {
            return Ok(());
        }
        cache::write_atomic(&self.dir.node_bundle(), bundle_pem.as_bytes(), PUBLIC)?;

        let mut next = (*self.material()).clone();
        next.bundle_pem = bundle_pem.to_owned();
        self.material.send_replace(Arc::new(next));
        tracing::info!(node = %self.name, "control plane trust bundle updated");
        Ok(())
    }

    /// Attests with `token`: learns the trust domain, then trades the token
    /// and a CSR for the node certificate.
    pub async fn attest(
        &self,
        control: &ControlPlane,
        token: &JoinToken,
    ) -> Result<(), IdentityError> {
        let material = self.material();
        let mut client = Client::connect(control, &material).await?;
        let trust_domain = client.trust_domain().await?;
        let spiffe_id = palisade_model::node_spiffe_id(&trust_domain, &self.name);

        let issued = client.attest(token, &spiffe_id).await?;
        tracing::info!(
            spiffe_id,
            serial = %issued.svid.serial,
            not_after = issued.svid.not_after,
            "node attested"
        );
        self.install(issued)
    }

    /// Renews the node certificate with a fresh key.
    pub async fn renew(&self, control: &ControlPlane) -> Result<(), IdentityError> {
        let material = self.material();
        let Some(node) = material.node.clone() else {
            return Err(IdentityError::NotAttested);
        };
        let mut client = Client::connect(control, &material).await?;

        let issued = client.renew_node(&node.spiffe_id).await?;
        tracing::info!(
            spiffe_id = %node.spiffe_id,
            serial = %issued.svid.serial,
            not_after = issued.svid.not_after,
            "node certificate renewed"
        );
        self.install(issued)
    }

    /// Persists an issued certificate and its bundle, then publishes them.
    fn install(&self, issued: Issued) -> Result<(), IdentityError> {
        stored::write(&self.dir.node(), &issued.svid)?;
        let mut next = (*self.material()).clone();
        if !issued.bundle_pem.is_empty() {
            cache::write_atomic(
                &self.dir.node_bundle(),
                issued.bundle_pem.as_bytes(),
                PUBLIC,
            )?;
            next.bundle_pem = issued.bundle_pem;
        }

        next.node = Some(Arc::new(issued.svid));
        self.material.send_replace(Arc::new(next));
        Ok(())
    }
}

/// The persisted node certificate, when it is this node's and still valid.
fn stored_node(dir: &DataDir, name: &str, now: i64) -> Option<Svid> {
    let suffix = format!("/node/{name}");
    match stored::read(&dir.node()) {
        Ok(Some(svid)) if svid.spiffe_id.ends_with(&suffix) && !svid.expired(now) => {
            tracing::info!(spiffe_id = %svid.spiffe_id, not_after = svid.not_after, "node certificate loaded");
            Some(svid)
        }
        Ok(Some(svid)) => {
            tracing::warn!(spiffe_id = %svid.spiffe_id, not_after = svid.not_after, "stored node certificate is expired or another node's; attesting again");
            None
        }
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(%error, "stored node certificate is unreadable; attesting again");
            None
        }
    }
}

fn read_bundle(path: &Path) -> Result<String, IdentityError> {
    let failed = |detail: String| IdentityError::Bundle {
        path: path.to_owned(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(failed("holds no PEM certificate".into()));
    }
    Ok(text)
}

/// Keeps the node certificate until shutdown: attests when there is none
/// (reading the join token only then), renews it at half life, and retries
/// failures with backoff.
pub async fn maintain(
    identity: NodeIdentity,
    control: ControlPlane,
    token_file: Option<PathBuf>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = IDENTITY_RETRY;
    let mut held = identity.material().node.clone().map(Held::stored);
    loop {
        let now = unix_now();
        let result = match node_step(held.as_ref(), now) {
            NodeStep::Attest => attest(&identity, &control, token_file.as_deref()).await,
            NodeStep::RenewAt(at) if at > now => {
                if sleep_unless_stopped(delay_until(at, now), &mut shutdown).await {
                    return;
                }
                continue;
            }
            NodeStep::RenewAt(_) => identity.renew(&control).await,
        };

        let delay = match result {
            Ok(()) => {
                backoff.reset();
                held = identity
                    .material()
                    .node
                    .clone()
                    .map(|n| Held::issued(n, unix_now()));
                continue;
            }
            Err(error) => {
                let retry = backoff.next_delay();
                tracing::warn!(node = %identity.name, %error, retry_in = ?retry, "node certificate not obtained");
                retry
            }
        };
        if sleep_unless_stopped(delay, &mut shutdown).await {
            return;
        }
    }
}

async fn attest(
    identity: &NodeIdentity,
    control: &ControlPlane,
    token_file: Option<&Path>,
) -> Result<(), IdentityError> {
    let path = token_file.ok_or(IdentityError::NoJoinToken)?;
    let token = JoinToken::read(path)?;
    identity.attest(control, &token).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::testing::{ca_pem, svid};

    #[test]
    fn a_stored_certificate_of_this_node_is_loaded_and_another_is_not() {
        let root = tempfile::tempdir().unwrap();
        let dir = DataDir::open(root.path()).unwrap();
        let bundle = root.path().join("ca.pem");
        std::fs::write(&bundle, ca_pem()).unwrap();
        let node = svid("spiffe://example.org/node/web-1", 1_000, 2_000);
        stored::write(&dir.node(), &node).unwrap();

        let loaded = NodeIdentity::load(&dir, "web-1", &bundle, 1_500).unwrap();
        let expired = NodeIdentity::load(&dir, "web-1", &bundle, 2_000).unwrap();
        let other = NodeIdentity::load(&dir, "web-2", &bundle, 1_500).unwrap();

        assert_eq!(loaded.material().node.as_ref().unwrap().serial, node.serial);
        assert!(expired.material().node.is_none());
        assert!(other.material().node.is_none());
        let mode = std::fs::metadata(dir.node().join("key.pem")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
    }

    #[test]
    fn a_node_pair_broken_on_disk_gives_way_to_the_previous_one_rather_than_attesting() {
        let root = tempfile::tempdir().unwrap();
        let dir = DataDir::open(root.path()).unwrap();
        let bundle = root.path().join("ca.pem");
        std::fs::write(&bundle, ca_pem()).unwrap();
        let spiffe_id = "spiffe://example.org/node/web-1";
        let (before, renewed) = (svid(spiffe_id, 1_000, 3_000), svid(spiffe_id, 1_500, 3_000));
        stored::write(&dir.node(), &before).unwrap();
        stored::write(&dir.node(), &renewed).unwrap();

        // The renewed key is lost: another key stands beside its certificate.
        let stray = svid(spiffe_id, 1_500, 3_000).key_pem;
        let key = dir.node().join("current/key.pem");
        cache::write_atomic(&key, stray.expose().as_bytes(), cache::PRIVATE).unwrap();
        let loaded = NodeIdentity::load(&dir, "web-1", &bundle, 2_000).unwrap();

        let node = loaded.material().node.clone().expect("a node certificate");
        assert_eq!(node.serial, before.serial);
        assert_eq!(
            node_step(Some(&Held::stored(node)), 2_000),
            NodeStep::RenewAt(2_000)
        );
    }

    #[test]
    fn a_received_bundle_replaces_the_bootstrap_one_across_restarts() {
        let root = tempfile::tempdir().unwrap();
        let dir = DataDir::open(root.path()).unwrap();
        let bootstrap = root.path().join("ca.pem");
        std::fs::write(&bootstrap, ca_pem()).unwrap();
        let identity = NodeIdentity::load(&dir, "web-1", &bootstrap, 0).unwrap();
        let mut watch = identity.watch();
        let rotated = format!("{}{}", ca_pem(), ca_pem());

        identity.set_bundle(&rotated).unwrap();

        assert!(watch.has_changed().unwrap());
        assert_eq!(watch.borrow_and_update().bundle_pem, rotated);
        std::fs::remove_file(&bootstrap).unwrap();
        let restarted = NodeIdentity::load(&dir, "web-1", &bootstrap, 0).unwrap();
        assert_eq!(restarted.material().bundle_pem, rotated);
    }

    #[test]
    fn join_tokens_are_trimmed_and_never_printed() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("token");
        std::fs::write(&path, "abc.secret\n").unwrap();

        let token = JoinToken::read(&path).unwrap();

        assert_eq!(token.expose(), "abc.secret");
        assert_eq!(format!("{token:?}"), "JoinToken(<redacted>)");
        std::fs::write(&path, "  \n").unwrap();
        assert!(
            JoinToken::read(&path)
                .unwrap_err()
                .to_string()
                .ends_with("empty")
        );
    }
}

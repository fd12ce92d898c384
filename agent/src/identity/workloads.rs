//! A certificate for every workload of the applied configuration: made
//! when the workload appears, renewed at half life, dropped when it goes
//! away or expires, persisted in the data directory, and published in
//! [`Certificates`] with the bundle its peers must chain to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::client::Client;
use super::renewal::{Held, delay_until, next_due, plan};
use super::svid::{Certificates, Svid, WorkloadCertificates};
use super::{IdentityError, stored, unix_now};
use crate::cache::DataDir;
use crate::control::backoff::{IDENTITY_RETRY, stopped};
use crate::control::{ControlPlane, TlsMaterial};
use crate::state::{Snapshot, State};

/// How long the loop sleeps when nothing is due.
const IDLE: Duration = Duration::from_secs(3600);

/// What keeping the workload certificates needs.
#[derive(Clone, Debug)]
pub struct Workloads {
    /// The configuration whose workloads need certificates.
    pub state: State,
    /// Where SignWorkload is called.
    pub control: ControlPlane,
    /// Where the certificates are published.
    pub certificates: Certificates,
    /// Where they are persisted.
    pub dir: DataDir,
}

/// The workloads of `snapshot`: `<namespace>/<name>` to SPIFFE ID.
fn desired(snapshot: Option<&Snapshot>) -> BTreeMap<String, String> {
    snapshot
        .into_iter()
        .flat_map(|s| s.workloads.iter())
        .map(|(key, workload)| (key.clone(), workload.spiffe_id.clone()))
        .collect()
}

/// The CAs that workloads' peers must chain to: the applied trust bundle,
/// else the one the control plane sent with the node certificate.
pub fn bundle_pem(snapshot: Option<&Snapshot>, material: &TlsMaterial) -> String {
    snapshot
        .and_then(|s| s.bundle.as_ref())
        .map_or_else(|| material.bundle_pem.clone(), |b| b.x509_pem.clone())
}

/// The certificates persisted for the workloads of `snapshot` that still
/// carry the workload's identity and are valid at `now`.
pub fn load_cached(dir: &DataDir, snapshot: &Snapshot, now: i64) -> BTreeMap<String, Arc<Svid>> {
    let wanted = desired(Some(snapshot));
    let mut held = BTreeMap::new();
    for (key, spiffe_id) in &wanted {
        match stored::read(&dir.workload(key)) {
            Ok(Some(svid)) if &svid.spiffe_id == spiffe_id && !svid.expired(now) => {
                held.insert(key.clone(), Arc::new(svid));
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(workload = %key, %error, "stored workload certificate is unreadable")
            }
        }
    }
    held
}

/// Keeps the workload certificates until shutdown, starting from those
/// already published (read back from disk).
pub async fn maintain(workloads: Workloads, mut shutdown: watch::Receiver<bool>) {
    let mut state = workloads.state.watch();
    let mut material = workloads.control.watch_material();
    let mut reached = workloads.control.watch_reached();
    let mut backoff = IDENTITY_RETRY;
    let mut held: BTreeMap<String, Held> = workloads
        .certificates
        .current()
        .by_workload
        .iter()
        .map(|(key, svid)| (key.clone(), Held::stored(svid.clone())))
        .collect();
    loop {
        let complete = workloads.round(&mut held, unix_now()).await;
        let retry = match complete {
            true => {
                backoff.reset();
                None
            }
            false => Some(backoff.next_delay()),
        };
        let now = unix_now();
        let due = next_due(&held, now).map(|at| delay_until(at, now));
        let delay = [retry, due].into_iter().flatten().min().unwrap_or(IDLE);

        // A failed round is retried at once when another task reaches the
        // control plane, rather than at the end of a long backoff.
        reached.mark_unchanged();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            changed = state.changed() => if changed.is_err() { return },
            changed = material.changed() => if changed.is_err() { return },
            changed = reached.changed(), if retry.is_some() => {
                if changed.is_err() {
                    return;
                }
                backoff.reset();
            }
            () = stopped(&mut shutdown) => return,
        }
    }
}

impl Workloads {
    /// Brings `held` in line with the applied configuration at `now`, and
    /// publishes it; false when some certificates could not be obtained.
    async fn round(&self, held: &mut BTreeMap<String, Held>, now: i64) -> bool {
        let snapshot = self.state.current();
        let wanted = desired(snapshot.as_deref());
        let plan = plan(&wanted, held, now);

        for key in &plan.drop {
            held.remove(key);
            self.forget(key, wanted.contains_key(key));
        }
        let complete = plan.sign.is_empty() || self.sign_all(&plan.sign, &wanted, held).await;

        let material = self.control.material();
        let bundle_pem = bundle_pem(snapshot.as_deref(), &material);
        self.publish(held, bundle_pem);
        complete
    }

    /// Gets a certificate for each of `keys`; false when any failed.
    async fn sign_all(
        &self,
        keys: &[String],
        wanted: &BTreeMap<String, String>,
        held: &mut BTreeMap<String, Held>,
    ) -> bool {
        let material = self.control.material();
        if material.node.is_none() {
            tracing::debug!("waiting for the node certificate to sign workloads");
            return false;
        }
        let mut client = match Client::connect(&self.control, &material).await {
            Ok(client) => client,
            Err(error) => {
                tracing::warn!(%error, "workload certificates not renewed");
                return false;
            }
        };

        let mut complete = true;
        for key in keys {
            match self.sign(&mut client, key, &wanted[key]).await {
                Ok(svid) => {
                    held.insert(key.clone(), Held::issued(Arc::new(svid), unix_now()));
                }
                Err(error) => {
                    tracing::warn!(workload = %key, %error, "workload certificate not obtained");
                    complete = false;
                }
            }
        }
        complete
    }

    async fn sign(
        &self,
        client: &mut Client,
        key: &str,
        spiffe_id: &str,
    ) -> Result<Svid, IdentityError> {
        let (namespace, name) = key.split_once('/').unwrap_or(("", key));
        let issued = client.sign_workload(namespace, name, spiffe_id).await?;

        let svid = stored::write_off_thread(self.dir.workload(key), issued.svid).await?;
        tracing::info!(
            workload = %key,
            spiffe_id,
            serial = %svid.serial,
            not_after = svid.not_after,
            "workload certificate issued"
        );
        Ok(svid)
    }

    /// Stops presenting `key`'s certificate; removes its files when the
    /// workload itself is gone.
    fn forget(&self, key: &str, still_wanted: bool) {
        tracing::info!(workload = %key, "workload certificate dropped");
        if still_wanted {
            return;
        }
        if let Err(error) = stored::remove(&self.dir.workload(key)) {
            tracing::warn!(workload = %key, %error, "workload key not removed");
        }
    }

    /// Publishes `held` with `bundle_pem`, unless nothing changed.
    fn publish(&self, held: &BTreeMap<String, Held>, bundle_pem: String) {
        let current = self.certificates.current();
        let same_certificates = current.by_workload.len() == held.len()
            && held.iter().all(|(key, held)| {
                current.by_workload.get(key).map(|s| &s.serial) == Some(&held.svid.serial)
            });
        if same_certificates && current.bundle_pem == bundle_pem {
            return;
        }

        let by_workload = held
            .iter()
            .map(|(key, held)| (key.clone(), held.svid.clone()))
            .collect();
        self.certificates.publish(WorkloadCertificates {
            by_workload,
            bundle_pem,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::testing::svid;
    use palisade_proto::xds as pb;

    const ORDERS: &str = "spiffe://example.org/ns/shop/sa/orders";

    fn snapshot_with_orders() -> Snapshot {
        let mut snapshot = Snapshot::default();
        let workload = pb::Workload {
            namespace: "shop".into(),
            name: "orders-1".into(),
            spiffe_id: ORDERS.into(),
            ..Default::default()
        };
        snapshot.workloads.insert("shop/orders-1".into(), workload);
        snapshot
    }

    #[test]
    fn cached_certificates_are_used_until_they_expire() {
        let root = tempfile::tempdir().unwrap();
        let dir = DataDir::open(root.path()).unwrap();
        let certificate = svid(ORDERS, 1_000, 2_000);
        stored::write(&dir.workload("shop/orders-1"), &certificate).unwrap();
        stored::write(&dir.workload("shop/gone-1"), &certificate).unwrap();
        let snapshot = snapshot_with_orders();

        let fresh = load_cached(&dir, &snapshot, 1_999);
        let expired = load_cached(&dir, &snapshot, 2_000);

        assert_eq!(fresh.keys().collect::<Vec<_>>(), ["shop/orders-1"]);
        assert_eq!(fresh["shop/orders-1"].serial, certificate.serial);
        assert!(expired.is_empty());
    }

    #[test]
    fn the_bundle_is_the_applied_one_else_the_control_planes() {
        let material = TlsMaterial {
            node: None,
            bundle_pem: "from attestation".into(),
        };
        let mut snapshot = snapshot_with_orders();

        assert_eq!(bundle_pem(Some(&snapshot), &material), "from attestation");
        snapshot.bundle = Some(pb::TrustBundle {
            x509_pem: "from xds".into(),
            ..Default::default()
        });
        assert_eq!(bundle_pem(Some(&snapshot), &material), "from xds");
        assert_eq!(bundle_pem(None, &material), "from attestation");
    }
}

//! Certificate files for proxyless gRPC, whose file-watcher certificate
//! provider reads a certificate, a key and a trust bundle from disk. For
//! every local workload with an SVID, the agent keeps
//!
//! ```text
//! <cert_dir>/<namespace>/<workload>/
//!     svid.pem      -> current/svid.pem       the chain, leaf first (0644)
//!     svid-key.pem  -> current/svid-key.pem   the key (0600, or 0640)
//!     bundle.pem    -> current/bundle.pem     the CA certificates (0644)
//!     current       -> .v<version>            swapped in one rename
//!     .v<version>/                            the three files of one version
//! ```
//!
//! A renewal or a new bundle writes a new version directory (each file
//! written to a temporary name, synced, renamed; then the directory
//! synced), then replaces the `current` link with one `rename`: every path
//! a reader opens resolves through one version, so it never pairs a key
//! with another version's certificate unless it reads the two files on
//! either side of the swap. gRPC's file watcher re-reads both when either
//! changed meanwhile, or fails to pair them and keeps what it had until its
//! next refresh. The bootstrap's paths (`palisadectl bootstrap grpc`) are
//! the top-level names, so they go through `current` without knowing of
//! it. The version before stays on disk, for a reader that resolved the
//! old link just before the swap; older ones are removed.
//!
//! Ownership: when the workload has a `unix_uid` selector, its directory and
//! files belong to that user; with a `unix_gid` selector the directory gets
//! that group and mode 0750, and the key is 0640 when there is no uid to
//! own it. Without selectors, or when the agent may not change owners (it
//! does not run as root), everything stays the agent's, with the workload
//! directory at 0700 and the key at 0600. What the selectors leave out is
//! the agent's own: with only `unix_gid` the files belong to the agent's
//! user, and without selectors the agent takes the directory back, so a
//! user that an earlier configuration named keeps no hold on it. Modes are
//! widened only once the owner change succeeded.
//!
//! A workload's directory is removed once an applied configuration no
//! longer holds the workload; with no configuration, nothing is removed.
//! Files stay when the agent stops, so that applications keep working
//! across a restart.

mod layout;
mod plan;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::cache::CacheError;
use crate::identity::svid::{Certificates, WorkloadCertificates};
use crate::state::{Snapshot, State};

pub use layout::{BUNDLE_FILE, CURRENT_LINK, KEY_FILE, SVID_FILE};

/// How long after a failed write the agent tries again.
const RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// Why certificate files could not be written or removed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A file, link or directory could not be made, read or removed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file could not be replaced.
    #[error(transparent)]
    Write(#[from] CacheError),
}

/// The certificate directory and which version of each workload's files
/// it holds.
#[derive(Debug)]
pub struct CertificateFiles {
    root: PathBuf,
    /// Workload key (`<namespace>/<name>`) to the version on disk.
    written: BTreeMap<String, String>,
}

impl CertificateFiles {
    /// Opens the directory at `root`, making it when missing, and learns
    /// which workloads' files an earlier run left there.
    pub fn open(root: &Path) -> Result<Self, FilesError> {
        layout::make_root(root)?;
        let written = layout::scan(root)?;
        Ok(Self {
            root: root.to_owned(),
            written,
        })
    }

    /// The workloads whose files are on disk, with their versions.
    pub fn written(&self) -> &BTreeMap<String, String> {
        &self.written
    }

    /// The directory of a workload's files.
    pub fn workload_dir(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Writes what differs from `certificates` and removes the workloads
    /// that `snapshot` no longer holds; returns how many operations failed.
    pub fn sync(
        &mut self,
        certificates: &WorkloadCertificates,
        snapshot: Option<&Snapshot>,
    ) -> usize {
        let desired = plan::desired(certificates, snapshot);
        let mut failed = 0;

        for (key, contents) in &desired {
            if self.written.get(key) == Some(&contents.version) {
                continue;
            }
            match layout::write(&self.workload_dir(key), contents) {
                Ok(()) => {
                    let version = &contents.version;
                    tracing::info!(workload = %key, %version, "certificate files written");
                    self.written.insert(key.clone(), contents.version.clone());
                }
                Err(error) => {
                    tracing::warn!(workload = %key, %error, "certificate files not written");
                    failed += 1;
                }
            }
        }

        if let Some(snapshot) = snapshot {
            failed += self.remove_gone(&desired, snapshot);
        }
        failed
    }

    /// Removes the files of workloads neither certified nor configured.
    fn remove_gone(
        &mut self,
        desired: &BTreeMap<String, plan::Contents>,
        snapshot: &Snapshot,
    ) -> usize {
        let gone: Vec<String> = self
            .written
            .keys()
            .filter(|key| !desired.contains_key(*key) && !snapshot.workloads.contains_key(*key))
            .cloned()
            .collect();
        let mut failed = 0;

        for key in gone {
            match layout::remove(&self.root, &key) {
                Ok(()) => {
                    tracing::info!(workload = %key, "certificate files removed");
                    self.written.remove(&key);
                }
                Err(error) => {
                    tracing::warn!(workload = %key, %error, "certificate files not removed");
                    failed += 1;
                }
            }
        }
        failed
    }
}

/// Keeps the files in step with the certificates and the configuration
/// until `shutdown` turns true; failed writes are retried after
/// [`RETRY_INTERVAL`].
pub async fn maintain(
    mut files: CertificateFiles,
    state: State,
    certificates: Certificates,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut configuration = state.watch();
    let mut renewals = certificates.watch();
    loop {
        // Write what holds now, off the async threads: fsync can be slow.
        let now: Arc<WorkloadCertificates> = renewals.borrow_and_update().clone();
        let snapshot = configuration.borrow_and_update().clone();
        let synced = tokio::task::spawn_blocking(move || {
            let failed = files.sync(&now, snapshot.as_deref());
            (files, failed)
        });
        let failed;
        (files, failed) = match synced.await {
            Ok(synced) => synced,
            Err(error) => {
                tracing::error!(%error, "certificate file writer failed; files no longer change");
                return;
            }
        };

        // Until something changes, or it is time to retry.
        tokio::select! {
            changed = renewals.changed() => if changed.is_err() { return },
            changed = configuration.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|stop| *stop) => return,
            () = retry(failed) => {}
        }
    }
}

/// Resolves after [`RETRY_INTERVAL`] when something failed, else never.
async fn retry(failed: usize) {
    if failed == 0 {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(RETRY_INTERVAL).await;
}

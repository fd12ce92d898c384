//! Turning responses into enforced configuration: each response updates a
//! pending copy of the held resources, which must decode and check into a
//! snapshot whole; then the snapshot is applied at once, persisted as the
//! last known good, the trust bundle handed to the control-plane channel,
//! and the status file rewritten. The caller acknowledges or rejects each
//! response as the [`Answer`]s say.
//!
//! Files are written and synced on the blocking pool, so that the data
//! path, which may share the agent's one thread, goes on meanwhile.

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryResponse;

use super::{Rejection, Resources, snapshot};
use crate::cache::{DataDir, LastKnownGood, Source, Status};
use crate::identity::NodeIdentity;
use crate::state::{Snapshot, State};
use crate::status::StatusFile;

/// What to tell the control plane about one response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The response's type.
    pub type_url: String,
    /// The response's nonce.
    pub nonce: String,
    /// `None` acknowledges; a reason rejects.
    pub rejection: Option<String>,
}

/// Applies responses to the agent's state.
#[derive(Debug)]
pub struct Applier {
    state: State,
    held: Resources,
    dir: DataDir,
    node: NodeIdentity,
    status: Status,
    status_file: StatusFile,
}

impl Applier {
    /// An applier whose `held` resources are those `state` enforces now
    /// (the last known good, or nothing), as `status_file` says.
    pub fn new(
        state: State,
        held: Resources,
        dir: DataDir,
        node: NodeIdentity,
        status_file: StatusFile,
    ) -> Self {
        Self {
            state,
            held,
            dir,
            node,
            status: status_file.current(),
            status_file,
        }
    }

    /// The resources enforced now.
    pub fn held(&self) -> &Resources {
        &self.held
    }

    /// The status as last written.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Applies `responses` as one change, each on top of those before it,
    /// leaving out those that fail; `address` is where they came from and
    /// `now` the time in Unix seconds.
    pub async fn apply(
        &mut self,
        responses: &[DeltaDiscoveryResponse],
        address: &str,
        now: i64,
    ) -> Vec<Answer> {
        let mut pending = self.held.clone();
        let mut accepted = None;
        let mut answers = Vec::with_capacity(responses.len());
        for response in responses {
            let rejection = match next(&pending, response) {
                Ok((resources, snapshot)) => {
                    pending = resources;
                    accepted = Some(snapshot);
                    None
                }
                Err(rejection) => Some(self.reject(response, rejection)),
            };
            answers.push(Answer {
                type_url: response.type_url.clone(),
                nonce: response.nonce.clone(),
                rejection,
            });
        }

        if let Some(snapshot) = accepted {
            if pending != self.held || self.state.current().is_none() {
                let saved = self.enforce(pending, snapshot, now);
                persist(&self.dir, saved).await;
            }
            self.status.source = Source::ControlPlane;
            self.status.connected_to = Some(address.to_owned());
        }
        self.write_status().await;
        answers
    }

    /// Records that no stream is open.
    pub async fn disconnected(&mut self) {
        if self.status.connected_to.take().is_some() {
            self.write_status().await;
        }
    }

    fn reject(&mut self, response: &DeltaDiscoveryResponse, rejection: Rejection) -> String {
        let reason = rejection.to_string();
        tracing::warn!(
            type_url = %response.type_url,
            nonce = %response.nonce,
            reason,
            "xDS response rejected; keeping the previous configuration"
        );
        self.status.last_rejection = Some(reason.clone());
        reason
    }

    /// Applies `snapshot` of `resources`; returns what is to be persisted.
    fn enforce(&mut self, resources: Resources, snapshot: Snapshot, now: i64) -> LastKnownGood {
        let revision = snapshot.revision;
        let bundle = snapshot.bundle.as_ref().map(|b| b.x509_pem.clone());
        let counts = resources.counts();
        self.state.apply(snapshot);
        tracing::info!(revision, resources = ?counts, "configuration applied");

        let saved = LastKnownGood::new(resources.clone(), revision, now);
        if let Some(pem) = bundle
            && let Err(error) = self.node.set_bundle(&pem)
        {
            tracing::warn!(%error, "control plane trust bundle not updated");
        }

        self.held = resources;
        self.status.revision = revision;
        self.status.applied_at_unix = now;
        self.status.resources = counts;
        saved
    }

    async fn write_status(&self) {
        self.status_file.save_off_thread(self.status.clone()).await;
    }
}

/// Saves `saved` as the last known good in `dir`, on the blocking pool.
async fn persist(dir: &DataDir, saved: LastKnownGood) {
    let dir = dir.clone();
    let written = tokio::task::spawn_blocking(move || saved.save(&dir)).await;
    let error = match written {
        Ok(Ok(())) => return,
        Ok(Err(error)) => error.to_string(),
        Err(error) => error.to_string(),
    };
    tracing::error!(%error, "last known good not saved; a restart would lose this configuration");
}

/// `held` with `response` applied, and its snapshot, or why not.
fn next(
    held: &Resources,
    response: &DeltaDiscoveryResponse,
) -> Result<(Resources, Snapshot), Rejection> {
    let mut resources = held.clone();
    resources.apply_delta(response)?;
    let snapshot = snapshot::build(&resources)?;
    Ok((resources, snapshot))
}

#[cfg(test)]
mod tests;

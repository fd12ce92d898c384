//! The ADS client: one delta stream at a time to the control plane,
//! authenticated by the node certificate, subscribed to every agent type.
//!
//! Each response is applied to a pending copy of the held [`Resources`],
//! decoded and checked into a [`Snapshot`](crate::state::Snapshot) whole,
//! applied, persisted as the last known good, and only then acknowledged;
//! a response that fails is rejected with a reason naming the resource and
//! the field, and the previous configuration stays. A lost stream is
//! reopened with backoff, moving on to the next control-plane address, and
//! resumes from the versions held so that nothing unchanged is resent.

use tokio::sync::watch;

use crate::control::ControlPlane;
use crate::control::backoff::{RECONNECT, sleep_unless_stopped, stopped};
use crate::state::types;

pub mod applier;
pub mod resources;
pub mod snapshot;
pub mod stream;
#[cfg(test)]
mod testing;
mod validate;

pub use applier::{Answer, Applier};
pub use resources::{RawResource, Resources};
use stream::EndReason;

/// Why a response cannot be applied; the text is the NACK's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The response is of a type the agent never asked for.
    #[error("type {0}: not a type this agent subscribes to")]
    UnknownType(String),
    /// A resource as a whole is unusable: no name, no body, another type,
    /// bytes that do not decode.
    #[error("{kind} {name}: {problem}")]
    Resource {
        kind: &'static str,
        name: String,
        problem: String,
    },
    /// One field of a resource breaks a rule.
    #[error("{kind} {name}: {field}: {problem}")]
    Field {
        kind: &'static str,
        name: String,
        field: String,
        problem: String,
    },
}

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    /// No connection to the control plane.
    #[error(transparent)]
    Connect(#[from] crate::control::ControlError),
    /// The stream was refused or broke, with the gRPC status.
    #[error("the stream failed: {0}")]
    Stream(String),
    /// The control plane ended the stream.
    #[error("the control plane closed the stream")]
    Closed,
    /// The rest of a group of responses did not come in time.
    #[error("the rest of revision {revision}'s responses did not arrive within {waited:?}")]
    GroupIncomplete {
        revision: String,
        waited: std::time::Duration,
    },
}

/// The short name of an agent type, such as `Workload`.
pub fn kind_of(type_url: &str) -> &'static str {
    types::ALL
        .iter()
        .find(|known| **known == type_url)
        .and_then(|known| known.rsplit('.').next())
        .unwrap_or("resource")
}

/// What the xDS client works with.
#[derive(Debug)]
pub struct Client {
    /// The node's name, sent as `node.id`.
    pub node: String,
    /// Where the stream goes.
    pub control: ControlPlane,
    /// What it applies responses with.
    pub applier: Applier,
}

/// Follows the control plane until shutdown.
pub async fn run(mut client: Client, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = RECONNECT;
    let mut index = 0;
    loop {
        if !node_certificate(&client.control, &mut shutdown).await {
            return;
        }
        let material = client.control.material();
        let ended = stream::run(&mut client, index, &material, &mut shutdown).await;
        client.applier.disconnected().await;
        if ended.synced {
            backoff.reset();
        }

        let error = match ended.reason {
            EndReason::Shutdown => return,
            EndReason::MaterialChanged => {
                tracing::info!("control plane TLS material changed; reconnecting");
                continue;
            }
            EndReason::Failed(error) => error,
        };
        let address = &client.control.addresses()[index % client.control.addresses().len()];
        let delay = backoff.next_delay();
        tracing::warn!(%address, %error, retry_in = ?delay, "no xDS stream; reconnecting");
        index = (index + 1) % client.control.addresses().len();
        if sleep_unless_stopped(delay, &mut shutdown).await {
            return;
        }
    }
}

/// Waits until the node has a certificate to authenticate streams with;
/// false on shutdown.
async fn node_certificate(control: &ControlPlane, shutdown: &mut watch::Receiver<bool>) -> bool {
    let mut material = control.watch_material();
    if control.material().node.is_some() {
        return true;
    }
    tracing::info!("waiting for the node certificate before opening the xDS stream");
    tokio::select! {
        found = async { material.wait_for(|m| m.node.is_some()).await.is_ok() } => found,
        () = stopped(shutdown) => false,
    }
}

//! What one SDS stream follows: the certificates, and the configuration
//! that binds its caller to a workload. When the configuration changes, the
//! caller is identified again; a stream whose caller no longer selects the
//! same workload is ended.

use std::sync::Arc;

use tokio::sync::watch;
use tonic::Status;

use super::caller::Caller;
use super::secrets::{self, Names, Packed};
use crate::identity::svid::WorkloadCertificates;
use crate::state::Applied;

/// Why a stream stops following.
#[derive(Debug)]
pub enum End {
    /// The agent is shutting down.
    Shutdown,
    /// The caller lost its workload, with the status to end the stream.
    Refused(Status),
}

impl End {
    /// The status the stream ends with.
    pub fn status(self) -> Status {
        match self {
            End::Shutdown => Status::unavailable("the agent is shutting down"),
            End::Refused(status) => status,
        }
    }
}

/// The caller, its workload, and what may change under them.
#[derive(Debug)]
pub struct Feed {
    pub caller: Caller,
    pub workload: String,
    pub state: watch::Receiver<Applied>,
    pub certificates: watch::Receiver<Arc<WorkloadCertificates>>,
    pub shutdown: watch::Receiver<bool>,
}

impl Feed {
    /// The workload's secrets that `names` asks for, as they are now.
    pub fn secrets(&self, names: &Names) -> Vec<Packed> {
        secrets::of_workload(&self.workload, &self.certificates.borrow(), names)
    }

    /// Waits until the certificates or the configuration changed; the
    /// secrets may then differ.
    pub async fn changed(&mut self) -> Result<(), End> {
        let configuration = tokio::select! {
            changed = self.certificates.changed() => changed.map(|()| false),
            changed = self.state.changed() => changed.map(|()| true),
            _ = self.shutdown.wait_for(|stop| *stop) => return Err(End::Shutdown),
        };

        match configuration {
            Ok(true) => self.still_bound(),
            Ok(false) => Ok(()),
            Err(_) => Err(End::Shutdown),
        }
    }

    /// Whether the caller still selects the stream's workload.
    fn still_bound(&self) -> Result<(), End> {
        let now = self.caller.workload(self.state.borrow().as_deref());
        match now {
            Ok(workload) if workload == self.workload => Ok(()),
            Ok(other) => Err(End::Refused(Status::permission_denied(format!(
                "the caller now selects workload {other}, not {}; reconnect",
                self.workload
            )))),
            Err(error) => Err(End::Refused(Status::permission_denied(error.to_string()))),
        }
    }
}

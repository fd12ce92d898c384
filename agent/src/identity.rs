//! The agent's identities: its node certificate, which authenticates it to
//! the control plane, and its workloads' X.509-SVIDs, which the data path
//! presents. Every key is made on this host and never leaves it; only CSRs
//! travel. Certificates are renewed at half life.
//!
//! [`node`] attests and renews the node certificate, [`workloads`] keeps a
//! certificate for every workload of the applied configuration,
//! [`renewal`] decides when, [`client`] makes the identity API calls, and
//! [`svid`] holds the certificates that others read.

use std::path::PathBuf;

pub mod client;
pub mod keys;
pub mod node;
pub mod renewal;
mod stored;
pub mod svid;
#[cfg(test)]
pub(crate) mod testing;
pub mod workloads;

pub use node::NodeIdentity;

use crate::cache::CacheError;
use crate::control::ControlError;
use svid::SvidError;

/// Why an identity could not be obtained, kept or stored.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("making a key: {0}")]
    Key(String),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{path}: {source}")]
    Stored { path: PathBuf, source: SvidError },
    #[error("the control plane is unreachable: {0}")]
    Unreachable(#[from] ControlError),
    #[error("{call} was refused: {status}")]
    Refused {
        call: &'static str,
        code: tonic::Code,
        status: String,
    },
    #[error("{call} timed out")]
    Timeout { call: &'static str },
    #[error("{call} returned an unusable certificate: {source}")]
    BadCertificate {
        call: &'static str,
        source: SvidError,
    },
    #[error("{call} returned a certificate for {got}, not {expected}")]
    WrongIdentity {
        call: &'static str,
        got: String,
        expected: String,
    },
    #[error("no node certificate, and no join token file to attest with")]
    NoJoinToken,
    #[error("the node has not attested yet")]
    NotAttested,
    #[error("join token file {path}: {detail}")]
    JoinToken { path: PathBuf, detail: String },
    #[error("the trust bundle {path}: {detail}")]
    Bundle { path: PathBuf, detail: String },
    #[error("{path}: the writer stopped: {detail}")]
    Writer { path: PathBuf, detail: String },
}

/// The time now, in Unix seconds.
pub fn unix_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

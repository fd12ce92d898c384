//! Who is calling: the process at the other end of an SDS connection, as
//! the kernel reported it when it connected, and the one local workload
//! whose selectors pick it.
//!
//! A selector that is set must equal the caller's: `unix_uid` its
//! effective uid, `unix_gid` its effective gid (supplementary groups do not
//! count), `process_path` the target of `/proc/<pid>/exe`. A workload with
//! no selector at all picks nobody, so that a workload its operator did not
//! describe cannot be claimed by any process on the host.

use std::fmt;
use std::path::{Path, PathBuf};

use palisade_proto::xds as pb;
use tonic::transport::server::UdsConnectInfo;

use crate::state::Snapshot;

/// Why a caller gets nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    /// The connection carries no peer credentials.
    #[error("the caller's process credentials are unknown")]
    NoCredentials,
    /// No configuration has been applied, so no workload is known.
    #[error("the agent has no configuration yet, so no workload is known")]
    NoConfiguration,
    /// No local workload selects the caller.
    #[error("no local workload selects the caller ({caller})")]
    NoWorkload { caller: String },
    /// Several local workloads select the caller, so none is chosen.
    #[error("several local workloads select the caller ({caller}): {}", workloads.join(", "))]
    Ambiguous {
        caller: String,
        workloads: Vec<String>,
    },
}

/// The process at the other end of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Its effective user ID.
    pub uid: u32,
    /// Its effective group ID.
    pub gid: u32,
    /// Its process ID, when the kernel gave one in the agent's namespace.
    pub pid: Option<i32>,
    /// Its executable; `None` when `/proc/<pid>/exe` cannot be read.
    pub executable: Option<PathBuf>,
}

impl Caller {
    /// The caller of a connection accepted on the SDS socket.
    pub fn from_connection(info: Option<&UdsConnectInfo>) -> Result<Self, CallerError> {
        let credentials = info
            .and_then(|info| info.peer_cred)
            .ok_or(CallerError::NoCredentials)?;
        let pid = credentials.pid().filter(|pid| *pid > 0);

        Ok(Self {
            uid: credentials.uid(),
            gid: credentials.gid(),
            pid,
            executable: pid.and_then(executable),
        })
    }

    /// The key (`<namespace>/<name>`) of the one workload of `snapshot`
    /// that selects this caller.
    pub fn workload(&self, snapshot: Option<&Snapshot>) -> Result<String, CallerError> {
        let snapshot = snapshot.ok_or(CallerError::NoConfiguration)?;
        let mut matching: Vec<String> = snapshot
            .workloads
            .iter()
            .filter(|(_, workload)| self.selected_by(workload.selectors.as_ref()))
            .map(|(key, _)| key.clone())
            .collect();

        match matching.len() {
            1 => Ok(matching.remove(0)),
            0 => Err(CallerError::NoWorkload {
                caller: self.to_string(),
            }),
            _ => Err(CallerError::Ambiguous {
                caller: self.to_string(),
                workloads: matching,
            }),
        }
    }

    /// Whether `selectors` pick this caller: at least one is set, and every
    /// one that is set matches.
    pub fn selected_by(&self, selectors: Option<&pb::Selectors>) -> bool {
        let Some(selectors) = selectors else {
            return false;
        };
        let path = selectors.process_path.as_str();
        if selectors.unix_uid.is_none() && selectors.unix_gid.is_none() && path.is_empty() {
            return false;
        }

        selectors.unix_uid.is_none_or(|uid| uid == self.uid)
            && selectors.unix_gid.is_none_or(|gid| gid == self.gid)
            && (path.is_empty() || self.executable.as_deref() == Some(Path::new(path)))
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "uid {}, gid {}", self.uid, self.gid)?;
        if let Some(pid) = self.pid {
            write!(f, ", pid {pid}")?;
        }
        match &self.executable {
            Some(path) => write!(f, ", executable {}", path.display()),
            None => f.write_str(", executable unknown"),
        }
    }
}

/// What `/proc/<pid>/exe` points to; unreadable without the right to trace
/// the process (the agent runs as root, or as the caller's user).
fn executable(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            uid: 1000,
            gid: 2000,
            pid: Some(42),
            executable: Some("/usr/bin/envoy".into()),
        }
    }

    fn selectors(uid: Option<u32>, gid: Option<u32>, path: &str) -> pb::Selectors {
        pb::Selectors {
            unix_uid: uid,
            unix_gid: gid,
            process_path: path.into(),
        }
    }

    fn snapshot(workloads: &[(&str, pb::Selectors)]) -> Snapshot {
        let workloads = workloads.iter().map(|(key, selectors)| {
            let (namespace, name) = key.split_once('/').unwrap();
            let workload = pb::Workload {
                namespace: namespace.into(),
                name: name.into(),
                selectors: Some(selectors.clone()),
                ..Default::default()
            };
            ((*key).to_owned(), workload)
        });
        Snapshot {
            workloads: workloads.collect(),
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_matching_uid_selects_the_caller() {
        assert!(caller().selected_by(Some(&selectors(Some(1000), None, ""))));
        assert!(!caller().selected_by(Some(&selectors(Some(1001), None, ""))));
    }

    #[test]
    fn a_matching_gid_selects_the_caller() {
        assert!(caller().selected_by(Some(&selectors(None, Some(2000), ""))));
        assert!(!caller().selected_by(Some(&selectors(Some(1000), Some(2001), ""))));
    }

    #[test]
    fn the_process_path_must_be_the_callers_executable() {
        let unknown = Caller {
            executable: None,
            ..caller()
        };

        assert!(caller().selected_by(Some(&selectors(None, None, "/usr/bin/envoy"))));
        assert!(!caller().selected_by(Some(&selectors(None, None, "/usr/bin/other"))));
        assert!(!unknown.selected_by(Some(&selectors(None, None, "/usr/bin/envoy"))));
    }

    #[test]
    fn a_workload_without_selectors_selects_nobody() {
        assert!(!caller().selected_by(Some(&selectors(None, None, ""))));
        assert!(!caller().selected_by(None));
    }

    #[test]
    fn exactly_one_matching_workload_is_the_callers() {
        let snapshot = snapshot(&[
            ("shop/orders-1", selectors(Some(1000), None, "")),
            ("shop/billing-1", selectors(Some(1001), None, "")),
        ]);

        assert_eq!(caller().workload(Some(&snapshot)).unwrap(), "shop/orders-1");
    }

    #[test]
    fn no_matching_workload_is_refused() {
        let snapshot = snapshot(&[("shop/billing-1", selectors(Some(1001), None, ""))]);

        let error = caller().workload(Some(&snapshot)).unwrap_err();

        assert!(matches!(error, CallerError::NoWorkload { .. }));
        assert!(error.to_string().contains("uid 1000, gid 2000, pid 42"));
        assert_eq!(caller().workload(None), Err(CallerError::NoConfiguration));
    }

    #[test]
    fn several_matching_workloads_are_refused() {
        let snapshot = snapshot(&[
            ("shop/orders-1", selectors(Some(1000), None, "")),
            ("shop/orders-2", selectors(None, Some(2000), "")),
        ]);

        let error = caller().workload(Some(&snapshot)).unwrap_err();

        assert_eq!(
            error,
            CallerError::Ambiguous {
                caller: caller().to_string(),
                workloads: vec!["shop/orders-1".into(), "shop/orders-2".into()],
            }
        );
    }
}

//! What the agent keeps on disk: the layout of its data directory, atomic
//! writes, the last known good configuration and the status file.
//!
//! ```text
//! <data-dir>/node/key.pem                      the node's key (0600)
//! <data-dir>/node/cert.pem                     the node certificate chain
//! <data-dir>/node/bundle.pem                   the CAs the control plane chains to
//! <data-dir>/workloads/<ns>/<name>/key.pem     a workload's key (0600)
//! <data-dir>/workloads/<ns>/<name>/cert.pem    its X.509-SVID chain
//! <data-dir>/last-known-good.json              the resources last applied (0600)
//! <data-dir>/status.json                       what is enforced, from where
//! ```
//!
//! A key and its certificate are links into a version directory that holds
//! both, replaced as one (see `identity::stored`). Every other file is
//! replaced atomically: written to a temporary file beside it, synced,
//! renamed over the old one, and the directory synced, so a crash leaves
//! either the old file or the new one.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::xds::Resources;

/// The version of the last known good's format.
const LAST_KNOWN_GOOD_FORMAT: u32 = 1;
/// Mode of files that hold keys or configuration.
pub const PRIVATE: u32 = 0o600;
/// Mode of files anyone on the host may read.
pub const PUBLIC: u32 = 0o644;

/// Why the data directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file holds something other than what the agent writes.
    #[error("{path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The agent's data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Opens `root`, creating it (0700) if needed.
    pub fn open(root: &Path) -> Result<Self, CacheError> {
        create_private_dir(root)?;
        let permissions = std::fs::Permissions::from_mode(0o700);
        std::fs::set_permissions(root, permissions).map_err(io(root))?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The node's key and certificate chain.
    pub fn node(&self) -> PathBuf {
        self.root.join("node")
    }

    /// The CA bundle last received from the control plane.
    pub fn node_bundle(&self) -> PathBuf {
        self.root.join("node/bundle.pem")
    }

    /// Where every workload's key and certificate live.
    pub fn workloads(&self) -> PathBuf {
        self.root.join("workloads")
    }

    /// The directory of the workload `<namespace>/<name>`. Both parts were
    /// validated as DNS names, so neither can climb out of the directory.
    pub fn workload(&self, key: &str) -> PathBuf {
        self.workloads().join(key)
    }

    /// The last known good configuration.
    pub fn last_known_good(&self) -> PathBuf {
        self.root.join("last-known-good.json")
    }

    /// The status file.
    pub fn status(&self) -> PathBuf {
        self.root.join("status.json")
    }
}

fn create_private_dir(path: &Path) -> Result<(), CacheError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io(path))
}

/// Replaces `path` with `bytes` atomically, the new file having `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CacheError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let parent = path.parent().unwrap_or(Path::new("."));
    create_private_dir(parent)?;
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    let serial = COUNTER.fetch_add(1, Ordering::Relaxed);
    let temporary = parent.join(format!(".{name}.{}.{serial}.tmp", std::process::id()));

    let written = write_synced(&temporary, bytes, mode)
        .and_then(|()| std::fs::rename(&temporary, path).map_err(io(path)));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written?;
    sync_dir(parent)
}

/// Makes `path` a symbolic link to `target`, replacing what was there in
/// one rename. The caller syncs the directory.
pub fn replace_symlink(path: &Path, target: &Path) -> Result<(), CacheError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let parent = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    let serial = COUNTER.fetch_add(1, Ordering::Relaxed);
    let temporary = parent.join(format!(".{name}.{}.{serial}.link", std::process::id()));

    std::os::unix::fs::symlink(target, &temporary).map_err(io(&temporary))?;
    std::fs::rename(&temporary, path).map_err(|error| {
        let _ = std::fs::remove_file(&temporary);
        io(path)(error)
    })
}

/// Makes what changed in `dir`'s entries durable.
pub fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io(dir))
}

fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CacheError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// The contents of `path`, or `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, CacheError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io(path)(error)),
    }
}

/// The configuration last applied, as received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastKnownGood {
    /// The file format's version.
    pub format: u32,
    /// When it was applied, in Unix seconds.
    pub saved_at_unix: i64,
    /// The newest store revision among the resources.
    pub revision: u64,
    /// Every resource, with its version and encoding.
    pub resources: Resources,
}

impl LastKnownGood {
    /// The last known good of `resources` at `revision`, saved at `now`.
    pub fn new(resources: Resources, revision: u64, now: i64) -> Self {
        Self {
            format: LAST_KNOWN_GOOD_FORMAT,
            saved_at_unix: now,
            revision,
            resources,
        }
    }

    /// Writes it into `dir`, replacing the previous one atomically.
    pub fn save(&self, dir: &DataDir) -> Result<(), CacheError> {
        let path = dir.last_known_good();
        let json = serde_json::to_vec(self).map_err(|e| CacheError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        write_atomic(&path, &json, PRIVATE)
    }

    /// Reads the one in `dir`, if there is one.
    pub fn load(dir: &DataDir) -> Result<Option<Self>, CacheError> {
        let path = dir.last_known_good();
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        let corrupt = |detail: String| CacheError::Corrupt {
            path: path.clone(),
            detail,
        };

        let loaded: Self = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if loaded.format != LAST_KNOWN_GOOD_FORMAT {
            return Err(corrupt(format!("unknown format {}", loaded.format)));
        }
        Ok(Some(loaded))
    }
}

/// Where the configuration enforced came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Nothing is enforced: every connection is refused.
    #[default]
    None,
    /// The last known good, read at start-up.
    LastKnownGood,
    /// The control plane, over the current or a past stream.
    ControlPlane,
}

/// What `<data-dir>/status.json` says, for operators and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The node's name.
    pub node: String,
    /// Where the configuration enforced came from.
    pub source: Source,
    /// The newest store revision among the resources enforced.
    pub revision: u64,
    /// When the configuration enforced was applied, in Unix seconds.
    pub applied_at_unix: i64,
    /// The control plane address of the open, synced stream, if any.
    pub connected_to: Option<String>,
    /// How many resources of each kind are enforced.
    pub resources: BTreeMap<String, usize>,
    /// The most recent rejection sent to the control plane.
    pub last_rejection: Option<String>,
    /// The data path's counters since the agent started, by name (see
    /// [`Counters`](crate::proxy::Counters)), written every few seconds
    /// while they change.
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
}

impl Status {
    /// Writes it into `dir`, replacing the previous one atomically.
    pub fn save(&self, dir: &DataDir) -> Result<(), CacheError> {
        let path = dir.status();
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| CacheError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        json.push(b'\n');
        write_atomic(&path, &json, PUBLIC)
    }
}

#[cfg(test)]
mod tests;

//! Certificates with their keys on disk, the pair replaced as one:
//!
//! ```text
//! <dir>/key.pem   -> current/key.pem
//! <dir>/cert.pem  -> current/cert.pem
//! <dir>/current   -> .v<N>            swapped in one rename
//! <dir>/.v<N>/    key.pem (0600) and cert.pem of one issuance
//! ```
//!
//! A new pair is written whole into a new version directory, synced, and
//! only then made current, so a crash leaves the previous pair current or
//! the new one, never a key beside another pair's certificate. The version
//! before stays on disk: when the current pair cannot be read, or its key
//! does not match its certificate, the newest other version that reads
//! whole is used instead, so a node keeps a certificate it can renew with
//! rather than attest again with a join token that is already spent.
//! Directories of earlier releases, with `key.pem` and `cert.pem` as plain
//! files, are read as they are and take this layout at the next write.

use std::path::{Path, PathBuf};

use super::IdentityError;
use super::svid::{KeyPem, Svid, SvidError};
use crate::cache::{self, PRIVATE, PUBLIC};

const KEY_FILE: &str = "key.pem";
const CERT_FILE: &str = "cert.pem";
/// The link to the version directory in use.
const CURRENT_LINK: &str = "current";
/// How version directories begin.
const VERSION_PREFIX: &str = ".v";

/// The certificate in `dir`, or `None` when there is no pair at all.
///
/// The current pair is read first, then the other versions, newest first,
/// then plain files of the earlier layout; an error is returned only when
/// none reads whole.
pub fn read(dir: &Path) -> Result<Option<Svid>, IdentityError> {
    let mut first_error = None;
    for (place, candidate) in candidates(dir)?.iter().enumerate() {
        match read_pair(candidate) {
            Ok(Some(svid)) if place == 0 => return Ok(Some(svid)),
            Ok(Some(svid)) => {
                tracing::warn!(
                    path = %candidate.display(),
                    serial = %svid.serial,
                    "the current key and certificate are unusable; using an earlier pair"
                );
                return Ok(Some(svid));
            }
            Ok(None) if place == 0 && has_current(dir) => {
                tracing::warn!(path = %candidate.display(), "the current key or certificate is missing");
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "stored key and certificate unusable");
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(None), Err)
}

/// Where a pair may be, in the order [`read`] tries them.
fn candidates(dir: &Path) -> Result<Vec<PathBuf>, IdentityError> {
    let current = current_version(dir);
    let mut versions = versions(dir)?;
    versions.sort_unstable_by(|a, b| b.cmp(a));

    let current_first = current
        .into_iter()
        .chain(versions.into_iter().filter(|v| Some(*v) != current));
    let mut candidates: Vec<PathBuf> = current_first.map(|v| dir.join(version_name(v))).collect();
    if is_plain_file(&dir.join(KEY_FILE)) && is_plain_file(&dir.join(CERT_FILE)) {
        candidates.push(dir.to_owned());
    }
    Ok(candidates)
}

/// The key and certificate in `dir`, or `None` when either is missing.
fn read_pair(dir: &Path) -> Result<Option<Svid>, IdentityError> {
    let key_path = dir.join(KEY_FILE);
    let cert_path = dir.join(CERT_FILE);
    let (Some(key), Some(chain)) = (
        cache::read_optional(&key_path)?,
        cache::read_optional(&cert_path)?,
    ) else {
        return Ok(None);
    };

    let stored = |path: &Path, source| IdentityError::Stored {
        path: path.to_owned(),
        source,
    };
    let key_pem = String::from_utf8(key)
        .map(KeyPem::new)
        .map_err(|_| stored(&key_path, SvidError::Key("not PEM text".into())))?;
    let chain_pem = String::from_utf8_lossy(&chain).into_owned();
    Svid::from_pem(chain_pem, key_pem)
        .map(Some)
        .map_err(|source| stored(&cert_path, source))
}

/// Writes `svid` into `dir` as a new version, makes it current, and keeps
/// the version before.
pub fn write(dir: &Path, svid: &Svid) -> Result<(), IdentityError> {
    let next = write_version(dir, svid)?;
    make_current(dir, next)
}

/// [`write`]s on the blocking pool, so that the tasks sharing the agent's
/// thread go on while the files are synced; gives `svid` back.
pub async fn write_off_thread(dir: PathBuf, svid: Svid) -> Result<Svid, IdentityError> {
    let path = dir.clone();
    let written = tokio::task::spawn_blocking(move || write(&dir, &svid).map(|()| svid)).await;
    written.map_err(|error| IdentityError::Writer {
        path,
        detail: error.to_string(),
    })?
}

/// Writes the pair into a version directory of its own, newer than every
/// other, and syncs it; returns its number. Nothing reads it until it is
/// made current.
fn write_version(dir: &Path, svid: &Svid) -> Result<u64, IdentityError> {
    let newest = versions(dir)?.into_iter().chain(current_version(dir)).max();
    let next = newest.unwrap_or(0) + 1;
    let version = dir.join(version_name(next));

    let key = svid.key_pem.expose().as_bytes();
    cache::write_atomic(&version.join(KEY_FILE), key, PRIVATE)?;
    cache::write_atomic(&version.join(CERT_FILE), svid.chain_pem.as_bytes(), PUBLIC)?;
    cache::sync_dir(dir)?;
    Ok(next)
}

/// Points `current` at version `next` in one rename, the top-level names
/// through it, then removes versions older than the one it replaced.
fn make_current(dir: &Path, next: u64) -> Result<(), IdentityError> {
    let previous = current_version(dir);
    cache::replace_symlink(&dir.join(CURRENT_LINK), Path::new(&version_name(next)))?;
    for file in [KEY_FILE, CERT_FILE] {
        let through = Path::new(CURRENT_LINK).join(file);
        if std::fs::read_link(dir.join(file)).ok().as_deref() != Some(through.as_path()) {
            cache::replace_symlink(&dir.join(file), &through)?;
        }
    }
    cache::sync_dir(dir)?;

    for version in versions(dir)? {
        if version != next && Some(version) != previous {
            remove(&dir.join(version_name(version)))?;
        }
    }
    Ok(())
}

fn version_name(version: u64) -> String {
    format!("{VERSION_PREFIX}{version}")
}

/// The version `current` names, if it names one.
fn current_version(dir: &Path) -> Option<u64> {
    let target = std::fs::read_link(dir.join(CURRENT_LINK)).ok()?;
    target.to_str()?.strip_prefix(VERSION_PREFIX)?.parse().ok()
}

fn has_current(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir.join(CURRENT_LINK)).is_ok()
}

/// The version directories in `dir`, in no order.
fn versions(dir: &Path) -> Result<Vec<u64>, IdentityError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(io_error(dir, source)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| io_error(dir, source))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let name = entry.file_name();
        let version = name.to_str().and_then(|n| n.strip_prefix(VERSION_PREFIX));
        if let Some(version) = version.and_then(|v| v.parse().ok()).filter(|_| is_dir) {
            found.push(version);
        }
    }
    Ok(found)
}

fn is_plain_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

fn io_error(path: &Path, source: std::io::Error) -> IdentityError {
    cache::CacheError::Io {
        path: path.to_owned(),
        source,
    }
    .into()
}

/// Removes `dir` and what it holds.
pub fn remove(dir: &Path) -> Result<(), IdentityError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io_error(dir, source)),
    }
}

#[cfg(test)]
mod tests;

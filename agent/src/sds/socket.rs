//! The SDS socket file: made with mode [`SOCKET_MODE`], replacing a stale
//! socket from an earlier run, and removed when the server stops.
//!
//! The mode lets the agent's user and group connect; give Envoy's user the
//! agent's group (or put the socket in a directory with that group). The
//! mode is only a first fence: what a caller receives depends on its peer
//! credentials alone. Between `bind` and `chmod` the socket has the mode
//! the umask gives; a connection in that instant is identified the same way.

use std::fs::{DirBuilder, Permissions};
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

use super::SdsError;

/// The mode of the socket file: read and write for the agent's user and
/// group, nothing for others.
pub const SOCKET_MODE: u32 = 0o660;

/// The mode of the socket's directory when the agent makes it.
const DIRECTORY_MODE: u32 = 0o755;

/// The socket file the server owns.
#[derive(Debug)]
pub struct Bound {
    path: PathBuf,
    inode: u64,
}

impl Bound {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the socket file, unless another process replaced it since.
    pub fn remove(&self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode);
        if ours && let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "SDS socket not removed");
        }
    }
}

/// Binds a listener at `path`, which must be free or hold a stale socket.
pub fn bind(path: &Path) -> Result<(UnixListener, Bound), SdsError> {
    let io = |source| SdsError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(DIRECTORY_MODE)
            .create(parent)
            .map_err(io)?;
    }
    remove_stale(path)?;

    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, Permissions::from_mode(SOCKET_MODE)).map_err(io)?;
    let inode = std::fs::symlink_metadata(path).map_err(io)?.ino();
    Ok((
        listener,
        Bound {
            path: path.to_owned(),
            inode,
        },
    ))
}

/// Removes a socket file that nobody listens on any more.
fn remove_stale(path: &Path) -> Result<(), SdsError> {
    let io = |source| SdsError::Io {
        path: path.to_owned(),
        source,
    };
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(io(error)),
    };
    if !metadata.file_type().is_socket() {
        return Err(SdsError::NotASocket {
            path: path.to_owned(),
        });
    }

    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(SdsError::InUse {
            path: path.to_owned(),
        });
    }
    tracing::info!(path = %path.display(), "removing a stale SDS socket");
    std::fs::remove_file(path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_the_mode_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/agent.sock");
        let (first, _) = bind(&path).unwrap();
        drop(first);

        let (_listener, bound) = bind(&path).unwrap();

        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, SOCKET_MODE);
        bound.remove();
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_socket_in_use_or_a_regular_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let (_listener, _bound) = bind(&path).unwrap();
        let file = dir.path().join("not-a-socket");
        std::fs::write(&file, b"data").unwrap();

        assert!(matches!(bind(&path), Err(SdsError::InUse { .. })));
        assert!(matches!(bind(&file), Err(SdsError::NotASocket { .. })));
        assert_eq!(std::fs::read(&file).unwrap(), b"data");
    }
}

//! The files of one workload on disk: version directories, the `current`
//! link swapped in one rename, and the top-level names that go through it.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, File, Permissions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::FilesError;
use super::plan::{Contents, Owner, is_safe_key};
use crate::cache::write_atomic;

/// The certificate chain, leaf first.
pub const SVID_FILE: &str = "svid.pem";
/// The private key.
pub const KEY_FILE: &str = "svid-key.pem";
/// The CA certificates to trust.
pub const BUNDLE_FILE: &str = "bundle.pem";
/// The link to the version directory in use.
pub const CURRENT_LINK: &str = "current";

/// How version directories begin.
const VERSION_PREFIX: &str = ".v";
/// The modes of the certificate directory and of each namespace's: anyone
/// may pass through; what is private is further down.
const ROOT_MODE: u32 = 0o755;
/// The mode of the certificates and of the bundle.
const PUBLIC_MODE: u32 = 0o644;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Who ended up owning a workload's files, and so which modes are safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Modes {
    directory: u32,
    key: u32,
}

impl Modes {
    /// The modes for `owner`, given whether the owner change succeeded.
    fn for_owner(owner: Owner, owned: bool) -> Self {
        let group = owned && owner.gid.is_some();
        Self {
            directory: if group { 0o750 } else { 0o700 },
            key: if group && owner.uid.is_none() {
                0o640
            } else {
                0o600
            },
        }
    }
}

/// Makes the certificate directory, when missing.
pub fn make_root(root: &Path) -> Result<(), FilesError> {
    DirBuilder::new()
        .recursive(true)
        .mode(ROOT_MODE)
        .create(root)
        .map_err(io(root))
}

/// The workloads whose files an earlier run left under `root`, with the
/// version their `current` link names. Only directories with such a link
/// count, so that nothing else in `root` is ever taken for the agent's.
pub fn scan(root: &Path) -> Result<BTreeMap<String, String>, FilesError> {
    let mut found = BTreeMap::new();
    for namespace in subdirectories(root)? {
        for name in subdirectories(&root.join(&namespace))? {
            let key = format!("{namespace}/{name}");
            let version = current_version(&root.join(&key));
            if let Some(version) = version.filter(|_| is_safe_key(&key)) {
                found.insert(key, version);
            }
        }
    }
    Ok(found)
}

fn subdirectories(dir: &Path) -> Result<Vec<String>, FilesError> {
    let entries = std::fs::read_dir(dir).map_err(io(dir))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if let Some(name) = entry.file_name().to_str().filter(|_| is_dir) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// The version `current` links to in `dir`, if it is one of the agent's.
fn current_version(dir: &Path) -> Option<String> {
    let target = std::fs::read_link(dir.join(CURRENT_LINK)).ok()?;
    let version = target.to_str()?.strip_prefix(VERSION_PREFIX)?;
    Some(version.to_owned())
}

/// Writes a new version of a workload's files in `dir` and makes it
/// current, keeping the version before.
pub fn write(dir: &Path, contents: &Contents) -> Result<(), FilesError> {
    // The workload's directory, owned as its processes need.
    let ownership = settle_owner(dir, contents.owner)?;
    let previous = current_version(dir);

    // The three files in a fresh version directory.
    let name = format!("{VERSION_PREFIX}{}", contents.version);
    if previous.as_deref() != Some(contents.version.as_str()) {
        write_version(&dir.join(&name), contents, ownership)?;
    }

    // One rename swaps all three; the top-level names go through it.
    replace_link(dir, CURRENT_LINK, Path::new(&name))?;
    for file in [SVID_FILE, KEY_FILE, BUNDLE_FILE] {
        let through = Path::new(CURRENT_LINK).join(file);
        if std::fs::read_link(dir.join(file)).ok().as_deref() != Some(through.as_path()) {
            replace_link(dir, file, &through)?;
        }
    }
    sync_dir(dir)?;

    // Versions older than the one before go.
    let keep = previous.map(|v| format!("{VERSION_PREFIX}{v}"));
    prune(dir, &[Some(name), keep])
}

/// How a workload's files end up owned, settled on its directory.
#[derive(Clone, Copy, Debug)]
struct Ownership {
    owner: Owner,
    /// Whether the files are handed to `owner`.
    owned: bool,
    modes: Modes,
}

/// Makes the workload's directory and hands it to `owner` if the agent
/// may; its mode follows from whether that worked. With no owner, the
/// agent takes back a directory that an earlier configuration handed to
/// a user, so that the user keeps no hold on it.
fn settle_owner(dir: &Path, owner: Owner) -> Result<Ownership, FilesError> {
    make_dir(dir)?;
    let handed = try_change_owner(dir, owner);
    let owned = owner.is_known() && handed;
    let modes = Modes::for_owner(owner, owned);

    set_mode(dir, modes.directory)?;
    Ok(Ownership {
        owner,
        owned,
        modes,
    })
}

/// A version directory with the chain, the key and the bundle.
fn write_version(
    version: &Path,
    contents: &Contents,
    ownership: Ownership,
) -> Result<(), FilesError> {
    if version.exists() {
        std::fs::remove_dir_all(version).map_err(io(version))?;
    }
    make_dir(version)?;
    apply(version, ownership, ownership.modes.directory)?;

    let files = [
        (SVID_FILE, contents.chain_pem.as_bytes(), PUBLIC_MODE),
        (
            KEY_FILE,
            contents.key_pem.expose().as_bytes(),
            ownership.modes.key,
        ),
        (BUNDLE_FILE, contents.bundle_pem.as_bytes(), PUBLIC_MODE),
    ];
    for (name, bytes, mode) in files {
        let path = version.join(name);
        write_atomic(&path, bytes, 0o600)?;
        apply(&path, ownership, mode)?;
    }
    Ok(())
}

/// Makes `dir`, private, and its namespace directory, when missing.
fn make_dir(dir: &Path) -> Result<(), FilesError> {
    if let Some(parent) = dir.parent() {
        make_root(parent)?;
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(io(dir)(error)),
    }
}

/// Hands `path` to the workload, if it is to be, then gives it `mode`:
/// modes widen only after the owner changed.
fn apply(path: &Path, ownership: Ownership, mode: u32) -> Result<(), FilesError> {
    if ownership.owned {
        change_owner(path, ownership.owner).map_err(io(path))?;
    }
    set_mode(path, mode)
}

/// Changes the owner of `path`, logging when the agent may not.
fn try_change_owner(path: &Path, owner: Owner) -> bool {
    match change_owner(path, owner) {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(
                path = %path.display(),
                uid = owner.uid,
                gid = owner.gid,
                %error,
                "certificate files stay the agent's: their owner cannot be changed"
            );
            false
        }
    }
}

/// Gives `path` to `owner`, the agent's own user and group standing in
/// for what `owner` leaves out: a directory keeps no earlier owner.
fn change_owner(path: &Path, owner: Owner) -> std::io::Result<()> {
    let owner = owner.or(agent_owner());
    std::os::unix::fs::chown(path, owner.uid, owner.gid)
}

/// The user and group the agent runs as, from `/proc/self`; unknown
/// without it, and then left as they are.
fn agent_owner() -> Owner {
    static AGENT: OnceLock<Owner> = OnceLock::new();
    *AGENT.get_or_init(|| match std::fs::metadata("/proc/self") {
        Ok(metadata) => Owner {
            uid: Some(metadata.uid()),
            gid: Some(metadata.gid()),
        },
        Err(_) => Owner::default(),
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<(), FilesError> {
    std::fs::set_permissions(path, Permissions::from_mode(mode)).map_err(io(path))
}

/// Points `dir/name` at `target`, replacing what was there in one rename.
fn replace_link(dir: &Path, name: &str, target: &Path) -> Result<(), FilesError> {
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary).map_err(io(&temporary))?;

    let path = dir.join(name);
    std::fs::rename(&temporary, &path).map_err(|error| {
        let _ = std::fs::remove_file(&temporary);
        io(&path)(error)
    })
}

fn sync_dir(dir: &Path) -> Result<(), FilesError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Removes every version directory in `dir` but those in `keep`.
fn prune(dir: &Path, keep: &[Option<String>]) -> Result<(), FilesError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kept = keep.iter().flatten().any(|k| *k == name);
        if name.starts_with(VERSION_PREFIX) && !kept {
            let path = entry.path();
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Removes a workload's directory, and its namespace's once empty.
pub fn remove(root: &Path, key: &str) -> Result<(), FilesError> {
    let dir: PathBuf = root.join(key);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(error) if error.kind() == ErrorKind::NotFound => {}
        Err(error) => return Err(io(&dir)(error)),
    }

    if let Some(namespace) = dir.parent() {
        let _ = std::fs::remove_dir(namespace);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_widen_only_for_an_owner_that_took_the_files() {
        let group = Owner {
            uid: None,
            gid: Some(7),
        };
        let both = Owner {
            uid: Some(5),
            gid: Some(7),
        };

        assert_eq!(Modes::for_owner(Owner::default(), true).directory, 0o700);
        assert_eq!(
            Modes::for_owner(group, true),
            Modes {
                directory: 0o750,
                key: 0o640
            }
        );
        assert_eq!(
            Modes::for_owner(both, true),
            Modes {
                directory: 0o750,
                key: 0o600
            }
        );
        assert_eq!(
            Modes::for_owner(group, false),
            Modes {
                directory: 0o700,
                key: 0o600
            }
        );
    }
}

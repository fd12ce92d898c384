//! What `palisade-cp init` leaves on disk: the admin's certificate and key
//! readable by their owner only, and no private key in plaintext anywhere in
//! the data directory but the admin's own key file; the CA's, the server's
//! and the JWT signing keys stay sealed, also those made after init.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use palisade_tests::{ControlPlane, apply};

const PEM_KEY_MARKER: &[u8] = b"PRIVATE KEY";

fn mode(path: &Path) -> u32 {
    let metadata = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    metadata.permissions().mode() & 0o777
}

/// Every file under `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The files under `dir` that hold a PEM private key in plaintext.
fn files_with_plaintext_keys(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|path| {
            let bytes = std::fs::read(path).unwrap();
            bytes
                .windows(PEM_KEY_MARKER.len())
                .any(|w| w == PEM_KEY_MARKER)
        })
        .collect()
}

#[test]
fn admin_certificate_and_key_are_readable_by_their_owner_only() {
    let cp = ControlPlane::init("files.test").unwrap();
    let credentials = cp.admin_credentials();

    assert_eq!(mode(credentials.cert.as_ref().unwrap()), 0o600);
    assert_eq!(mode(credentials.key.as_ref().unwrap()), 0o600);
    assert_eq!(mode(&cp.data_dir.join("admin")), 0o700);
    assert_eq!(mode(&cp.data_dir), 0o700);
    assert_eq!(mode(&cp.master_key), 0o600);
}

#[test]
fn another_admins_certificate_and_key_are_readable_by_their_owner_only() {
    let cp = ControlPlane::init("files.test").unwrap();

    let credentials = cp.issue_admin("alice").unwrap();

    assert_eq!(mode(credentials.cert.as_ref().unwrap()), 0o600);
    assert_eq!(mode(credentials.key.as_ref().unwrap()), 0o600);
}

#[test]
fn the_only_plaintext_private_key_after_init_is_the_admins() {
    let cp = ControlPlane::init("files.test").unwrap();

    let found = files_with_plaintext_keys(&cp.data_dir);

    assert_eq!(found, [cp.admin_credentials().key.unwrap()]);
    let key = std::fs::read_to_string(&cp.master_key).unwrap();
    assert!(!key.contains("PRIVATE KEY"));
}

#[tokio::test]
async fn new_keys_stay_sealed_after_the_server_has_run() {
    let mut cp = ControlPlane::init("files.test").unwrap();
    cp.start().await.unwrap();
    let config = cp.ctl_config();
    let mut client = cp.admin().await.unwrap();
    let node = "kind: Node\nmetadata: {name: web-1}\nspec: {address: 10.0.0.1}\n";
    apply(&mut client, node).await.unwrap();
    for step in [["ca", "prepare"], ["jwt-key", "prepare"]] {
        let output = palisade_tests::palisadectl(&config, &step);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    cp.terminate().unwrap();

    let found = files_with_plaintext_keys(&cp.data_dir);

    assert_eq!(found, [cp.admin_credentials().key.unwrap()]);
}

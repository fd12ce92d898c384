use std::os::unix::fs::PermissionsExt as _;

use super::*;
use crate::identity::testing::svid;

const NODE: &str = "spiffe://example.org/node/web-1";

fn pair() -> Svid {
    svid(NODE, 1_000, 2_000)
}

fn serial(dir: &Path) -> String {
    read(dir).unwrap().expect("a pair").serial
}

fn sorted_versions(dir: &Path) -> Vec<u64> {
    let mut versions = versions(dir).unwrap();
    versions.sort_unstable();
    versions
}

#[test]
fn a_written_pair_reads_back_and_its_names_lead_to_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node");
    let first = pair();

    write(&dir, &first).unwrap();

    assert_eq!(serial(&dir), first.serial);
    let chain = std::fs::read_to_string(dir.join(CERT_FILE)).unwrap();
    assert_eq!(chain, first.chain_pem);
    let key = std::fs::metadata(dir.join(KEY_FILE)).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    assert!(
        !is_plain_file(&dir.join(KEY_FILE)),
        "a link into the version"
    );
}

#[test]
fn a_pair_half_written_leaves_the_previous_pair_in_use() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node");
    let (good, interrupted, next) = (pair(), pair(), pair());
    write(&dir, &good).unwrap();

    // A crash after the new key, before its certificate.
    let orphan = dir.join(version_name(current_version(&dir).unwrap() + 1));
    let key = interrupted.key_pem.expose().as_bytes();
    cache::write_atomic(&orphan.join(KEY_FILE), key, PRIVATE).unwrap();
    assert_eq!(serial(&dir), good.serial);

    // A crash after the whole version, before it became current.
    write_version(&dir, &interrupted).unwrap();
    assert_eq!(serial(&dir), good.serial);

    // The next write goes past both, and they are removed.
    write(&dir, &next).unwrap();
    assert_eq!(serial(&dir), next.serial);
    assert_eq!(sorted_versions(&dir), [1, 4]);
}

#[test]
fn a_current_key_that_does_not_match_its_certificate_falls_back_to_the_previous_pair() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node");
    let (previous, current, stranger) = (pair(), pair(), pair());
    write(&dir, &previous).unwrap();
    write(&dir, &current).unwrap();

    let key = stranger.key_pem.expose().as_bytes();
    cache::write_atomic(&dir.join(CURRENT_LINK).join(KEY_FILE), key, PRIVATE).unwrap();

    assert_eq!(serial(&dir), previous.serial);
}

#[test]
fn a_mismatched_pair_with_nothing_before_it_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node");
    write(&dir, &pair()).unwrap();

    let key = pair().key_pem;
    let current_key = dir.join(CURRENT_LINK).join(KEY_FILE);
    cache::write_atomic(&current_key, key.expose().as_bytes(), PRIVATE).unwrap();

    let error = read(&dir).unwrap_err();
    assert!(
        matches!(
            error,
            IdentityError::Stored {
                source: SvidError::Mismatch(_),
                ..
            }
        ),
        "{error}"
    );
    assert!(!format!("{error:?}").contains("PRIVATE KEY"));
}

#[test]
fn a_first_pair_written_whole_is_found_before_it_became_current() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node");
    let attested = pair();

    write_version(&dir, &attested).unwrap();

    assert_eq!(serial(&dir), attested.serial);
}

#[test]
fn the_earlier_layout_is_read_then_replaced_at_the_next_write() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node");
    let (old, renewed) = (pair(), pair());
    let key = old.key_pem.expose().as_bytes();
    cache::write_atomic(&dir.join(KEY_FILE), key, PRIVATE).unwrap();
    cache::write_atomic(&dir.join(CERT_FILE), old.chain_pem.as_bytes(), PUBLIC).unwrap();

    assert_eq!(serial(&dir), old.serial);
    write(&dir, &renewed).unwrap();

    assert_eq!(serial(&dir), renewed.serial);
    assert!(!is_plain_file(&dir.join(KEY_FILE)));
    let chain = std::fs::read_to_string(dir.join(CERT_FILE)).unwrap();
    assert_eq!(chain, renewed.chain_pem);
}

#[test]
fn only_the_current_and_the_previous_versions_stay() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node");

    for _ in 0..3 {
        write(&dir, &pair()).unwrap();
    }

    assert_eq!(sorted_versions(&dir), [2, 3]);
    assert_eq!(current_version(&dir), Some(3));
}

#[test]
fn an_empty_directory_holds_no_pair() {
    let root = tempfile::tempdir().unwrap();

    assert!(read(&root.path().join("node")).unwrap().is_none());
    assert!(read(root.path()).unwrap().is_none());
}

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::sync::Arc;

use palisade_proto::xds as pb;

use super::*;
use crate::identity::svid::Svid;
use crate::identity::testing::{ca_pem, svid};

const WORKLOAD: &str = "shop/orders-1";
const SPIFFE_ID: &str = "spiffe://example.org/ns/shop/sa/orders";

fn certificates(svid: &Arc<Svid>) -> WorkloadCertificates {
    WorkloadCertificates {
        by_workload: [(WORKLOAD.to_owned(), svid.clone())].into(),
        bundle_pem: "bundle".into(),
    }
}

fn new_svid(not_after: i64) -> Arc<Svid> {
    Arc::new(svid(SPIFFE_ID, 0, not_after))
}

fn snapshot(selectors: Option<pb::Selectors>) -> Snapshot {
    let workload = pb::Workload {
        namespace: "shop".into(),
        name: "orders-1".into(),
        selectors,
        ..Default::default()
    };
    Snapshot {
        workloads: [(WORKLOAD.to_owned(), workload)].into(),
        ..Snapshot::default()
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read(files: &CertificateFiles, name: &str) -> String {
    std::fs::read_to_string(files.workload_dir(WORKLOAD).join(name)).unwrap()
}

/// This process's uid and gid, which it may always hand files to.
fn own_ids() -> (u32, u32) {
    let metadata = std::fs::metadata("/proc/self").unwrap();
    (metadata.uid(), metadata.gid())
}

#[test]
fn the_three_files_are_written_with_private_modes() {
    let root = tempfile::tempdir().unwrap();
    let mut files = CertificateFiles::open(root.path()).unwrap();
    let svid = new_svid(4_000_000_000);

    let failed = files.sync(&certificates(&svid), Some(&snapshot(None)));

    assert_eq!(failed, 0);
    let dir = files.workload_dir(WORKLOAD);
    assert_eq!(read(&files, SVID_FILE), svid.chain_pem);
    assert_eq!(read(&files, KEY_FILE), svid.key_pem.expose());
    assert_eq!(read(&files, BUNDLE_FILE), "bundle");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
    assert_eq!(mode(&dir.join(SVID_FILE)), 0o644);
    assert_eq!(
        std::fs::read_link(dir.join(KEY_FILE)).unwrap(),
        Path::new(CURRENT_LINK).join(KEY_FILE)
    );
}

#[test]
fn a_renewal_swaps_all_three_files_at_once() {
    let root = tempfile::tempdir().unwrap();
    let mut files = CertificateFiles::open(root.path()).unwrap();
    let dir = files.workload_dir(WORKLOAD);
    files.sync(&certificates(&new_svid(4_000_000_000)), None);
    let first = std::fs::read_link(dir.join(CURRENT_LINK)).unwrap();

    let renewed = new_svid(4_000_000_001);
    files.sync(&certificates(&renewed), None);
    let second = std::fs::read_link(dir.join(CURRENT_LINK)).unwrap();
    files.sync(&certificates(&new_svid(4_000_000_002)), None);

    assert_ne!(first, second);
    assert!(
        !dir.join(&first).exists(),
        "versions before the previous are removed"
    );
    assert!(dir.join(&second).exists(), "the previous version stays");
    let current = std::fs::read_link(dir.join(CURRENT_LINK)).unwrap();
    let chain = std::fs::read_to_string(dir.join(&current).join(SVID_FILE)).unwrap();
    let key = std::fs::read_to_string(dir.join(&current).join(KEY_FILE)).unwrap();
    assert_eq!(read(&files, SVID_FILE), chain);
    assert_eq!(read(&files, KEY_FILE), key);
    let old_chain = std::fs::read_to_string(dir.join(&second).join(SVID_FILE)).unwrap();
    assert_eq!(old_chain, renewed.chain_pem);
}

#[test]
fn a_new_bundle_writes_a_new_version() {
    let root = tempfile::tempdir().unwrap();
    let mut files = CertificateFiles::open(root.path()).unwrap();
    let svid = new_svid(4_000_000_000);
    files.sync(&certificates(&svid), None);
    let before = files.written()[WORKLOAD].clone();

    let mut rotated = certificates(&svid);
    rotated.bundle_pem = ca_pem();
    files.sync(&rotated, None);

    assert_ne!(files.written()[WORKLOAD], before);
    assert_eq!(read(&files, BUNDLE_FILE), rotated.bundle_pem);
}

#[test]
fn the_workloads_group_gets_the_directory() {
    let (_, gid) = own_ids();
    let root = tempfile::tempdir().unwrap();
    let mut files = CertificateFiles::open(root.path()).unwrap();
    let selectors = pb::Selectors {
        unix_gid: Some(gid),
        ..Default::default()
    };

    files.sync(
        &certificates(&new_svid(4_000_000_000)),
        Some(&snapshot(Some(selectors))),
    );

    let dir = files.workload_dir(WORKLOAD);
    assert_eq!(mode(&dir), 0o750);
    assert_eq!(std::fs::metadata(&dir).unwrap().gid(), gid);
    assert_eq!(mode(&dir.join(KEY_FILE)), 0o640, "the group reads the key");
}

#[test]
fn the_workloads_user_owns_its_key() {
    let (uid, gid) = own_ids();
    let root = tempfile::tempdir().unwrap();
    let mut files = CertificateFiles::open(root.path()).unwrap();
    let selectors = pb::Selectors {
        unix_uid: Some(uid),
        unix_gid: Some(gid),
        ..Default::default()
    };

    files.sync(
        &certificates(&new_svid(4_000_000_000)),
        Some(&snapshot(Some(selectors))),
    );

    let key = files.workload_dir(WORKLOAD).join(KEY_FILE);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(std::fs::metadata(&key).unwrap().uid(), uid);
}

/// Only root may hand files to another user; elsewhere this proves nothing
/// and returns at once.
#[test]
fn a_user_the_selectors_no_longer_name_keeps_no_hold_on_the_directory() {
    let (uid, gid) = own_ids();
    if uid != 0 {
        eprintln!("skipped: only root may hand files to another user");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let mut files = CertificateFiles::open(root.path()).unwrap();
    let dir = files.workload_dir(WORKLOAD);
    let certificates = certificates(&new_svid(4_000_000_000));
    let selected = |uid, gid| {
        let selectors = pb::Selectors {
            unix_uid: uid,
            unix_gid: gid,
            ..Default::default()
        };
        snapshot(Some(selectors))
    };
    let owner = |path: &Path| {
        let metadata = std::fs::metadata(path).unwrap();
        (metadata.uid(), metadata.gid())
    };

    files.sync(&certificates, Some(&selected(Some(4242), None)));
    assert_eq!(owner(&dir).0, 4242);
    files.sync(&certificates, Some(&selected(None, Some(4343))));
    let by_group = (owner(&dir), owner(&dir.join(KEY_FILE)));
    files.sync(&certificates, Some(&selected(Some(4242), None)));
    files.sync(&certificates, Some(&snapshot(None)));

    assert_eq!(by_group, ((uid, 4343), (uid, 4343)));
    assert_eq!(owner(&dir), (uid, gid), "taken back without selectors");
    assert_eq!(mode(&dir), 0o700);
}

#[test]
fn a_workload_that_goes_away_loses_its_directory() {
    let root = tempfile::tempdir().unwrap();
    let mut files = CertificateFiles::open(root.path()).unwrap();
    files.sync(
        &certificates(&new_svid(4_000_000_000)),
        Some(&snapshot(None)),
    );

    let failed = files.sync(&WorkloadCertificates::default(), Some(&Snapshot::default()));

    assert_eq!(failed, 0);
    assert!(!files.workload_dir(WORKLOAD).exists());
    assert!(!root.path().join("shop").exists());
    assert!(files.written().is_empty());
}

#[test]
fn nothing_is_removed_without_a_configuration() {
    let root = tempfile::tempdir().unwrap();
    let mut files = CertificateFiles::open(root.path()).unwrap();
    files.sync(&certificates(&new_svid(4_000_000_000)), None);

    files.sync(&WorkloadCertificates::default(), None);
    files.sync(&WorkloadCertificates::default(), Some(&snapshot(None)));

    assert!(files.workload_dir(WORKLOAD).join(KEY_FILE).exists());
}

#[test]
fn a_restart_finds_the_files_an_earlier_run_left_and_nothing_else() {
    let root = tempfile::tempdir().unwrap();
    let mut first = CertificateFiles::open(root.path()).unwrap();
    first.sync(&certificates(&new_svid(4_000_000_000)), None);
    std::fs::create_dir_all(root.path().join("other/not-ours")).unwrap();

    let mut again = CertificateFiles::open(root.path()).unwrap();
    let found = again.written().clone();
    again.sync(&WorkloadCertificates::default(), Some(&Snapshot::default()));

    assert_eq!(&found, first.written());
    assert!(!again.workload_dir(WORKLOAD).exists());
    assert!(root.path().join("other/not-ours").exists());
}

#[test]
fn current_files_are_not_rewritten() {
    let root = tempfile::tempdir().unwrap();
    let certificates = certificates(&new_svid(4_000_000_000));
    CertificateFiles::open(root.path())
        .unwrap()
        .sync(&certificates, None);

    let mut again = CertificateFiles::open(root.path()).unwrap();
    let key = again.workload_dir(WORKLOAD).join(KEY_FILE);
    let inode = std::fs::metadata(&key).unwrap().ino();
    again.sync(&certificates, None);

    assert_eq!(std::fs::metadata(&key).unwrap().ino(), inode);
}

#[test]
fn unsafe_names_get_no_files() {
    let root = tempfile::tempdir().unwrap();
    let mut files = CertificateFiles::open(root.path()).unwrap();
    let svid = new_svid(4_000_000_000);
    let certificates = WorkloadCertificates {
        by_workload: [("../escape".to_owned(), svid)].into(),
        bundle_pem: "bundle".into(),
    };

    files.sync(&certificates, None);

    assert!(files.written().is_empty());
    assert!(!root.path().parent().unwrap().join("escape").exists());
}

#[tokio::test]
async fn the_task_follows_renewals_until_shutdown() {
    let root = tempfile::tempdir().unwrap();
    let files = CertificateFiles::open(root.path()).unwrap();
    let key = files.workload_dir(WORKLOAD).join(KEY_FILE);
    let (state, certificates) = (State::new(), Certificates::default());
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(maintain(files, state, certificates.clone(), shutdown));

    let svid = new_svid(4_000_000_000);
    certificates.publish(super::tests::certificates(&svid));
    let written = tokio::time::timeout(Duration::from_secs(10), async {
        while std::fs::read_to_string(&key).ok().as_deref() != Some(svid.key_pem.expose()) {
            tokio::task::yield_now().await;
        }
    });
    written.await.expect("the key is written");

    stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the task stops")
        .unwrap();
}

//! The audit log's hash chain: whoever edits the store on disk behind the
//! control plane's back, `palisadectl audit verify` names the first entry
//! that was altered, removed or moved, and exits non-zero.

use palisade_tests::{ControlPlane, apply, palisadectl};

/// The entry that each test tampers with; later entries stay in place, so
/// the store still opens and the damage shows only in the chain.
const VICTIM: u64 = 3;

/// A stopped control plane whose audit log holds several entries.
async fn with_history() -> ControlPlane {
    let mut cp = ControlPlane::init("audit.test").unwrap();
    cp.start().await.unwrap();
    let mut client = cp.admin().await.unwrap();
    for index in 0..6 {
        let node = format!(
            "kind: Node\nmetadata: {{name: n{index}}}\nspec: {{address: 10.0.0.{index}}}\n"
        );
        apply(&mut client, &node).await.unwrap();
    }

    let config = cp.ctl_config();
    let clean = palisadectl(&config, &["audit", "verify"]);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    cp.terminate().unwrap();
    cp
}

/// Edits the audit tree of the stopped control plane's sled store.
fn tamper(cp: &ControlPlane, edit: impl FnOnce(&sled::Tree)) {
    let db = sled::open(cp.data_dir.join("store")).unwrap();
    let audit = db.open_tree("audit").unwrap();
    edit(&audit);
    db.flush().unwrap();
}

/// Restarts the control plane and returns what `audit verify` printed.
async fn verify(cp: &mut ControlPlane) -> String {
    cp.start().await.unwrap();
    let output = palisadectl(&cp.ctl_config(), &["audit", "verify"]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "verify should fail: {stdout}"
    );
    stdout
}

#[tokio::test]
async fn altered_entry_is_named() {
    let mut cp = with_history().await;

    tamper(&cp, |audit| {
        let key = VICTIM.to_be_bytes();
        let mut entry: serde_json::Value =
            serde_json::from_slice(&audit.get(key).unwrap().unwrap()).unwrap();
        entry["actor"] = "spiffe://audit.test/admin/someone-else".into();
        audit
            .insert(key, serde_json::to_vec(&entry).unwrap())
            .unwrap();
    });

    let stdout = verify(&mut cp).await;
    assert!(
        stdout.contains(&format!("broken at entry {VICTIM}: entry was altered")),
        "{stdout}"
    );
}

#[tokio::test]
async fn removed_entry_is_named() {
    let mut cp = with_history().await;

    tamper(&cp, |audit| {
        audit.remove(VICTIM.to_be_bytes()).unwrap();
    });

    let stdout = verify(&mut cp).await;
    assert!(
        stdout.contains(&format!("entries {VICTIM} to {VICTIM} are missing")),
        "{stdout}"
    );
}

#[tokio::test]
async fn swapped_entries_are_named() {
    let mut cp = with_history().await;

    tamper(&cp, |audit| {
        let (first, second) = (VICTIM.to_be_bytes(), (VICTIM + 1).to_be_bytes());
        let a = audit.get(first).unwrap().unwrap();
        let b = audit.get(second).unwrap().unwrap();
        audit.insert(first, b).unwrap();
        audit.insert(second, a).unwrap();
    });

    let stdout = verify(&mut cp).await;
    assert!(
        stdout.contains(&format!(
            "broken at entry {VICTIM}: entry is stored at {VICTIM}"
        )),
        "{stdout}"
    );
}

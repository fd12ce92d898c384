//! A store damaged on disk is refused, not served: `palisade-cp serve`
//! exits non-zero before it binds its port, with one error line that says
//! the store is damaged and how, whether bytes of sled's log were
//! overwritten or the log was cut short.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use palisade_tests::{ControlPlane, apply, binary};

/// Applies, one at a time, so that the store's log holds a long history.
const APPLIES: usize = 60;
/// How long a refusing `serve` may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
const DAMAGED: &str = "error: the store is damaged and will not serve: ";
const LOST_WRITES: &str = "were acknowledged before: the log lost writes";

/// A stopped control plane whose store holds a long history.
async fn with_history() -> ControlPlane {
    let mut cp = ControlPlane::init("damage.test").unwrap();
    cp.start().await.unwrap();
    let mut client = cp.admin().await.unwrap();
    for index in 0..APPLIES {
        let node = format!(
            "kind: Node\nmetadata: {{name: n{index}}}\nspec: {{address: 10.0.0.{}}}\n",
            index + 1
        );
        apply(&mut client, &node).await.unwrap();
    }
    let status = cp.terminate().unwrap();
    assert!(status.success(), "{}", cp.log());
    cp
}

/// sled's log file, and how many of its bytes were written (the file is
/// allocated in whole segments, zeros past the end of the log).
fn log_file(cp: &ControlPlane) -> (std::path::PathBuf, usize) {
    let path = cp.data_dir.join("store/db");
    let bytes = std::fs::read(&path).unwrap();
    let written = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    (path, written)
}

/// Runs `serve` on the damaged data directory until it exits.
fn serve(cp: &ControlPlane) -> Output {
    let _ = std::fs::remove_file(cp.data_dir.join("admin.addr"));
    let mut child = Command::new(binary("palisade-cp"))
        .arg("serve")
        .arg("--data-dir")
        .arg(&cp.data_dir)
        .arg("--master-key-file")
        .arg(&cp.master_key)
        .args(["--listen", "127.0.0.1:0", "--jwks-listen", "off"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + EXIT_TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("palisade-cp served a damaged store");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Checks that `serve` refused the store as damaged, before binding.
fn assert_refused_as_damaged(cp: &ControlPlane, output: &Output, detail: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let error = stderr
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(error.starts_with(DAMAGED), "{error}");
    assert!(error.contains(detail), "{error}");
    assert!(
        !cp.data_dir.join("admin.addr").exists(),
        "it bound its port"
    );
}

/// Checks that `serve` refuses the store as one whose log lost writes.
fn assert_refused_as_lost_writes(cp: &ControlPlane) {
    let output = serve(cp);
    assert_refused_as_damaged(cp, &output, LOST_WRITES);
}

#[tokio::test]
async fn overwritten_log_bytes_are_refused_as_lost_writes() {
    let cp = with_history().await;
    let (path, written) = log_file(&cp);

    let mut bytes = std::fs::read(&path).unwrap();
    let middle = written / 2;
    bytes[middle..middle + 64].fill(0xA5);
    std::fs::write(&path, bytes).unwrap();

    assert_refused_as_lost_writes(&cp);
}

#[tokio::test]
async fn a_log_cut_short_is_refused_as_lost_writes() {
    let cp = with_history().await;
    let (path, written) = log_file(&cp);

    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(written as u64 * 2 / 3).unwrap();
    drop(file);

    assert_refused_as_lost_writes(&cp);
}

#[tokio::test]
async fn an_emptied_log_is_refused_every_time() {
    let cp = with_history().await;
    let (path, _) = log_file(&cp);

    std::fs::write(&path, b"").unwrap();
    let first = serve(&cp);
    let second = serve(&cp);

    assert_refused_as_damaged(&cp, &first, "");
    assert_refused_as_damaged(&cp, &second, "");
}

#[tokio::test]
async fn a_revision_ahead_of_the_change_log_is_refused() {
    let cp = with_history().await;

    let revision = {
        let db = sled::open(cp.data_dir.join("store")).unwrap();
        let meta = db.open_tree("meta").unwrap();
        let stored = meta.get("revision").unwrap().unwrap();
        let revision = u64::from_be_bytes(stored[..].try_into().unwrap());
        meta.insert("revision", &(revision + 5).to_be_bytes())
            .unwrap();
        db.flush().unwrap();
        revision
    };
    let output = serve(&cp);

    let detail = format!(
        "the revision is {} but the change log ends at {revision}",
        revision + 5
    );
    assert_refused_as_damaged(&cp, &output, &detail);
}

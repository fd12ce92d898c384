//! `palisade-agent check` trusts a control plane only through its bundle.

use std::process::Command;

use palisade_tests::{ControlPlane, binary};

#[tokio::test]
async fn agent_check_passes_with_the_bundle_and_fails_with_another() {
    let mut cp = ControlPlane::init("agent.test").unwrap();
    let other = ControlPlane::init("other.test").unwrap();
    cp.start().await.unwrap();
    let address = format!("https://{}", cp.address());

    let trusted = Command::new(binary("palisade-agent"))
        .args(["check", "--control-plane", &address, "--ca"])
        .arg(cp.data_dir.join("ca.pem"))
        .output()
        .unwrap();
    let untrusted = Command::new(binary("palisade-agent"))
        .args(["check", "--control-plane", &address, "--ca"])
        .arg(other.data_dir.join("ca.pem"))
        .output()
        .unwrap();

    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert!(String::from_utf8_lossy(&trusted.stdout).contains("is serving"));
    assert!(!untrusted.status.success());
    assert!(String::from_utf8_lossy(&untrusted.stderr).starts_with("error: "));
}

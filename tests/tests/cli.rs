//! `palisadectl` against a real control plane: the admin's everyday loop of
//! apply, diff, get, audit verify, and what a mistake looks like.

use std::process::Output;

use palisade_tests::{ControlPlane, palisadectl as ctl};

const SHOP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples/shop.yaml");

#[tokio::test]
async fn admin_applies_reads_and_verifies_through_the_cli() {
    let mut cp = ControlPlane::init("cli.test").unwrap();
    cp.start().await.unwrap();
    let config = cp.ctl_config();

    let applied = ctl(&config, &["apply", "-f", SHOP]);
    let diff = ctl(&config, &["diff", "-f", SHOP]);
    let listed = ctl(&config, &["get", "workloads", "-n", "shop", "-o", "json"]);
    let verified = ctl(&config, &["audit", "verify"]);

    assert_success(&applied);
    assert!(
        stdout(&applied).contains("Workload shop/orders-1 created"),
        "{}",
        stdout(&applied)
    );
    assert_eq!(
        diff.status.code(),
        Some(0),
        "no changes expected: {}",
        stdout(&diff)
    );
    let items: serde_json::Value = serde_json::from_str(&stdout(&listed)).unwrap();
    let names: Vec<&str> = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders-1", "storefront-1"]);
    assert_success(&verified);
    assert!(
        stdout(&verified).contains("intact"),
        "{}",
        stdout(&verified)
    );
}

#[tokio::test]
async fn invalid_file_gets_one_error_line_and_the_details() {
    let mut cp = ControlPlane::init("cli.test").unwrap();
    cp.start().await.unwrap();
    let config = cp.ctl_config();
    let bad = cp.root.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "kind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 0}]}\n",
    )
    .unwrap();

    let output = ctl(&config, &["apply", "-f", bad.to_str().unwrap()]);

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut lines = stderr.lines();
    assert!(lines.next().unwrap().starts_with("error: "), "{stderr}");
    assert!(stderr.contains("spec.ports[0].port"), "{stderr}");
    assert!(
        !stderr.contains("Status {"),
        "debug output leaked: {stderr}"
    );
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn admin_registers_and_revokes_a_node_through_the_cli() {
    let mut cp = ControlPlane::init("cli.test").unwrap();
    cp.start().await.unwrap();
    let config = cp.ctl_config();
    assert_success(&ctl(&config, &["apply", "-f", SHOP]));

    let created = ctl(
        &config,
        &["node", "token", "create", "--node", "web-1", "--ttl", "10m"],
    );
    let missing = ctl(&config, &["node", "token", "create", "--node", "web-9"]);
    let revoked = ctl(
        &config,
        &["node", "revoke", "web-1", "--reason", "decommissioned"],
    );
    let status = ctl(&config, &["ca", "status"]);

    assert_success(&created);
    let token = stdout(&created).lines().next().unwrap().to_owned();
    let (id, secret) = token.split_once('.').unwrap();
    assert_eq!(id.len(), 16, "{token}");
    assert!(secret.len() >= 43, "{token}");
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("Node web-9 does not exist"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    assert_success(&revoked);
    assert!(
        stdout(&revoked).contains("node web-1 revoked"),
        "{}",
        stdout(&revoked)
    );
    assert_success(&status);
    assert!(stdout(&status).contains("active"), "{}", stdout(&status));
    let audit = ctl(&config, &["audit", "list"]);
    assert!(
        !stdout(&audit).contains(secret),
        "the token's secret reached the audit log"
    );
    assert!(
        !cp.log().contains(secret),
        "the token's secret reached the log"
    );
}

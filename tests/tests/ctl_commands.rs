//! `palisadectl` commands that look before they leap or explain a refusal:
//! `diff` and `apply --dry-run` change nothing, `get -l` selects by label,
//! a refused `delete` names what is in the way, and `completion` prints a
//! script for the shell.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use palisade_tests::{ControlPlane, binary, palisadectl as ctl};

const SHOP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples/shop.yaml");

/// The orders Service of the shop on a new port.
const ORDERS_MOVED: &str = r#"
apiVersion: palisade.dev/v1
kind: Service
metadata:
  name: orders
  namespace: shop
  labels: {app: orders}
spec:
  ports:
    - {name: grpc, port: 9091, protocol: grpc}
"#;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A running control plane with the shop applied, and its palisadectl config.
async fn shop() -> (ControlPlane, PathBuf) {
    let mut cp = ControlPlane::init("ctl.test").unwrap();
    cp.start().await.unwrap();
    let config = cp.ctl_config();
    let applied = ctl(&config, &["apply", "-f", SHOP]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    (cp, config)
}

fn write_file(cp: &ControlPlane, name: &str, content: &str) -> PathBuf {
    let path = cp.root.path().join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// The orders Service as `get -o json` prints it.
fn orders(config: &Path) -> serde_json::Value {
    let output = ctl(
        config,
        &["get", "service", "orders", "-n", "shop", "-o", "json"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

#[tokio::test]
async fn diff_shows_the_change_exits_1_and_writes_nothing() {
    let (cp, config) = shop().await;
    let file = write_file(&cp, "orders.yaml", ORDERS_MOVED);
    let file = file.to_str().unwrap();
    let before = orders(&config);

    let diff = ctl(&config, &["diff", "-f", file]);

    assert_eq!(diff.status.code(), Some(1), "{}", stderr(&diff));
    let text = stdout(&diff);
    assert!(
        text.starts_with("--- a/Service/shop/orders\n+++ b/Service/shop/orders\n"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with('-') && l.contains("9090")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with('+') && l.contains("9091")),
        "{text}"
    );
    assert_eq!(orders(&config), before);
}

#[tokio::test]
async fn diff_of_what_is_already_applied_is_empty_and_exits_0() {
    let (_cp, config) = shop().await;

    let diff = ctl(&config, &["diff", "-f", SHOP]);

    assert_eq!(diff.status.code(), Some(0), "{}", stderr(&diff));
    assert_eq!(stdout(&diff), "");
}

#[tokio::test]
async fn apply_dry_run_reports_the_change_and_writes_nothing() {
    let (cp, config) = shop().await;
    let file = write_file(&cp, "orders.yaml", ORDERS_MOVED);
    let file = file.to_str().unwrap();
    let before = orders(&config);
    let revision = before["metadata"]["revision"].as_u64().unwrap();

    let dry_run = ctl(&config, &["apply", "--dry-run", "-f", file]);
    let unchanged = orders(&config);
    let applied = ctl(&config, &["apply", "-f", file]);

    assert!(dry_run.status.success(), "{}", stderr(&dry_run));
    assert_eq!(
        stdout(&dry_run),
        format!("Service shop/orders updated (dry run)\nrevision {revision} (dry run)\n")
    );
    assert_eq!(unchanged, before);
    assert!(applied.status.success(), "{}", stderr(&applied));
    assert_eq!(orders(&config)["spec"]["ports"][0]["port"], 9091);
}

#[tokio::test]
async fn get_with_a_label_selector_prints_only_the_matching_resources() {
    let (_cp, config) = shop().await;

    let output = ctl(&config, &["get", "nodes", "-l", "zone!=a", "-o", "json"]);

    assert!(output.status.success(), "{}", stderr(&output));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-2"]);
}

#[tokio::test]
async fn refused_delete_names_what_uses_the_resource_and_exits_1() {
    let (_cp, config) = shop().await;
    let before = orders(&config);

    let output = ctl(&config, &["delete", "service", "orders", "-n", "shop"]);

    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let text = stderr(&output);
    assert!(
        text.starts_with("error: delete refused (failed precondition)"),
        "{text}"
    );
    assert!(text.contains("Workload shop/orders-1"), "{text}");
    assert!(
        text.contains("AuthorizationPolicy shop/orders-from-storefront"),
        "{text}"
    );
    assert_eq!(orders(&config), before);
}

/// The subcommands a completion script must offer.
const SUBCOMMANDS: [&str; 10] = [
    "apply",
    "diff",
    "get",
    "delete",
    "watch",
    "audit",
    "admin",
    "node",
    "whoami",
    "completion",
];

fn completion(shell: &str) -> Output {
    Command::new(binary("palisadectl"))
        .args(["completion", shell])
        .output()
        .unwrap()
}

#[test]
fn bash_completion_registers_palisadectl_and_offers_its_subcommands() {
    let output = completion("bash");

    assert!(output.status.success(), "{}", stderr(&output));
    let script = stdout(&output);
    assert!(script.contains("complete -F _palisadectl"), "{script}");
    for subcommand in SUBCOMMANDS {
        assert!(
            script.contains(subcommand),
            "bash completion lacks {subcommand}"
        );
    }
    assert!(script.contains("--dry-run") && script.contains("--since"));
}

#[test]
fn zsh_completion_declares_palisadectl_and_offers_its_subcommands() {
    let output = completion("zsh");

    assert!(output.status.success(), "{}", stderr(&output));
    let script = stdout(&output);
    assert!(script.starts_with("#compdef palisadectl"), "{script}");
    for subcommand in SUBCOMMANDS {
        assert!(
            script.contains(&format!("'{subcommand}:")),
            "zsh completion lacks {subcommand}"
        );
    }
}

#[test]
fn completion_for_an_unknown_shell_is_a_usage_error() {
    let output = completion("cmd");

    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("invalid value 'cmd'"),
        "{}",
        stderr(&output)
    );
    assert!(output.stdout.is_empty());
}

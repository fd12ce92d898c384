//! Who may do what, set up as an admin would with `palisadectl admin role`
//! and `admin binding` against a real control plane. A second administrator
//! is refused, hearing the permission it lacks, until a binding gives it a
//! custom role; the binding holds in its namespace only and for the role's
//! verbs only; deleting the binding takes the access away again.

use std::path::{Path, PathBuf};
use std::process::Output;

use palisade_tests::{ControlPlane, Credentials, last_audit, palisadectl as ctl};

const SHOP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples/shop.yaml");
/// A Service in a second namespace.
const BILLING: &str = "kind: Service\nmetadata: {name: ledger, namespace: billing}\n\
                       spec: {ports: [{port: 8080, protocol: http}]}\n";
/// The second administrator.
const ALICE: &str = "spiffe://access.test/admin/alice";

/// A control plane holding the shop and the billing Service, with a
/// palisadectl config for the first admin and one for alice.
struct Access {
    cp: ControlPlane,
    admin: PathBuf,
    alice: PathBuf,
}

async fn started() -> Access {
    let mut cp = ControlPlane::init("access.test").unwrap();
    let alice = cp.issue_admin("alice").unwrap();
    cp.start().await.unwrap();

    let admin = cp.ctl_config();
    let alice = ctl_config_for(&cp, "alice", &alice);
    let billing = cp.root.path().join("billing.yaml");
    std::fs::write(&billing, BILLING).unwrap();
    succeeds(ctl(&admin, &["apply", "-f", SHOP]));
    succeeds(ctl(&admin, &["apply", "-f", billing.to_str().unwrap()]));
    Access { cp, admin, alice }
}

/// Writes a palisadectl config file for `credentials`.
fn ctl_config_for(cp: &ControlPlane, name: &str, credentials: &Credentials) -> PathBuf {
    let path = cp.root.path().join(format!("palisadectl-{name}.toml"));
    let text = format!(
        "server = \"https://{}\"\nca = {:?}\ncert = {:?}\nkey = {:?}\n",
        cp.address(),
        credentials.ca,
        credentials.cert.as_ref().expect("a certificate"),
        credentials.key.as_ref().expect("a key"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Checks that palisadectl succeeded; returns what it printed.
#[track_caller]
fn succeeds(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "palisadectl failed: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Checks that alice was refused for lacking `permission`.
#[track_caller]
fn refused(output: Output, permission: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "palisadectl succeeded: {stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    let missing = format!("{ALICE} lacks permission {permission}");
    assert!(
        stderr.contains(&missing),
        "expected {missing:?} in: {stderr}"
    );
}

/// Runs palisadectl with the words of `line` as its arguments.
fn run(config: &Path, line: &str) -> Output {
    let args: Vec<&str> = line.split_whitespace().collect();
    ctl(config, &args)
}

/// Alice reads the orders Service.
fn alice_gets_orders(alice: &Path) -> Output {
    run(alice, "get service orders -n shop -o name")
}

const ORDERS_IN_SHOP: &str = r#""get" on Service in namespace "shop""#;

/// The first admin creates a role to read Services and binds alice to it
/// in the shop namespace.
fn bind_alice_to_read_services_in_shop(admin: &Path) {
    let role = "admin role create service-reader --verb get,list --kind Service";
    let binding = format!(
        "admin binding create alice-reads-shop --role service-reader --subject {ALICE} \
         --namespace shop"
    );

    succeeds(run(admin, role));
    succeeds(run(admin, &binding));
}

#[tokio::test]
async fn a_custom_role_bound_in_one_namespace_grants_its_verbs_there_only() {
    let access = started().await;
    refused(alice_gets_orders(&access.alice), ORDERS_IN_SHOP);
    let mut admin = access.cp.admin().await.unwrap();
    let audit = last_audit(&mut admin).await;
    assert_eq!(
        (audit.actor.as_str(), audit.outcome.as_str()),
        (ALICE, "denied")
    );

    bind_alice_to_read_services_in_shop(&access.admin);

    let orders = succeeds(alice_gets_orders(&access.alice));
    assert_eq!(orders.trim(), "service/orders");
    let services = succeeds(run(&access.alice, "get services -n shop -o name"));
    assert_eq!(services, "service/orders\nservice/storefront\n");
    refused(
        run(&access.alice, "get service ledger -n billing"),
        r#""get" on Service in namespace "billing""#,
    );
    refused(
        run(&access.alice, "get workloads -n shop"),
        r#""list" on Workload in namespace "shop""#,
    );
    refused(
        ctl(&access.alice, &["apply", "-f", SHOP]),
        r#""apply" on Node"#,
    );
}

#[tokio::test]
async fn roles_and_bindings_are_listed_and_deleting_the_binding_takes_the_access_away() {
    let access = started().await;
    bind_alice_to_read_services_in_shop(&access.admin);
    succeeds(alice_gets_orders(&access.alice));

    let roles = succeeds(run(&access.admin, "admin role list -o name"));
    let bindings = succeeds(run(&access.admin, "admin binding list -o json"));
    assert_eq!(roles, "adminrole/service-reader\n");
    let bindings: serde_json::Value = serde_json::from_str(&bindings).unwrap();
    let items = bindings["items"].as_array().unwrap();
    let alices = items
        .iter()
        .find(|item| item["metadata"]["name"] == "alice-reads-shop");
    let spec = &alices.expect("alice's binding is listed")["spec"];
    assert_eq!(spec["role"], "service-reader", "{bindings}");
    assert_eq!(spec["subjects"], serde_json::json!([ALICE]), "{bindings}");
    assert_eq!(
        spec["namespaces"],
        serde_json::json!(["shop"]),
        "{bindings}"
    );

    let role_in_use = run(&access.admin, "admin role delete service-reader");
    let stderr = String::from_utf8_lossy(&role_in_use.stderr);
    assert!(!role_in_use.status.success(), "{stderr}");
    assert!(
        stderr.contains("AdminRole service-reader is used by AdminBinding alice-reads-shop"),
        "{stderr}"
    );

    succeeds(run(&access.admin, "admin binding delete alice-reads-shop"));
    refused(alice_gets_orders(&access.alice), ORDERS_IN_SHOP);
    succeeds(run(&access.admin, "admin role delete service-reader"));
    let roles = succeeds(run(&access.admin, "admin role list -o name"));
    assert_eq!(roles, "");
}

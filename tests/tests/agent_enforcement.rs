//! Enforcement across three real agents (see `palisade_tests::bed`):
//! allowed calls go through outbound and inbound with the caller's
//! verified identity, everything else is refused, and policy changes and
//! node revocations reach every agent and cut what they no longer allow.
//! Each agent's calls leave from its host's address, which IP-block rules
//! judge.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use palisade_tests::bed::{
    Bed, Limits, NAMESPACE, Outcome, REFUSED_BY_POLICY, allowed, baseline_calls, denied, id,
    no_route, refused_at_handshake,
};
use palisade_tests::identity::{TestNode, join_token};
use palisade_tests::{ControlPlane, apply};

/// How long agents get to close a connection they no longer allow.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// What an agent logs of an established connection that a change closed.
const CUT: &str = "closed by a policy change";

/// A control plane of another trust domain with the same names as the
/// bed's: its `shop/web` is not the bed's.
const ELSEWHERE: &str = r#"
kind: Node
metadata: {name: node-a}
spec: {}
---
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{port: 8080, protocol: tcp}]}
---
kind: Workload
metadata: {name: web-1, namespace: shop}
spec: {service: web, node: node-a, appPort: 8080, inboundPort: 15008}
"#;

/// A certificate chain and key for `spiffe://elsewhere.test/ns/shop/sa/web`,
/// issued by another control plane through its identity API.
async fn foreign_web_identity() -> (String, String) {
    let mut elsewhere = ControlPlane::init("elsewhere.test").unwrap();
    elsewhere.start().await.unwrap();
    let mut admin = elsewhere.admin().await.unwrap();
    apply(&mut admin, ELSEWHERE).await.unwrap();
    let token = join_token(&mut admin, "node-a", 0).await.unwrap();
    let node = TestNode::attest(&elsewhere, "node-a", &token)
        .await
        .unwrap();

    let spiffe_id = "spiffe://elsewhere.test/ns/shop/sa/web";
    let (key, issued) = node
        .sign(&elsewhere, "shop", "web-1", spiffe_id)
        .await
        .unwrap();
    (issued.certificate_chain_pem, key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_calls_carry_the_verified_caller_and_every_other_call_is_refused() {
    let (mut bed, (foreign_chain, foreign_key)) =
        tokio::join!(Bed::start(Limits::default()), foreign_web_identity());
    let (web_chain, web_key) = bed.workload_identity("web");
    let denied_before = bed.agent("node-c").counter("inbound_denied");

    let through_agents = bed.check(&baseline_calls()).await;
    let reached_before = bed.app("orders").connections();
    let with_web_certificate = bed
        .call_direct("orders", Some((&web_chain, &web_key)))
        .await;
    let without_certificate = bed.call_direct("orders", None).await;
    let from_elsewhere = bed
        .call_direct("orders", Some((&foreign_chain, &foreign_key)))
        .await;
    let reached = bed.app("orders").callers()[reached_before..].to_vec();
    let ledger_reached = bed.app("ledger").connections();
    let web_to_ledger = bed
        .call_direct("ledger", Some((&web_chain, &web_key)))
        .await;

    through_agents.unwrap();
    assert_eq!(
        with_web_certificate,
        Outcome::Answered { caller: id("web") },
        "a direct call with a good certificate is the control"
    );
    assert!(
        matches!(without_certificate, Outcome::HandshakeFailed(_)),
        "{without_certificate}"
    );
    assert!(
        matches!(from_elsewhere, Outcome::HandshakeFailed(_)),
        "{from_elsewhere}"
    );
    assert_eq!(reached, [id("web")], "only the control reached orders");
    let web = caller("web");
    let by_policy = [REFUSED_BY_POLICY, &web, "rule=payments-not-web/0 "];
    assert_eq!(bed.agent("node-c").wait_for_lines(&by_policy, 1).await, 1);

    // A good certificate that no policy of ledger allows: the handshake
    // completes, then ledger's agent refuses by default deny.
    assert!(
        matches!(web_to_ledger, Outcome::Closed(_)),
        "{web_to_ledger}"
    );
    assert_eq!(bed.app("ledger").connections(), ledger_reached);
    let by_default = [
        REFUSED_BY_POLICY,
        &web,
        "workload=shop/ledger-1",
        "rule=default deny ",
    ];
    assert_eq!(bed.agent("node-b").wait_for_lines(&by_default, 1).await, 1);
    let at_handshake = ["TLS handshake failed; connection refused", "shop/orders-1"];
    assert_eq!(
        bed.agent("node-b").wait_for_lines(&at_handshake, 2).await,
        2
    );

    // What the foreign certificate claimed is logged, marked unverified.
    let claimed = "unverified_spiffe_id=\"spiffe://elsewhere.test/ns/shop/sa/web\"";
    let foreign = [at_handshake[0], claimed, "unverified_serial="];
    assert_eq!(bed.agent("node-b").lines_with(&foreign), 1);

    // Refusals are counted in each agent's status file: web -> payments
    // at node-c, the two handshakes at node-b.
    let node_c = bed.agent("node-c");
    let denied = node_c
        .wait_for_counter("inbound_denied", denied_before + 1)
        .await;
    assert_eq!(denied, denied_before + 1);
    assert!(node_c.counter("inbound_allowed") >= 3);
    let node_b = bed.agent("node-b");
    assert_eq!(
        node_b.wait_for_counter("inbound_handshake_failed", 2).await,
        2
    );

    // Nothing an agent logged, refusals included, holds key material: no
    // PEM key header and no line of any key in its data directory.
    for agent in bed.agents() {
        let log = agent.log();
        let keys = key_lines(&agent.data_dir);
        assert!(keys.len() >= 2, "{}: node and workload keys", agent.node);
        assert!(!log.contains("PRIVATE KEY"), "{}", agent.node);
        let leaked: Vec<&String> = keys.iter().filter(|l| log.contains(*l)).collect();
        assert!(leaked.is_empty(), "{}: key lines in the log", agent.node);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_reaches_every_agent_and_closes_the_connections_it_no_longer_allows() {
    let mut bed = Bed::start(Limits::default()).await;
    let mut web_to_orders = bed.open("web", "orders").await;
    let mut batch_to_orders = bed.open("batch", "orders").await;
    let mut ledger_to_payments = bed.open("ledger", "payments").await;

    // One change for each node: orders drops web (node-b), payments
    // refuses ledger too (node-c), and web, which took no one, takes
    // orders (node-a).
    let change = [
        Bed::policy("orders-callers", "orders", "ALLOW", &["batch"]),
        Bed::policy("payments-not-web", "payments", "DENY", &["web", "ledger"]),
        Bed::policy("web-callers", "web", "ALLOW", &["orders"]),
    ]
    .concat();
    let mark = bed.agent("node-b").log().len();
    let revision = bed.apply(&change);
    bed.wait_for_revision(&["node-a", "node-b", "node-c"], revision)
        .await;
    bed.wait_for_listeners(&[("orders", "web")]).await;

    // node-b's part of the change is in two types, orders' policies and
    // web's endpoints: they came as one group and were applied in one step.
    let since = bed.agent("node-b").log()[mark..].to_owned();
    let versions: Vec<&str> = since
        .lines()
        .filter(|l| l.contains("xDS response"))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("version=")))
        .collect();
    let group = [
        format!("version={revision}+1"),
        format!("version={revision}"),
    ];
    assert_eq!(versions, group, "{since}");
    let applied: Vec<&str> = since
        .lines()
        .filter(|l| l.contains("configuration applied"))
        .collect();
    assert_eq!(applied.len(), 1, "{since}");
    assert!(
        applied[0].contains(&format!("revision={revision} ")),
        "{since}"
    );

    web_to_orders.closed_within(CLOSE_WITHIN).await.unwrap();
    ledger_to_payments
        .closed_within(CLOSE_WITHIN)
        .await
        .unwrap();
    batch_to_orders.exchange().await.unwrap();
    // web keeps its listener for orders, which batch on the same node may
    // still call; orders' agent refuses web by default deny.
    let after = [
        denied("web", "orders", "default deny"),
        allowed("batch", "orders"),
        denied("ledger", "payments", "payments-not-web/0"),
        allowed("orders", "payments"),
        allowed("orders", "web"),
        no_route("batch", "web"),
        allowed("orders", "ledger"),
    ];
    bed.check(&after).await.unwrap();
    let (web, ledger) = (caller("web"), caller("ledger"));
    assert_eq!(bed.agent("node-b").wait_for_lines(&[&web, CUT], 1).await, 1);
    assert_eq!(
        bed.agent("node-c").wait_for_lines(&[&ledger, CUT], 1).await,
        1
    );
    assert_eq!(bed.agent("node-b").lines_with(&[CUT]), 1, "batch's stayed");
}

/// What an agent logs when its policies in audit mode would have decided
/// a connection otherwise.
const WOULD: &str = "policies in audit mode would decide otherwise";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_in_audit_mode_change_no_decision_and_the_agents_log_what_they_would_do() {
    let mut bed = Bed::start(Limits::default()).await;

    // Trials: web would take orders, the only ALLOW policy of web; orders
    // would refuse batch, which it takes.
    let trials = [
        Bed::in_audit_mode(&Bed::policy("web-trial", "web", "ALLOW", &["orders"])),
        Bed::in_audit_mode(&Bed::policy("orders-trial", "orders", "DENY", &["batch"])),
    ]
    .concat();
    let revision = bed.apply(&trials);
    bed.wait_for_revision(&["node-a", "node-b"], revision).await;
    bed.wait_for_listeners(&[("orders", "web")]).await;

    // Everything is allowed or refused as before. orders -> web is still
    // refused, now by web's agent, since a policy mentions orders.
    let mut calls = baseline_calls();
    calls.push(denied("orders", "web", "default deny"));
    bed.check(&calls).await.unwrap();

    let (orders, web, batch) = (caller("orders"), caller("web"), caller("batch"));
    let would_allow = [
        WOULD,
        &orders,
        "workload=shop/web-1",
        "decided=deny rule=default deny would=allow would_rule=web-trial/0",
    ];
    assert_eq!(bed.agent("node-a").wait_for_lines(&would_allow, 1).await, 1);
    let node_b = bed.agent("node-b");
    let would_deny = [
        WOULD,
        &batch,
        "workload=shop/orders-1",
        "decided=allow rule=orders-callers/0 would=deny would_rule=orders-trial/0",
    ];
    assert_eq!(node_b.wait_for_lines(&would_deny, 1).await, 1);
    let web_to_orders = [WOULD, &web, "workload=shop/orders-1"];
    assert_eq!(
        node_b.lines_with(&web_to_orders),
        0,
        "the trial left web alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_nodes_workloads_reach_no_one_once_the_deny_list_arrives() {
    let mut bed = Bed::start(Limits::default()).await;
    let (web_serial, batch_serial) = (bed.workload_serial("web"), bed.workload_serial("batch"));
    let mut batch_to_orders = bed.open("batch", "orders").await;
    let mut orders_to_payments = bed.open("orders", "payments").await;

    let revoked = bed.revoke("node-a", "taken out of service by the test");
    bed.wait_for_revision(&["node-b", "node-c"], revoked.revision)
        .await;

    assert!(
        revoked.serials.contains(&web_serial) && revoked.serials.contains(&batch_serial),
        "web {web_serial} and batch {batch_serial} not in {:?}",
        revoked.serials
    );
    batch_to_orders.closed_within(CLOSE_WITHIN).await.unwrap();
    orders_to_payments.exchange().await.unwrap();
    let after = [
        refused_at_handshake("web", "orders"),
        refused_at_handshake("batch", "orders"),
        refused_at_handshake("batch", "payments"),
        allowed("orders", "ledger"),
        allowed("orders", "payments"),
        allowed("ledger", "payments"),
    ];
    bed.check(&after).await.unwrap();
    let batch = caller("batch");
    assert_eq!(
        bed.agent("node-b").wait_for_lines(&[&batch, CUT], 1).await,
        1
    );
    let denied = ["TLS handshake failed; connection refused", "Revoked"];
    let node_b = bed.agent("node-b").wait_for_lines(&denied, 2).await;
    assert_eq!(node_b, 2, "web and batch refused by orders' agent");
    let web_presented = format!("unverified_serial=\"{web_serial}\"");
    let web_refused = [denied[0], denied[1], &web_presented];
    assert_eq!(bed.agent("node-b").lines_with(&web_refused), 1);
    let node_c = bed.agent("node-c").wait_for_lines(&denied, 1).await;
    assert_eq!(node_c, 1, "batch refused by payments' agent");
    bed.agent("node-a").assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_agents_close_their_connections_to_a_revoked_nodes_workloads() {
    let mut bed = Bed::start(Limits::default()).await;
    let web_callers = Bed::policy("web-callers", "web", "ALLOW", &["orders"]);
    let revision = bed.apply(&web_callers);
    bed.wait_for_revision(&["node-a", "node-b"], revision).await;
    bed.wait_for_listeners(&[("orders", "web")]).await;
    let web_serial = bed.workload_serial("web");
    let mut orders_to_web = bed.open("orders", "web").await;
    let mut orders_to_payments = bed.open("orders", "payments").await;

    let revoked = bed.revoke("node-a", "taken out of service by the test");
    bed.wait_for_revision(&["node-b", "node-c"], revoked.revision)
        .await;

    assert!(revoked.serials.contains(&web_serial), "{revoked:?}");
    orders_to_web.closed_within(CLOSE_WITHIN).await.unwrap();
    orders_to_payments.exchange().await.unwrap();

    // orders' own agent closed it, on the deny list it received.
    let server = format!("server={}", id("web"));
    let serial = format!("serial={web_serial}");
    let closed_by_caller = [
        "outbound connection closed: no longer allowed",
        "workload=shop/orders-1",
        "service=shop/web",
        &server,
        &serial,
        "Revoked",
    ];
    let node_b = bed.agent("node-b");
    assert_eq!(node_b.wait_for_lines(&closed_by_caller, 1).await, 1);
    assert!(node_b.wait_for_counter("outbound_revoked", 1).await >= 1);

    // web's agent, cut off by the control plane, never learned of it.
    let node_a = bed.agent("node-a");
    assert!(
        node_a.revision() < revoked.revision,
        "{:?}",
        node_a.status()
    );
    assert_eq!(node_a.lines_with(&["no longer allowed"]), 0);
    assert_eq!(node_a.lines_with(&[CUT]), 0);
    node_a.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_block_rule_allows_the_workloads_of_one_host_and_no_one_else() {
    let mut bed = Bed::start(Limits::default()).await;
    let (node_a, node_b) = (host_address(&bed, "node-a"), host_address(&bed, "node-b"));

    // orders takes callers from node-a's address, whoever they are.
    let block = format!("{node_a}/32");
    let by_address = by_ip_block("orders-callers", "orders", "ALLOW", &block);
    let revision = bed.apply(&by_address);
    bed.wait_for_revision(&["node-b"], revision).await;
    bed.wait_for_listeners(&[("ledger", "orders"), ("payments", "orders")])
        .await;
    let reached_before = bed.app("orders").connections();

    // web and batch run on node-a, batch at an address of its own; ledger
    // runs on node-b beside orders, payments on node-c. Calls leave from
    // the caller's host address.
    let calls = [
        allowed("web", "orders"),
        allowed("batch", "orders"),
        denied("ledger", "orders", "default deny"),
        denied("payments", "orders", "default deny"),
    ];
    bed.check(&calls).await.unwrap();

    let sources = sources_since(&bed, "orders", reached_before);
    assert_eq!(sources, [Some(node_a), Some(node_a)], "web, then batch");
    let from_node_b = format!("peer={node_b}:");
    let ledger = [REFUSED_BY_POLICY, &caller("ledger"), &from_node_b];
    assert_eq!(bed.agent("node-b").lines_with(&ledger), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_block_deny_rule_refuses_callers_that_an_identity_rule_allows() {
    let mut bed = Bed::start(Limits::default()).await;
    let (node_a, node_b) = (host_address(&bed, "node-a"), host_address(&bed, "node-b"));
    let reached_before = bed.app("payments").connections();
    // payments-callers takes all of shop by identity: orders from node-b,
    // batch from node-a.
    let before = [allowed("orders", "payments"), allowed("batch", "payments")];
    bed.check(&before).await.unwrap();
    let sources_before = sources_since(&bed, "payments", reached_before);

    // Now node-b's address is refused, whoever calls from it.
    let block = format!("{node_b}/32");
    let deny = by_ip_block("payments-not-node-b", "payments", "DENY", &block);
    let revision = bed.apply(&deny);
    bed.wait_for_revision(&["node-c"], revision).await;
    let reached_before = bed.app("payments").connections();

    let after = [
        denied("orders", "payments", "payments-not-node-b/0"),
        denied("ledger", "payments", "payments-not-node-b/0"),
        allowed("batch", "payments"),
        denied("web", "payments", "payments-not-web/0"),
    ];
    bed.check(&after).await.unwrap();

    assert_eq!(sources_before, [Some(node_b), Some(node_a)]);
    let sources = sources_since(&bed, "payments", reached_before);
    assert_eq!(sources, [Some(node_a)], "only batch reached payments");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_rule_allows_callers_only_on_the_service_port_it_names() {
    let mut bed = Bed::start(Limits::default()).await;
    let port = bed.outbound("orders", "ledger").port();
    let other = if port == u16::MAX { port - 1 } else { port + 1 };
    let (orders_chain, orders_key) = bed.workload_identity("orders");

    // ledger takes orders on another port only: a call with orders'
    // certificate completes the handshake and is refused by default deny.
    let revision = bed.apply(&on_port("ledger-callers", "ledger", "orders", other));
    bed.wait_for_revision(&["node-b"], revision).await;
    let reached = bed.app("ledger").connections();
    let refused = bed
        .call_direct("ledger", Some((&orders_chain, &orders_key)))
        .await;
    assert!(matches!(refused, Outcome::Closed(_)), "{refused}");
    assert_eq!(bed.app("ledger").connections(), reached);
    let by_default = [REFUSED_BY_POLICY, &caller("orders"), "rule=default deny "];
    assert_eq!(bed.agent("node-b").wait_for_lines(&by_default, 1).await, 1);

    // On ledger's own port, orders is taken again.
    let revision = bed.apply(&on_port("ledger-callers", "ledger", "orders", port));
    bed.wait_for_revision(&["node-b"], revision).await;
    bed.check(&[allowed("orders", "ledger")]).await.unwrap();
}

/// An ALLOW policy for `target` taking `caller` on `port` only.
fn on_port(name: &str, target: &str, caller: &str, port: u16) -> String {
    format!(
        "kind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: {NAMESPACE}}}\n\
         spec:\n  targetService: {target}\n  rules:\n\
         \x20   - from: [{{identities: [\"{}\"]}}]\n\
         \x20     to: [{{ports: [{port}]}}]\n",
        id(caller)
    )
}

/// An AuthorizationPolicy document for `target` with one rule whose only
/// source is the address block `block`; `action` is ALLOW or DENY.
fn by_ip_block(name: &str, target: &str, action: &str, block: &str) -> String {
    format!(
        "kind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: {NAMESPACE}}}\n\
         spec:\n  targetService: {target}\n  action: {action}\n  rules:\n\
         \x20   - from: [{{ipBlocks: [\"{block}\"]}}]\n---\n"
    )
}

/// The address of the host `node`.
fn host_address(bed: &Bed, node: &str) -> IpAddr {
    bed.host_address(node).into()
}

/// The source address of each connection that reached `service`'s
/// application after its first `from`, as its PROXY header gave it.
fn sources_since(bed: &Bed, service: &str, from: usize) -> Vec<Option<IpAddr>> {
    let sources = bed.app(service).sources();
    sources[from..].iter().map(|s| s.map(|s| s.ip())).collect()
}

/// How an agent's access log names the caller `service`.
fn caller(service: &str) -> String {
    format!("caller={}", id(service))
}

/// The base64 lines of every private key file (`*key*.pem`) under `dir`.
fn key_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            } else if name.contains("key") && name.ends_with(".pem") {
                let pem = std::fs::read_to_string(&path).unwrap();
                let body = pem.lines().filter(|l| !l.starts_with("-----"));
                lines.extend(body.map(str::to_owned));
            }
        }
    }
    lines
}

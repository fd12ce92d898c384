//! Fleet status: what `palisadectl status` and the admin API say of each
//! connected stream: acknowledged revisions, how far behind, the last NACK.

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use palisade_tests::xds::shop::{self, MOVED, Shop};
use palisade_tests::xds::{
    Delta, delta_ack, delta_nack, delta_request, envoy_node, sotw_ack, sotw_request, types,
};
use palisade_tests::{apply, palisadectl, pb};

/// An agent's delta stream subscribed to every agent type, all acknowledged.
async fn converged_agent(bed: &Shop) -> Delta {
    let mut stream = bed.delta("web-1", types::AGENT[0], &["*"]).await;
    for type_url in &types::AGENT[1..] {
        stream
            .send(delta_request(None, type_url, &["*"], &[]))
            .await;
    }
    let answered = stream.ack_until_quiet().await;
    assert!(answered.len() >= types::AGENT.len(), "{answered:?}");
    stream
}

/// A converged agent of web-1 that has been sent, and not yet acknowledged,
/// the update of [`MOVED`].
async fn agent_sent_moved(bed: &mut Shop) -> (Delta, DeltaDiscoveryResponse) {
    let mut agent = converged_agent(bed).await;
    apply(&mut bed.admin, MOVED).await.unwrap();
    let update = agent.recv().await.unwrap();
    (agent, update)
}

/// The value in `column` of the row of `palisadectl status` whose NODE is
/// `node`.
fn status_cell(output: &str, node: &str, column: &str) -> String {
    let mut lines = output.lines();
    let header = lines.next().expect("a header");
    let start = header.find(column).expect("the column");
    let row = lines
        .find(|l| l.starts_with(node))
        .unwrap_or_else(|| panic!("no row for {node}:\n{output}"));
    row.get(start..)
        .unwrap_or_default()
        .split("  ")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn ctl_status(bed: &Shop) -> String {
    let output = palisadectl(&bed.cp.ctl_config(), &["status"]);
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

fn assert_every_type_current(stream: &pb::XdsStream) {
    for t in &stream.types {
        assert_eq!(
            (t.sent_revision, t.acked_revision),
            (stream.view_revision, stream.view_revision),
            "{} is not current: {stream:#?}",
            t.type_url
        );
    }
}

#[tokio::test]
async fn converged_agent_is_nothing_behind_after_a_change_to_one_of_its_types() {
    let mut bed = shop::start().await;
    let mut agent = converged_agent(&bed).await;
    let before = bed.fleet("web-1").await.streams[0].view_revision;

    apply(&mut bed.admin, MOVED).await.unwrap();
    let updates = agent.ack_until_quiet().await;

    let changed: Vec<&str> = updates.iter().map(|u| u.type_url.as_str()).collect();
    assert_eq!(changed, [types::WORKLOAD], "only web-1's workloads changed");
    let status = bed.fleet("web-1").await;
    let stream = &status.streams[0];
    assert!(stream.view_revision > before);
    assert_eq!(stream.types.len(), types::AGENT.len());
    assert_every_type_current(stream);
    let text = ctl_status(&bed);
    assert_eq!(status_cell(&text, "web-1", "BEHIND"), "0", "{text}");
}

#[tokio::test]
async fn sotw_agent_is_nothing_behind_after_a_change_to_one_of_its_types() {
    let mut bed = shop::start().await;
    let mut stream = bed.sotw("web-1", types::WORKLOAD, &[]).await;
    let workloads = stream.recv().await.unwrap();
    stream.send(sotw_ack(&workloads, &[])).await;
    let rules = sotw_request(None, types::AUTHORIZATION, &[]);
    let rules = stream.ask(rules).await.unwrap();
    stream.send(sotw_ack(&rules, &[])).await;

    apply(&mut bed.admin, MOVED).await.unwrap();
    let update = stream.recv().await.unwrap();
    assert_eq!(update.type_url, types::WORKLOAD);
    stream.send(sotw_ack(&update, &[])).await;
    assert!(stream.quiet().await, "the rules did not change");

    let status = bed.fleet("web-1").await;
    assert_every_type_current(&status.streams[0]);
}

#[tokio::test]
async fn unacknowledged_response_shows_behind_until_it_is_acknowledged() {
    let mut bed = shop::start().await;
    let (mut agent, update) = agent_sent_moved(&mut bed).await;
    let text = ctl_status(&bed);

    assert_ne!(status_cell(&text, "web-1", "BEHIND"), "0", "{text}");
    agent.send(delta_ack(&update)).await;
    assert!(agent.quiet().await);
    let text = ctl_status(&bed);
    assert_eq!(status_cell(&text, "web-1", "BEHIND"), "0", "{text}");
}

#[tokio::test]
async fn delta_nack_shows_in_status_with_its_error() {
    let mut bed = shop::start().await;
    let (mut agent, update) = agent_sent_moved(&mut bed).await;

    agent
        .send(delta_nack(&update, "orders-2: port 9091 is taken"))
        .await;
    assert!(agent.quiet().await, "the rejected version is not resent");

    let workloads = bed.workload_status("web-1").await;
    assert_eq!(workloads.last_nack_error, "orders-2: port 9091 is taken");
    assert_eq!(workloads.last_nack_revision, update.system_version_info);
    let text = ctl_status(&bed);
    assert_eq!(
        status_cell(&text, "web-1", "LAST NACK"),
        format!(
            "Workload@{}: orders-2: port 9091 is taken",
            update.system_version_info
        ),
        "{text}"
    );
    assert_ne!(
        status_cell(&text, "web-1", "BEHIND"),
        "0",
        "a client that rejected the view is behind it: {text}"
    );
}

/// Every (type, name, version) that `responses` left the client holding,
/// with the type shortened as `palisadectl status` prints it, sorted.
fn held_rows(responses: &[DeltaDiscoveryResponse]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for response in responses {
        let short = response.type_url.rsplit('.').next().unwrap().to_owned();
        for resource in &response.resources {
            rows.push(vec![
                short.clone(),
                resource.name.clone(),
                resource.version.clone(),
            ]);
        }
    }
    rows.sort();
    rows
}

/// The rows of the table under the line of `palisadectl status NODE` that
/// starts with `stream`, each split into its cells.
fn stream_rows(output: &str, stream: &str) -> Vec<Vec<String>> {
    let mut lines = output.lines().skip_while(|l| !l.starts_with(stream));
    assert!(lines.next().is_some(), "no stream {stream:?}:\n{output}");
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with("TYPE"), "{output}");
    let mut rows: Vec<Vec<String>> = lines
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .take_while(|cells| cells.len() == 3)
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn status_of_a_node_shows_what_each_of_its_streams_holds() {
    let bed = shop::start().await;
    let mut agent = bed.delta("web-1", types::WORKLOAD, &["*"]).await;
    agent
        .send(delta_request(None, types::AUTHORIZATION, &["*"], &[]))
        .await;
    let agent_held = held_rows(&agent.ack_until_quiet().await);
    let channel = bed.proxy_channel("orders-1", "orders").await;
    let first = DeltaDiscoveryRequest {
        node: Some(envoy_node("shop/orders-1")),
        ..delta_request(None, types::LISTENER, &[], &[])
    };
    let mut envoy = Delta::open(channel, first).await.unwrap();
    let envoy_held = held_rows(&envoy.ack_until_quiet().await);

    let output = palisadectl(&bed.cp.ctl_config(), &["status", "web-1"]);
    let idle = palisadectl(&bed.cp.ctl_config(), &["status", "web-2"]);

    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let agent_rows = stream_rows(&text, "agent (delta, stream ");
    let envoy_rows = stream_rows(&text, "envoy shop/orders-1 (delta, stream ");
    assert_eq!(agent_rows.len(), 2, "a workload and its rules: {text}");
    assert_eq!(agent_rows, agent_held, "{text}");
    assert_eq!(envoy_rows, envoy_held, "{text}");
    assert!(
        envoy_rows
            .iter()
            .any(|row| row[1] == "inbound|15008|shop/orders-1"),
        "{text}"
    );
    assert!(!text.contains("storefront"), "web-2's resources: {text}");
    let idle = String::from_utf8(idle.stdout).unwrap();
    assert_eq!(idle, "node web-2 has no xDS stream connected\n");
}

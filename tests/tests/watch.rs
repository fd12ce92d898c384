//! Watch: changes arrive in revision order; a watch that starts from an
//! older revision first replays the change log, then follows live writes;
//! a watch from revision 0 sees only what happens after it starts.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use palisade_tests::pb::ChangeAction::{Created, Deleted, Updated};
use palisade_tests::{Admin, ControlPlane, apply, binary, pb, revision};
use tonic::Streaming;

/// How long a test waits for one event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

async fn started() -> (ControlPlane, Admin) {
    let mut cp = ControlPlane::init("watch.test").unwrap();
    cp.start().await.unwrap();
    let client = cp.admin().await.unwrap();
    (cp, client)
}

fn node(name: &str, address: &str) -> String {
    format!("kind: Node\nmetadata: {{name: {name}}}\nspec: {{address: {address}}}\n")
}

async fn watch(client: &mut Admin, after_revision: u64, kind: &str) -> Streaming<pb::WatchEvent> {
    let request = pb::WatchRequest {
        after_revision,
        kind: kind.into(),
        namespace: String::new(),
    };
    client.watch(request).await.unwrap().into_inner()
}

/// The next `count` events as (revision, action, name).
async fn next_events(
    events: &mut Streaming<pb::WatchEvent>,
    count: usize,
) -> Vec<(u64, pb::ChangeAction, String)> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let event = tokio::time::timeout(EVENT_TIMEOUT, events.message())
            .await
            .unwrap_or_else(|_| panic!("no event after {seen:?}"))
            .unwrap()
            .expect("the stream ended");
        let name = event.resource.as_ref().unwrap().name.clone();
        seen.push((event.revision, event.action(), name));
    }
    seen
}

/// Applies `content` and returns the revision it was written at.
async fn write(client: &mut Admin, content: &str) -> u64 {
    apply(client, content).await.unwrap().revision
}

async fn delete_node(client: &mut Admin, name: &str) -> u64 {
    let request = pb::DeleteRequest {
        kind: "Node".into(),
        name: name.into(),
        ..Default::default()
    };
    client.delete(request).await.unwrap().into_inner().revision
}

#[tokio::test]
async fn watch_from_an_older_revision_replays_the_log_then_follows_live_changes() {
    let (_cp, mut client) = started().await;
    let start = revision(&mut client).await.unwrap();
    let r1 = write(&mut client, &node("n1", "10.0.0.1")).await;
    let pair = format!("{}---\n{}", node("n2", "10.0.0.2"), node("n3", "10.0.0.3"));
    let r2 = write(&mut client, &pair).await;
    let r3 = write(&mut client, &node("n1", "10.0.0.9")).await;
    let r4 = delete_node(&mut client, "n2").await;

    let mut events = watch(&mut client, start, "Node").await;
    let replayed = next_events(&mut events, 5).await;
    let r5 = write(&mut client, &node("n4", "10.0.0.4")).await;
    let live = next_events(&mut events, 1).await;

    assert_eq!(
        replayed,
        [
            (r1, Created, "n1".into()),
            (r2, Created, "n2".into()),
            (r2, Created, "n3".into()),
            (r3, Updated, "n1".into()),
            (r4, Deleted, "n2".into()),
        ]
    );
    assert!(start < r1 && r1 < r2 && r2 < r3 && r3 < r4 && r4 < r5);
    assert_eq!(live, [(r5, Created, "n4".into())]);
}

#[tokio::test]
async fn watch_from_revision_zero_sees_only_later_changes() {
    let (_cp, mut client) = started().await;
    apply(&mut client, &node("old", "10.0.0.1")).await.unwrap();

    let mut events = watch(&mut client, 0, "Node").await;
    let reply = apply(&mut client, &node("new", "10.0.0.2")).await.unwrap();

    let seen = next_events(&mut events, 1).await;
    assert_eq!(seen, [(reply.revision, Created, "new".into())]);
}

#[tokio::test]
async fn watch_filtered_by_kind_skips_other_kinds() {
    let (_cp, mut client) = started().await;
    let start = revision(&mut client).await.unwrap();
    let service =
        "kind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n";
    apply(&mut client, service).await.unwrap();
    let r2 = write(&mut client, &node("n1", "10.0.0.1")).await;

    let mut events = watch(&mut client, start, "Node").await;

    let seen = next_events(&mut events, 1).await;
    assert_eq!(seen, [(r2, Created, "n1".into())]);
}

/// More revisions than the server reads from its change log at once.
const LONG_HISTORY: usize = 600;
const WRITERS: usize = 6;

#[tokio::test]
async fn watch_from_long_ago_replays_every_revision_once_and_in_order() {
    let (cp, mut client) = started().await;
    let start = revision(&mut client).await.unwrap();
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let client = cp.admin().await.unwrap();
        writers.push(tokio::spawn(write_nodes(client, writer)));
    }
    let mut written = Vec::new();
    for writer in writers {
        written.extend(writer.await.unwrap());
    }
    written.sort_unstable();

    let mut events = watch(&mut client, start, "Node").await;
    let replayed = next_events(&mut events, LONG_HISTORY).await;

    let revisions: Vec<u64> = replayed.iter().map(|(revision, _, _)| *revision).collect();
    assert_eq!(revisions, written);
    let mut names: Vec<&str> = replayed.iter().map(|(_, _, name)| name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), LONG_HISTORY);
}

/// Applies this writer's share of the nodes, one per apply, and returns the
/// revisions they were written at.
async fn write_nodes(mut client: Admin, writer: usize) -> Vec<u64> {
    let mut revisions = Vec::new();
    for index in (writer..LONG_HISTORY).step_by(WRITERS) {
        let address = format!("10.1.{}.{}", index / 250, index % 250 + 1);
        let reply = apply(&mut client, &node(&format!("n{index}"), &address)).await;
        revisions.push(reply.unwrap().revision);
    }
    revisions
}

/// A `palisadectl watch` process whose stdout lines arrive on a channel.
struct WatchProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl WatchProcess {
    fn start(cp: &ControlPlane, args: &[&str]) -> Self {
        let mut child = Command::new(binary("palisadectl"))
            .arg("--config")
            .arg(cp.ctl_config())
            .arg("watch")
            .args(args)
            .env_remove("PALISADECTL_SERVER")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();

        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    fn next_lines(&self, count: usize) -> Vec<String> {
        (0..count)
            .map(|_| {
                self.lines
                    .recv_timeout(EVENT_TIMEOUT)
                    .expect("a watch line")
            })
            .collect()
    }
}

impl Drop for WatchProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn palisadectl_watch_since_prints_the_log_then_live_changes() {
    let (cp, mut client) = started().await;
    let start = revision(&mut client).await.unwrap();
    let r1 = write(&mut client, &node("n1", "10.0.0.1")).await;
    let r2 = delete_node(&mut client, "n1").await;

    let since = start.to_string();
    let watch = WatchProcess::start(&cp, &["Node", "--since", &since]);
    let replayed = watch.next_lines(2);
    let r3 = write(&mut client, &node("n2", "10.0.0.2")).await;
    let live = watch.next_lines(1);

    assert_eq!(
        replayed,
        [
            format!("{r1} created Node n1"),
            format!("{r2} deleted Node n1")
        ]
    );
    assert_eq!(live, [format!("{r3} created Node n2")]);
}

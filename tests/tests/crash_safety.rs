//! Crash safety: `palisade-cp` is killed with SIGKILL at random moments while
//! several clients apply documents. After each restart, every apply that was
//! answered OK must be present, every unanswered one must be whole or absent,
//! the store must open cleanly, and the audit chain must verify.
//!
//! CI runs `CRASH_CYCLES` cycles and checks after each; `PALISADE_SOAK=1`
//! runs `SOAK_CYCLES` and checks every `SOAK_CHECK_EVERY`.

use std::collections::{BTreeSet, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_tests::{ControlPlane, apply, pb};

const CRASH_CYCLES: usize = 20;
const SOAK_CYCLES: usize = 1000;
/// The soak checks the whole store every this many cycles (and at the end):
/// a check reads everything written so far, so checking every cycle would
/// cost the square of the soak's length. A lost write stays lost, so the
/// final check still finds every loss.
const SOAK_CHECK_EVERY: usize = 50;
const CLIENTS: usize = 4;

/// What the clients saw, by apply name.
#[derive(Default)]
struct Ledger {
    acknowledged: BTreeSet<String>,
    unanswered: BTreeSet<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_applies_survive_sigkill() {
    let (cycles, check_every) = match std::env::var("PALISADE_SOAK") {
        Ok(value) if value == "1" => (SOAK_CYCLES, SOAK_CHECK_EVERY),
        _ => (CRASH_CYCLES, 1),
    };
    let mut cp = ControlPlane::init("crash.test").unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut random = Random::new();

    let mut lost = BTreeSet::new();
    for cycle in 0..cycles {
        cp.start()
            .await
            .unwrap_or_else(|e| panic!("cycle {cycle}: restart failed: {e}"));
        if cycle % check_every == 0 {
            lost.extend(check(&cp, &ledger, cycle).await.lost);
        }

        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| tokio::spawn(run_client(cp_client(&cp), ledger.clone(), cycle, client)))
            .collect();
        tokio::time::sleep(Duration::from_millis(random.between(30, 400))).await;
        cp.kill();
        for client in clients {
            let _ = client.await;
        }
    }

    cp.start().await.unwrap();
    let tally = check(&cp, &ledger, cycles).await;
    lost.extend(tally.lost);
    // Written to stderr itself, not through `eprintln!`: the test harness
    // captures the print macros of a passing test, and CI must show this line.
    let _ = writeln!(
        std::io::stderr(),
        "crash safety: {cycles} SIGKILL cycles, {} acknowledged applies, {} lost, \
         {} unanswered ({} whole, the rest absent)",
        tally.acknowledged,
        lost.len(),
        tally.unanswered,
        tally.present
    );
    assert!(lost.is_empty(), "acknowledged applies lost: {lost:?}");
    assert!(
        tally.acknowledged > cycles,
        "too few applies were acknowledged to prove anything"
    );
}

fn cp_client(cp: &ControlPlane) -> impl Future<Output = anyhow::Result<Client>> + use<> {
    let credentials = cp.admin_credentials();
    let address = cp.address();
    async move { connect(address, credentials).await }
}

type Client = palisade_proto::admin::admin_client::AdminClient<tonic::transport::Channel>;

async fn connect(
    address: std::net::SocketAddr,
    credentials: palisade_tests::Credentials,
) -> anyhow::Result<Client> {
    let ca = std::fs::read_to_string(&credentials.ca)?;
    let cert = std::fs::read(credentials.cert.unwrap())?;
    let key = std::fs::read(credentials.key.unwrap())?;
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
        .identity(tonic::transport::Identity::from_pem(cert, key))
        .domain_name("localhost");
    let channel = tonic::transport::Channel::from_shared(format!("https://{address}"))?
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(Client::new(channel))
}

/// Applies pairs of documents (a Node and a Service named alike) until the
/// control plane dies, recording each apply as acknowledged or unanswered.
async fn run_client(
    client: impl Future<Output = anyhow::Result<Client>>,
    ledger: Arc<Mutex<Ledger>>,
    cycle: usize,
    id: usize,
) {
    let Ok(mut client) = client.await else { return };
    for sequence in 0.. {
        let name = format!("c{cycle}-{id}-{sequence}");
        let result = apply(&mut client, &pair(&name)).await;

        let mut ledger = ledger.lock().unwrap();
        match result {
            Ok(_) => ledger.acknowledged.insert(name),
            Err(_) => {
                ledger.unanswered.insert(name);
                return;
            }
        };
    }
}

fn pair(name: &str) -> String {
    format!(
        "kind: Node\nmetadata: {{name: {name}}}\nspec: {{address: 10.1.2.3}}\n---\n\
         kind: Service\nmetadata: {{name: {name}, namespace: crash}}\n\
         spec: {{ports: [{{port: 8080}}]}}\n"
    )
}

/// What one check of the store against the ledger found.
struct Tally {
    acknowledged: usize,
    /// Acknowledged applies missing from the store, in whole or in part.
    lost: Vec<String>,
    unanswered: usize,
    /// Unanswered applies that are present, whole.
    present: usize,
}

/// Checks the store against the ledger: the audit chain verifies, and no
/// unanswered apply is half written.
async fn check(cp: &ControlPlane, ledger: &Mutex<Ledger>, cycle: usize) -> Tally {
    let mut client = cp.admin().await.unwrap();
    let nodes = names(&mut client, "Node").await;
    let services = names(&mut client, "Service").await;
    let verification = client
        .verify_audit(pb::VerifyAuditRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        verification.intact,
        "cycle {cycle}: audit chain broken: {}",
        verification.problem
    );

    let ledger = ledger.lock().unwrap();
    let lost: Vec<String> = ledger
        .acknowledged
        .iter()
        .filter(|n| !nodes.contains(*n) || !services.contains(*n))
        .cloned()
        .collect();

    let mut present = 0;
    for name in &ledger.unanswered {
        match (nodes.contains(name), services.contains(name)) {
            (true, true) => present += 1,
            (false, false) => {}
            _ => panic!("cycle {cycle}: apply {name} is half written"),
        }
    }
    Tally {
        acknowledged: ledger.acknowledged.len(),
        lost,
        unanswered: ledger.unanswered.len(),
        present,
    }
}

/// Every name of `kind`, following pages.
async fn names(client: &mut Client, kind: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListRequest {
            kind: kind.into(),
            limit: 10_000,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let page = client.list(request).await.unwrap().into_inner();
        names.extend(page.resources.into_iter().map(|r| r.name));
        if page.next_page_token.is_empty() {
            return names;
        }
        page_token = page.next_page_token;
    }
}

/// A small xorshift generator, seeded at random, for kill timings.
struct Random(u64);

impl Random {
    fn new() -> Self {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Self(seed | 1)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

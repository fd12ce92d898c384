//! A test bed of real processes: one `palisade-cp` and three
//! `palisade-agent`s, each agent on a host of its own, and small TCP
//! services behind them, configured only as a user would, through
//! `palisadectl` and the admin API.
//!
//! ```text
//!   node-a .11             node-b .12              node-c .13
//!   web-1      (.11)       orders-1   (.12)        payments-1 (.13)
//!   batch-1    (.21)       ledger-1   (.22)
//! ```
//!
//! **Hosts.** Each agent is a host: where the machine allows it, a network
//! namespace of its own, joined to the others and to the control plane
//! only by veth pairs to a bridge, with its own loopback; otherwise a
//! distinct loopback address of the test's namespace ([`network`] says
//! which, and how they are joined). The Node's address is what the agent
//! passes as `--bind-address` and `--outbound-address`, so its connections
//! to another node leave from its host's address, and the callee's agent,
//! and its `ipBlocks` rules, see the caller's host. The services and the
//! local callers are tasks of the test process, with their sockets opened
//! in their host's namespace ([`network::Site`]); strangers call from the
//! test's own namespace, from its address on the bed's network, or from
//! another one of its own ([`Bed::stranger`], [`client::connect_from`]).
//!
//! **Workloads.** One workload per service, in namespace `shop`. On each
//! of the first two nodes one workload uses the node's address and one
//! has a loopback address of its own on its host (Workload
//! `spec.address`, 127.0.0.21 and .22), so both ways of placing listeners
//! are exercised. A workload with its own address is reached there, by
//! workloads of its host, and has its outbound listeners there, one per
//! port of each service it may call. One without is reached at its node's
//! address on its inbound port, and has its outbound listeners on its
//! host's loopback address for them (127.0.0.1 of a namespace, the node's
//! address on loopback). Applications listen on `127.0.0.1:<app port>` of
//! their host: they are the echo servers of [`app`].
//!
//! **Policy.** [`BASELINE_POLICIES`] (in [`topology`]): orders takes web and batch; ledger
//! takes orders; payments takes all of `shop` except web, which a DENY
//! policy refuses. Web and batch take no one. [`baseline_calls`] is what
//! that allows and refuses.
//!
//! **Calls.** A local client calls a service by connecting to its own
//! workload's outbound listener for that service
//! ([`Bed::outbound`]), from its host; a stranger connects to a
//! workload's inbound port directly ([`Bed::inbound`],
//! [`Bed::call_direct`]).
//!
//! Ports are chosen free by [`ports`]; each agent's files and logs live
//! in the control plane's temporary directory, removed when the bed is
//! dropped after every process is killed.

pub mod agent;
pub mod app;
pub mod client;
pub mod network;
pub mod ports;
pub mod topology;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{ControlPlane, palisadectl, pb};
pub use agent::{Agent, Limits, Place, WAIT};
pub use app::App;
pub use client::{Outcome, Session};
pub use network::{Network, Site};
pub use topology::{
    BASELINE_POLICIES, BASELINE_ROUTES, Call, Expect, HOSTS, Host, MEMBERS, Member, NAMESPACE,
    TRUST_DOMAIN, allowed, baseline_calls, denied, id, member, no_route, refused_at_handshake,
};

/// How long an agent may take to log a refusal its caller already saw.
const LOG_WAIT: Duration = Duration::from_secs(10);
/// What an agent logs when it refuses a call after the handshake.
pub const REFUSED_BY_POLICY: &str = "connection refused";
/// What an agent logs when it refuses a certificate at the handshake.
pub const REFUSED_AT_HANDSHAKE: &str = "TLS handshake failed; connection refused";

/// What `palisadectl node revoke` reported.
#[derive(Clone, Debug)]
pub struct Revoked {
    pub revision: u64,
    pub serials: Vec<String>,
}

/// A running bed; every process is killed when it is dropped.
pub struct Bed {
    // Declared first so that they are dropped before the directory goes.
    agents: Vec<Agent>,
    apps: BTreeMap<&'static str, App>,
    service_ports: BTreeMap<&'static str, u16>,
    inbound_ports: BTreeMap<&'static str, u16>,
    ctl: PathBuf,
    /// Where the hosts are; the namespaces go after the processes in them.
    network: Network,
    /// The extra `palisade-cp serve` flags the control plane started with.
    serve_flags: Vec<String>,
    files: AtomicUsize,
    /// The control plane; its directory holds the agents' too.
    pub cp: ControlPlane,
}

impl Bed {
    /// Starts the control plane, applies the bed's resources and
    /// [`BASELINE_POLICIES`] with `palisadectl`, starts the services and
    /// the agents, and waits until every agent enforces it all.
    pub async fn start(limits: Limits) -> Bed {
        Self::start_with(limits, &[]).await
    }

    /// [`start`](Self::start), with these extra `palisade-cp serve` flags.
    pub async fn start_with(limits: Limits, serve_flags: &[&str]) -> Bed {
        Self::start_configured(Network::create(), limits, serve_flags, None).await
    }

    /// [`start`](Self::start), with the agent of `node` configured by a
    /// TOML file and a flag that overrides it
    /// ([`Agent::start_from_file`]).
    pub async fn start_with_config_file(limits: Limits, node: &str) -> Bed {
        Self::start_configured(Network::create(), limits, &[], Some(node)).await
    }

    /// [`start`](Self::start), with the hosts on loopback addresses of the
    /// test's namespace whatever the machine allows.
    pub async fn start_on_loopback(limits: Limits) -> Bed {
        Self::start_configured(Network::loopback(), limits, &[], None).await
    }

    async fn start_configured(
        network: Network,
        limits: Limits,
        serve_flags: &[&str],
        from_file: Option<&str>,
    ) -> Bed {
        // The control plane, on the bed's network, and the services.
        let cp_address = network.control_plane();
        let server_name = cp_address.to_string();
        let mut cp = ControlPlane::init_with(TRUST_DOMAIN, &["--server-name", &server_name])
            .expect("palisade-cp init");
        cp.start_on_with(SocketAddr::new(cp_address, 0), serve_flags)
            .await
            .expect("starting palisade-cp");
        let ctl = cp.ctl_config();
        let mut apps = BTreeMap::new();
        for member in &MEMBERS {
            let app = App::start(network.host(member.host)).await;
            apps.insert(member.service, app);
        }

        // Ports: service ports free where every workload has its outbound
        // listeners, inbound ports where the workload is reached.
        let outbound = |m: &Member| (network.host(m.host), outbound_address(&network, m));
        let everywhere: Vec<(&Site, IpAddr)> = MEMBERS.iter().map(outbound).collect();
        let service_ports = MEMBERS
            .iter()
            .map(|m| (m.service, ports::free_at(&everywhere)))
            .collect();
        let inbound = |m: &Member| (network.host(m.host), inbound_address(&network, m));
        let inbound_ports = MEMBERS
            .iter()
            .map(|m| (m.service, ports::free_at(&[inbound(m)])))
            .collect();
        let mut bed = Bed {
            agents: Vec::new(),
            apps,
            service_ports,
            inbound_ports,
            ctl,
            network,
            serve_flags: serve_flags.iter().map(|&flag| flag.to_owned()).collect(),
            files: AtomicUsize::new(0),
            cp,
        };

        // Resources and join tokens, as an admin would.
        let baseline = BASELINE_POLICIES.replace("{td}", TRUST_DOMAIN);
        bed.apply(&format!("{}{baseline}", bed.resources()));
        for host in &HOSTS {
            let token = bed.ctl(&[
                "node", "token", "create", "--node", host.node, "--ttl", "10m",
            ]);
            let token = token.lines().next().expect("a token").to_owned();
            std::fs::write(bed.root().join(format!("{}.token", host.node)), token)
                .expect("writing a join token");
        }

        // The agents, and everything they must serve.
        let bundle = bed.cp.data_dir.join("ca.pem");
        for (index, host) in HOSTS.iter().enumerate() {
            let start = match from_file == Some(host.node) {
                true => Agent::start_from_file,
                false => Agent::start,
            };
            let place = Place {
                site: bed.network.host(index).clone(),
                address: bed.network.address(host.octet),
                outbound: bed.network.outbound_address(host.octet),
            };
            let agent = start(
                &bed.root(),
                host.node,
                place,
                bed.cp.address(),
                &bundle,
                limits,
            );
            bed.agents.push(agent);
        }
        bed.wait_until_serving(&BASELINE_ROUTES).await;
        bed
    }

    /// Starts the control plane again, after it was killed or stopped,
    /// on the address the agents know and with the `serve` flags it was
    /// first started with.
    pub async fn restart_control_plane(&mut self) {
        let address = self.cp.address();
        let flags: Vec<&str> = self.serve_flags.iter().map(String::as_str).collect();
        self.cp
            .start_on_with(address, &flags)
            .await
            .expect("restarting palisade-cp");
    }

    fn root(&self) -> PathBuf {
        self.cp.root.path().to_owned()
    }

    /// Where the hosts are.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The address of the host of `node`.
    pub fn host_address(&self, node: &str) -> Ipv4Addr {
        let host = HOSTS.iter().find(|h| h.node == node);
        let host = host.unwrap_or_else(|| panic!("the bed has no node {node}"));
        self.network.address(host.octet)
    }

    /// An address of the test's own that is none of the hosts': where a
    /// stranger on the bed's network connects from.
    pub fn stranger(&self) -> IpAddr {
        self.network.stranger().into()
    }

    /// Addresses of the test's own that are none of the hosts', the
    /// [`stranger`](Self::stranger)'s first: where several strangers on
    /// the bed's network connect from.
    pub fn strangers(&self) -> Vec<IpAddr> {
        let strangers = self.network.strangers().into_iter();
        strangers.map(IpAddr::from).collect()
    }

    /// The Nodes, Services and Workloads, as YAML documents.
    fn resources(&self) -> String {
        let mut yaml = String::new();
        for host in &HOSTS {
            yaml += &format!(
                "kind: Node\nmetadata: {{name: {}}}\nspec: {{address: {}}}\n---\n",
                host.node,
                self.network.address(host.octet)
            );
        }
        for member in &MEMBERS {
            let service = member.service;
            yaml += &format!(
                "kind: Service\nmetadata: {{name: {service}, namespace: {NAMESPACE}}}\n\
                 spec: {{ports: [{{port: {}, protocol: tcp}}]}}\n---\n",
                self.service_ports[service]
            );
            let address = member
                .own_address
                .map(|a| format!(", address: {a}"))
                .unwrap_or_default();
            yaml += &format!(
                "kind: Workload\nmetadata: {{name: {}, namespace: {NAMESPACE}}}\n\
                 spec: {{service: {service}, node: {}, appPort: {}, inboundPort: {}{address}}}\n---\n",
                member.workload(),
                HOSTS[member.host].node,
                self.apps[service].port,
                self.inbound_ports[service],
            );
        }
        yaml
    }

    /// Runs `palisadectl` and returns its standard output.
    ///
    /// # Panics
    ///
    /// When it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let output = palisadectl(&self.ctl, args);
        assert!(
            output.status.success(),
            "palisadectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `palisadectl apply -f` of `yaml`; returns the revision it reports.
    pub fn apply(&self, yaml: &str) -> u64 {
        let serial = self.files.fetch_add(1, Ordering::Relaxed);
        let path = self.root().join(format!("apply-{serial}.yaml"));
        std::fs::write(&path, yaml).expect("writing a YAML file");

        let output = self.ctl(&["apply", "-f", path.to_str().expect("a UTF-8 path")]);
        let revision = output
            .lines()
            .find_map(|line| line.strip_prefix("revision "))
            .and_then(|rest| rest.split(' ').next()?.parse().ok());
        revision.unwrap_or_else(|| panic!("no revision in the apply's output:\n{output}"))
    }

    /// `palisadectl node revoke`.
    pub fn revoke(&self, node: &str, reason: &str) -> Revoked {
        let output = self.ctl(&["node", "revoke", node, "--reason", reason]);
        let mut lines = output.lines();
        let first = lines.next().unwrap_or_default();
        let revision = first
            .split_once("revoked at revision ")
            .and_then(|(_, rest)| rest.split(';').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no revision in the revocation's output:\n{output}"));
        let serials = lines.map(|line| line.trim().to_owned()).collect();
        Revoked { revision, serials }
    }

    /// An AuthorizationPolicy document for `target` with one rule whose
    /// sources are the identities of `callers`; `action` is ALLOW or DENY.
    pub fn policy(name: &str, target: &str, action: &str, callers: &[&str]) -> String {
        let identities: Vec<String> = callers.iter().map(|c| format!("\"{}\"", id(c))).collect();
        format!(
            "kind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: {NAMESPACE}}}\n\
             spec:\n  targetService: {target}\n  action: {action}\n  rules:\n\
             \x20   - from: [{{identities: [{}]}}]\n---\n",
            identities.join(", ")
        )
    }

    /// `policy`, a document of [`policy`](Self::policy), in audit mode.
    pub fn in_audit_mode(policy: &str) -> String {
        policy.replacen("spec:\n", "spec:\n  mode: audit\n", 1)
    }

    /// Where the workload of `service` is reached by other agents.
    pub fn inbound(&self, service: &str) -> SocketAddr {
        let address = inbound_address(&self.network, member(service));
        SocketAddr::new(address, self.inbound_ports[service])
    }

    /// Where the workload of `caller` calls `service`: its outbound
    /// listener for the service's port.
    pub fn outbound(&self, caller: &str, service: &str) -> SocketAddr {
        let address = outbound_address(&self.network, member(caller));
        SocketAddr::new(address, self.service_ports[service])
    }

    /// Where the workload of `service` opens its sockets: its host.
    fn site_of(&self, service: &str) -> &Site {
        self.network.host(member(service).host)
    }

    /// The echo server behind the workload of `service`.
    pub fn app(&self, service: &str) -> &App {
        &self.apps[service]
    }

    /// The agent of `node`.
    pub fn agent(&mut self, node: &str) -> &mut Agent {
        self.agents
            .iter_mut()
            .find(|a| a.node == node)
            .unwrap_or_else(|| panic!("the bed has no node {node}"))
    }

    /// Every agent, in [`HOSTS`] order.
    pub fn agents(&mut self) -> &mut [Agent] {
        &mut self.agents
    }

    /// Calls `service` from the workload of `caller`.
    pub async fn call(&self, caller: &str, service: &str) -> Outcome {
        client::call(self.site_of(caller), self.outbound(caller, service)).await
    }

    /// Calls the inbound port of `service` straight over TLS, presenting
    /// `identity` (a chain and key, PEM) or no certificate, as a stranger
    /// would: from the test's own namespace, or from the service's host
    /// when it is reached at a loopback address of its own.
    pub async fn call_direct(&self, service: &str, identity: Option<(&str, &str)>) -> Outcome {
        let here = Site::here();
        let site = match member(service).own_address {
            Some(_) => self.site_of(service),
            None => &here,
        };
        client::call_tls(site, self.inbound(service), identity).await
    }

    /// Opens a connection of `caller` to `service` that stays open.
    pub async fn open(&self, caller: &str, service: &str) -> Session {
        let site = self.site_of(caller);
        let session = Session::open(site, self.outbound(caller, service)).await;
        let session = session.unwrap_or_else(|e| panic!("{caller} -> {service}: {e}"));
        assert_eq!(session.caller, id(caller), "{caller} -> {service}");
        session
    }

    /// Makes each call in turn; returns every one that did not do what it
    /// should, described, or nothing. An allowed call must be answered by
    /// the service with the caller's identity. A refused one must never
    /// reach the service, and must end as its [`Expect`] says: taken by
    /// the caller's outbound listener and closed, with the refusal in the
    /// callee's agent's log (by the rule expected, or at the handshake),
    /// or refused at once because the caller's agent listens for no such
    /// call.
    pub async fn check(&self, calls: &[Call]) -> Result<(), String> {
        let mut wrong = Vec::new();
        for call in calls {
            if let Err(problem) = self.check_one(call).await {
                wrong.push(format!("{} -> {}: {problem}", call.caller, call.service));
            }
        }
        match wrong.is_empty() {
            true => Ok(()),
            false => Err(wrong.join("\n")),
        }
    }

    async fn check_one(&self, call: &Call) -> Result<(), String> {
        let app = self.app(call.service);
        let before = app.connections();
        let refusal = RefusalLine::expected(call);
        let logged_before = refusal.as_ref().map(|line| line.count(self));
        let outcome = self.call(call.caller, call.service).await;
        let reached = app.callers()[before..].to_vec();

        let expected = id(call.caller);
        match (call.expect, &outcome) {
            (Expect::Allowed, Outcome::Answered { caller }) if *caller == expected => Ok(()),
            (Expect::Allowed, _) => Err(format!("expected an answer, got {outcome}")),
            _ if !reached.is_empty() => Err(format!("{outcome}, but the service saw {reached:?}")),
            (Expect::NoRoute, Outcome::NoListener(_)) => Ok(()),
            (Expect::Denied(_) | Expect::RefusedAtHandshake, Outcome::Closed(_)) => {
                let (line, before) = refusal.zip(logged_before).expect("a refusal line");
                line.wait_past(self, before).await
            }
            (expect, outcome) => Err(format!("expected {expect:?}, got {outcome}")),
        }
    }

    /// Waits until every agent takes its configuration from the control
    /// plane and [`wait_for_listeners`](Self::wait_for_listeners).
    pub async fn wait_until_serving(&mut self, routes: &[(&str, &str)]) {
        for agent in &mut self.agents {
            agent.wait_for_source("control-plane").await;
        }
        self.wait_for_listeners(routes).await;
    }

    /// Waits until, in each agent's current run, every workload's inbound
    /// listener is open, and so is the outbound listener of each of
    /// `routes` (caller, service).
    pub async fn wait_for_listeners(&mut self, routes: &[(&str, &str)]) {
        for member in &MEMBERS {
            let inbound = self.inbound(member.service);
            let what = format!("listening on {inbound} for {}", member.workload());
            let agent = &mut self.agents[member.host];
            agent.wait_until(&what, |a| a.listens_on(inbound)).await;
        }
        for (caller, service) in routes {
            let outbound = self.outbound(caller, service);
            let what = format!("listening on {outbound} for {caller} -> {service}");
            let agent = &mut self.agents[member(caller).host];
            agent.wait_until(&what, |a| a.listens_on(outbound)).await;
        }
    }

    /// Waits until each agent of `nodes` enforces `revision`.
    pub async fn wait_for_revision(&mut self, nodes: &[&str], revision: u64) {
        for node in nodes {
            self.agent(node).wait_for_revision(revision).await;
        }
    }

    /// The serial (lowercase hex) of the certificate the agent holds for
    /// the workload of `service`.
    pub fn workload_serial(&self, service: &str) -> String {
        let member = member(service);
        let path = self.agents[member.host].data_dir.join(format!(
            "workloads/{NAMESPACE}/{}/cert.pem",
            member.workload()
        ));
        let pem = std::fs::read_to_string(&path).expect("a workload certificate");
        let der = crate::x509::first_der(&pem);
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).expect("a certificate");
        parsed
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The certificate chain and key the agent holds for the workload of
    /// `service`, as PEM.
    pub fn workload_identity(&self, service: &str) -> (String, String) {
        let member = member(service);
        let dir = self.agents[member.host]
            .data_dir
            .join(format!("workloads/{NAMESPACE}/{}", member.workload()));
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).expect("workload file");
        (read("cert.pem"), read("key.pem"))
    }

    /// The agents' xDS streams, as the control plane sees them.
    pub async fn agent_streams(&self) -> Vec<pb::XdsStream> {
        let mut admin = self.cp.admin().await.expect("an admin client");
        let request = pb::FleetStatusRequest {
            node: String::new(),
            resources: false,
        };
        let status = admin.fleet_status(request).await.expect("FleetStatus");
        let streams = status.into_inner().streams.into_iter();
        streams.filter(|s| s.client == "agent").collect()
    }

    /// Waits until the control plane sees one stream per node, connected
    /// since `since`, that acknowledged every type at the revision it was
    /// sent, with no NACK; returns them by node.
    pub async fn wait_for_fleet_in_sync(
        &self,
        since: SystemTime,
    ) -> BTreeMap<String, pb::XdsStream> {
        let since_ms = since
            .duration_since(UNIX_EPOCH)
            .expect("a time")
            .as_millis() as i64;
        let deadline = Instant::now() + WAIT;
        loop {
            let streams = self.agent_streams().await;
            let in_sync: BTreeMap<String, pb::XdsStream> = streams
                .iter()
                .filter(|s| s.connected_unix_ms >= since_ms && in_sync(s))
                .map(|s| (s.node.clone(), s.clone()))
                .collect();
            if HOSTS.iter().all(|h| in_sync.contains_key(h.node)) {
                return in_sync;
            }
            assert!(
                Instant::now() < deadline,
                "the fleet did not get in sync in {WAIT:?}: {streams:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Where `member` is reached: its own address, else its host's.
fn inbound_address(network: &Network, member: &Member) -> IpAddr {
    let host = network.address(HOSTS[member.host].octet);
    member.own_address.unwrap_or(host).into()
}

/// Where `member` has its outbound listeners: its own address, else its
/// host's loopback address for them.
fn outbound_address(network: &Network, member: &Member) -> IpAddr {
    let host = network.outbound_address(HOSTS[member.host].octet);
    member.own_address.unwrap_or(host).into()
}

/// The line the callee's agent logs when it refuses a call.
struct RefusalLine {
    /// Which of [`HOSTS`] runs the callee.
    host: usize,
    parts: Vec<String>,
}

impl RefusalLine {
    /// The line `call` must add to its callee's agent's log, if any.
    fn expected(call: &Call) -> Option<Self> {
        let callee = member(call.service);
        let workload = format!("workload={NAMESPACE}/{}", callee.workload());
        let parts = match call.expect {
            Expect::Denied(rule) => vec![
                REFUSED_BY_POLICY.to_owned(),
                format!("caller={}", id(call.caller)),
                workload,
                format!("rule={rule} "),
            ],
            Expect::RefusedAtHandshake => vec![
                REFUSED_AT_HANDSHAKE.to_owned(),
                workload,
                format!("unverified_spiffe_id=\"{}\"", id(call.caller)),
            ],
            Expect::Allowed | Expect::NoRoute => return None,
        };
        Some(Self {
            host: callee.host,
            parts,
        })
    }

    /// How many such lines the agent's current run logged.
    fn count(&self, bed: &Bed) -> usize {
        let parts: Vec<&str> = self.parts.iter().map(String::as_str).collect();
        bed.agents[self.host].lines_with(&parts)
    }

    /// Waits until there are more than `before`, at most [`LOG_WAIT`].
    async fn wait_past(&self, bed: &Bed, before: usize) -> Result<(), String> {
        let deadline = Instant::now() + LOG_WAIT;
        while self.count(bed) <= before {
            if Instant::now() > deadline {
                let agent = &bed.agents[self.host].node;
                return Err(format!("closed, but {agent} logged no {:?}", self.parts));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

/// Whether a stream acknowledged all six agent types at the revision last
/// sent, without a NACK.
fn in_sync(stream: &pb::XdsStream) -> bool {
    stream.types.len() == 6
        && stream.types.iter().all(|t| {
            t.acked_revision > 0
                && t.acked_revision == t.sent_revision
                && t.last_nack_error.is_empty()
        })
}

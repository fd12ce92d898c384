//! The data path: an inbound listener per local workload and an outbound
//! listener per service a local workload may call.
//!
//! **Inbound.** Each local workload with a certificate gets a listener on
//! its inbound port, on the workload's own address when it is in
//! 127.0.0.0/8 (where the control plane tells callers to find it), else on
//! [`Settings::bind_address`]. It terminates mTLS with the workload's
//! SVID and asks every caller for a certificate that chains to the current
//! trust bundle, is within its validity, carries exactly one `spiffe://`
//! URI SAN and whose serial is not on the deny list. The caller's SPIFFE ID,
//! address and the destination port then go through the Service's
//! [`Policy`](crate::authz::Policy); an allowed connection is forwarded to
//! `127.0.0.1:<app port>`, after a PROXY protocol v2 header when
//! [`Settings::proxy_protocol`] is set (see [`proxy_protocol`]). Handshakes
//! in progress are bounded per listener and per source address (see
//! `handshakes`), so that half-open connections from one source cannot
//! keep others out.
//!
//! **Outbound.** For each local workload and each port of each Endpoints
//! resource, a listener on the workload's own address when it is in
//! 127.0.0.0/8, else on [`Settings::outbound_address`]. A local client's
//! connection is carried over mTLS, with the workload's SVID, to one of the
//! service's endpoints, round robin, after checking that the server's
//! certificate chains to the bundle, is not on the deny list and names the
//! service's SPIFFE ID.
//!
//! **Changes.** Each new snapshot or certificate set is compiled whole into
//! new tables (routes, policies, trust) and swapped in at once; then
//! every established connection, inbound and outbound, is judged again and
//! those no longer allowed are closed, listeners no longer wanted are
//! closed and new ones are opened. Listeners that stay keep running and
//! keep their connections. A CA rotation closes nothing: see `registry`
//! for how a new bundle is judged.
//!
//! **Shutdown.** Every listener stops accepting; [`run`] returns once the
//! established connections have ended. Callers bound the wait.

mod balancer;
mod counters;
mod drain;
mod forward;
mod handshakes;
mod inbound;
mod listeners;
mod outbound;
mod peer;
mod presented;
pub mod proxy_protocol;
mod registry;
mod tables;
mod tls;
mod trust;
mod verified;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument as _;

use crate::identity::svid::Certificates;
use crate::state::State;
use drain::Drain;
use listeners::Listeners;
use registry::{InboundConnection, OutboundConnection, Registry};
use tables::{Current, Tables};
use trust::TrustCell;

pub use counters::{Counters, counters};

/// How long to wait before binding again a listener whose address was
/// taken.
const BIND_RETRY: Duration = Duration::from_secs(5);

/// How the data path listens.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The address inbound listeners bind, with each workload's inbound
    /// port, for workloads whose own address is not in 127.0.0.0/8; when
    /// it is a specific address, connections to other nodes' endpoints
    /// leave from it too.
    pub bind_address: IpAddr,
    /// The address outbound listeners bind for workloads whose own address
    /// is not in 127.0.0.0/8.
    pub outbound_address: IpAddr,
    /// Whether inbound connections reach the application after a PROXY
    /// protocol v2 header naming the caller.
    pub proxy_protocol: bool,
    /// How long a caller (inbound) or an endpoint (outbound) has to
    /// connect and finish the TLS handshake, and the application has to
    /// accept a forwarded connection.
    pub handshake_timeout: Duration,
    /// The most connections one listener holds at once; connections beyond
    /// it are accepted and closed at once. Zero refuses every connection.
    pub max_connections: usize,
    /// The most TLS handshakes one inbound listener has in progress at
    /// once; a connection beyond it takes the oldest handshake's slot,
    /// and that handshake is given up.
    pub max_handshakes: usize,
    /// The most of those that one source address (an IPv6 /64) may have,
    /// so that a flood from one source leaves room for other callers.
    pub max_handshakes_per_source: usize,
}

/// Runs the data path until `shutdown` turns true (or its sender goes),
/// then drains established connections. Counts into [`counters()`].
pub async fn run(
    state: State,
    certificates: Certificates,
    settings: Settings,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    run_counted(state, certificates, settings, shutdown, counters()).await
}

/// [`run`], counting into `counters`.
pub async fn run_counted(
    state: State,
    certificates: Certificates,
    settings: Settings,
    mut shutdown: watch::Receiver<bool>,
    counters: Arc<Counters>,
) -> anyhow::Result<()> {
    let context = Arc::new(Context::new(certificates.clone(), settings, counters));
    let mut snapshots = state.watch();
    let mut renewals = certificates.watch();
    let mut listeners = Listeners::default();

    while !*shutdown.borrow() {
        let bound = apply(&context, &mut listeners, &state, &certificates).await;
        let retry = async {
            match bound {
                true => std::future::pending().await,
                false => tokio::time::sleep(BIND_RETRY).await,
            }
        };

        tokio::select! {
            () = changed(&mut snapshots) => {}
            () = changed(&mut renewals) => {}
            () = retry => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }

    // Stop accepting, then wait for established connections.
    listeners.close_all().await;
    tracing::info!(
        connections = context.drain.active(),
        "listeners closed; draining connections"
    );
    context.drain.idle().await;
    tracing::info!("connections drained");
    Ok(())
}

/// Compiles what is current, swaps it in, re-judges established
/// connections and reconciles listeners. False when a listener could not
/// bind.
async fn apply(
    context: &Arc<Context>,
    listeners: &mut Listeners,
    state: &State,
    certificates: &Certificates,
) -> bool {
    // Compile everything first: nothing changes if this panics.
    let previous = context.tables.get();
    let snapshot = state.current();
    let tables = Tables::build(
        snapshot.as_deref(),
        &certificates.current(),
        &previous,
        context,
    );
    let tables = Arc::new(tables);

    // Swap, then close what the new tables no longer allow.
    context.trust.replace(tables.trust.clone());
    context.tables.replace(tables.clone());
    let counters = &context.counters;
    let inbound_closed = context.inbound_connections.reevaluate(&tables, counters);
    let outbound_closed = context.outbound_connections.reevaluate(&tables, counters);

    let bound = listeners.reconcile(tables.listeners(), context).await;
    Counters::bump(&context.counters.applied);
    tracing::info!(
        revision = snapshot.map_or(0, |s| s.revision),
        inbound = tables.inbound.len(),
        outbound = tables.outbound.len(),
        inbound_closed,
        outbound_closed,
        "data path applied"
    );
    bound
}

/// Resolves when `receiver` sees a new value; never when its sender is
/// gone.
async fn changed<T>(receiver: &mut watch::Receiver<T>) {
    if receiver.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// What every listener and connection shares.
struct Context {
    settings: Settings,
    certificates: Certificates,
    /// The routes, policies and trust in force.
    tables: Current,
    /// The trust the TLS verifiers read; the same as `tables`' own.
    trust: Arc<TrustCell>,
    /// Established connections, for judging them again.
    inbound_connections: Arc<Registry<InboundConnection>>,
    outbound_connections: Arc<Registry<OutboundConnection>>,
    counters: Arc<Counters>,
    drain: Arc<Drain>,
}

impl Context {
    fn new(certificates: Certificates, settings: Settings, counters: Arc<Counters>) -> Self {
        Self {
            settings,
            certificates,
            tables: Current::default(),
            trust: Arc::new(TrustCell::default()),
            inbound_connections: Arc::default(),
            outbound_connections: Arc::default(),
            counters,
            drain: Arc::new(Drain::default()),
        }
    }

    /// Spawns a connection's task in the current span; shutdown waits for
    /// it.
    fn spawn_connection(
        &self,
        span: tracing::Span,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let tracked = self.drain.track();
        tokio::spawn(
            async move {
                task.await;
                drop(tracked);
            }
            .instrument(span),
        );
    }
}

#[cfg(test)]
mod tests;

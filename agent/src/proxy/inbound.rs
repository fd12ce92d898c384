//! Inbound connections to a local workload: the mTLS handshake, the
//! authorization decision, and forwarding to the application on
//! `127.0.0.1:<app port>`.

use std::net::{Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;

use rustls::pki_types::UnixTime;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::field;

use super::counters::Counters;
use super::forward::forward_until;
use super::handshakes::{Crowded, HandshakeLimit, Slot};
use super::presented::{self, Presented};
use super::registry::{Admitted, InboundConnection, InboundRefusal, PeerCertificate};
use super::verified::Role;
use super::{Context, listeners, proxy_protocol, tls};
use crate::authz::{Caller, Decision};

/// Why an admitted connection did not reach the application.
#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error("connecting to the application: {0}")]
    Connect(std::io::Error),
    #[error("the application did not accept the connection in time")]
    Timeout,
    #[error("writing the PROXY header: {0}")]
    Header(std::io::Error),
}

/// Accepts callers of `workload` on `listener` until `stop`.
pub async fn serve(
    listener: TcpListener,
    workload: String,
    context: Arc<Context>,
    stop: oneshot::Receiver<()>,
) {
    let config = match tls::server_config(&workload, &context.certificates, &context.trust) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "no TLS server settings; listener stopped");
            return;
        }
    };
    let Ok(listen) = listener.local_addr() else {
        return;
    };
    let acceptor = TlsAcceptor::from(config);
    let settings = &context.settings;
    let limit = HandshakeLimit::new(settings.max_handshakes, settings.max_handshakes_per_source);

    listeners::accept(listener, &context, stop, |stream, peer, permit| {
        let slot = limit.enter(peer.ip());
        let inbound = Inbound {
            workload: workload.clone(),
            listen,
            context: context.clone(),
        };
        inbound.connection(stream, peer, acceptor.clone(), (permit, slot))
    })
    .await;
}

/// What a connection holds while it runs: its place in the listener's
/// connection limit, and a handshake slot or why there was none.
type Admission = (OwnedSemaphorePermit, Result<Slot, Crowded>);

/// One listener's side of a connection.
struct Inbound {
    workload: String,
    listen: SocketAddr,
    context: Arc<Context>,
}

impl Inbound {
    async fn connection(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        acceptor: TlsAcceptor,
        (_permit, slot): Admission,
    ) {
        let mut slot = match slot {
            Ok(slot) => slot,
            Err(crowded) => return self.crowded(crowded),
        };
        let reached = stream.local_addr().unwrap_or(self.listen);
        let handshake = self.handshake(stream, peer, acceptor, &mut slot).await;
        drop(slot);
        let Some((tls, established)) = handshake else {
            return;
        };
        let caller = established.caller.identity.clone();

        let registry = &self.context.inbound_connections;
        let admitted = match registry.admit(established, &self.context.tables) {
            Ok(admitted) => admitted,
            Err(refusal) => return self.refused(&caller, &refusal),
        };
        self.log_audits(&caller, &admitted.grant.decision);

        let app = match self.app(&admitted, peer, reached, &caller).await {
            Ok(app) => app,
            Err(error) => {
                Counters::bump(&self.context.counters.inbound_app_unreachable);
                tracing::info!(
                    %caller,
                    workload = %self.workload,
                    %error,
                    "application unreachable; connection closed"
                );
                return;
            }
        };
        Counters::bump(&self.context.counters.inbound_allowed);
        self.carry(tls, app, &caller, &admitted).await;
    }

    /// The TLS handshake, bounded by the handshake timeout and given up if
    /// a newer connection takes its `slot`, and the caller it names.
    async fn handshake(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        acceptor: TlsAcceptor,
        slot: &mut Slot,
    ) -> Option<(TlsStream<TcpStream>, InboundConnection)> {
        let counters = &self.context.counters;
        let anchors = self.context.trust.get().anchors.clone();
        let verified_at = UnixTime::now();

        let mut accept = pin!(presented::watch(acceptor.accept(stream)));
        let handshake = timeout(self.context.settings.handshake_timeout, accept.as_mut());
        let outcome = tokio::select! {
            outcome = handshake => outcome,
            () = slot.evicted() => {
                Counters::bump(&counters.inbound_handshakes_evicted);
                tracing::debug!(
                    workload = %self.workload,
                    "TLS handshake given up: a newer connection took its slot"
                );
                return None;
            }
        };
        let tls = match outcome {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                let presented = presented::taken(accept).unwrap_or_default();
                self.handshake_failed(&error, &presented);
                return None;
            }
            Err(_) => {
                Counters::bump(&counters.inbound_handshake_timed_out);
                tracing::info!(
                    workload = %self.workload,
                    "TLS handshake timed out; connection refused"
                );
                return None;
            }
        };

        // The verifier checked the chain already; this only reads it again.
        let chain = tls
            .get_ref()
            .1
            .peer_certificates()
            .unwrap_or_default()
            .to_vec();
        let certificate = match PeerCertificate::read(Role::Client, chain, verified_at, anchors) {
            Ok(certificate) => certificate,
            Err(error) => {
                Counters::bump(&counters.inbound_handshake_failed);
                tracing::info!(workload = %self.workload, %error, "no usable peer certificate");
                return None;
            }
        };
        let established = InboundConnection {
            caller: Caller::new(&certificate.spiffe_id, peer.ip()),
            certificate,
            workload: self.workload.clone(),
            listen: self.listen,
        };
        Some((tls, established))
    }

    /// Counts and logs a failed handshake with what the client presented,
    /// unverified: a refused certificate vouches for nothing.
    fn handshake_failed(&self, error: &std::io::Error, presented: &Presented) {
        Counters::bump(&self.context.counters.inbound_handshake_failed);
        let serial = Some(presented.serial.as_str()).filter(|s| !s.is_empty());
        tracing::info!(
            workload = %self.workload,
            unverified_spiffe_id = presented.spiffe_id.as_ref().map(field::debug),
            unverified_serial = serial,
            %error,
            "TLS handshake failed; connection refused"
        );
    }

    /// Closes a connection that found no handshake slot.
    fn crowded(&self, crowded: Crowded) {
        let counters = &self.context.counters;
        match crowded {
            Crowded::Source => Counters::bump(&counters.inbound_source_handshakes_over_limit),
        }
        tracing::debug!(workload = %self.workload, reason = %crowded, "connection closed at once");
    }

    fn refused(&self, caller: &str, refusal: &InboundRefusal) {
        Counters::bump(&self.context.counters.inbound_denied);
        let rule = match refusal {
            InboundRefusal::Denied(decision) => decision.to_string(),
            _ => "-".to_owned(),
        };
        tracing::info!(
            target: "palisade_agent::access",
            %caller,
            workload = %self.workload,
            %rule,
            reason = %refusal,
            "connection refused"
        );
        if let InboundRefusal::Denied(decision) = refusal {
            self.log_audits(caller, decision);
        }
    }

    /// Logs the AUDIT rules that matched, and what the policies in audit
    /// mode would have decided when that differs from the decision.
    fn log_audits(&self, caller: &str, decision: &Decision) {
        for rule in &decision.audited {
            tracing::info!(
                target: "palisade_agent::audit",
                %caller,
                workload = %self.workload,
                %rule,
                decided = %decision.verdict.effect(),
                "audit rule matched"
            );
        }
        if let Some(dry_run) = &decision.dry_run {
            tracing::info!(
                target: "palisade_agent::audit",
                %caller,
                workload = %self.workload,
                decided = %decision.verdict.effect(),
                rule = %decision.verdict,
                would = %dry_run.effect(),
                would_rule = %dry_run,
                "policies in audit mode would decide otherwise"
            );
        }
    }

    /// Connects to the application and sends the PROXY header when asked.
    async fn app(
        &self,
        admitted: &Admitted<InboundConnection>,
        peer: SocketAddr,
        reached: SocketAddr,
        caller: &str,
    ) -> Result<TcpStream, AppError> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, admitted.grant.route.app_port));
        let connect = timeout(
            self.context.settings.handshake_timeout,
            TcpStream::connect(address),
        );
        let mut app = connect
            .await
            .map_err(|_| AppError::Timeout)?
            .map_err(AppError::Connect)?;
        let _ = app.set_nodelay(true);

        if self.context.settings.proxy_protocol {
            let header = proxy_protocol::header(peer, reached, caller);
            app.write_all(&header).await.map_err(AppError::Header)?;
        }
        Ok(app)
    }

    /// Forwards until both sides finish or the registry closes the
    /// connection, then logs the access line.
    async fn carry(
        &self,
        tls: TlsStream<TcpStream>,
        app: TcpStream,
        caller: &str,
        admitted: &Admitted<InboundConnection>,
    ) {
        let started = Instant::now();
        let cut = admitted.registration.closed();
        let carried = forward_until(tls, app, cut, "closed by a policy change").await;

        tracing::info!(
            target: "palisade_agent::access",
            %caller,
            workload = %self.workload,
            rule = %admitted.grant.decision,
            sent = carried.transferred.sent,
            received = carried.transferred.received,
            duration_ms = started.elapsed().as_millis() as u64,
            error = carried.error.as_deref(),
            "inbound connection closed"
        );
    }
}

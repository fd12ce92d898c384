//! What every ADS stream shares, whichever variant of the protocol it
//! speaks: its registration in the fleet, its view, its nonces, and the
//! limits it must keep to.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tonic::{Code, Status};

use super::compile::Compiler;
use super::fleet::{Fleet, Nack, Registration};
use super::view::{ClientKey, View};
use super::{agent, envoy};

pub mod delta;
pub mod sotw;

/// Limits every stream keeps to.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Resource names in one request: a state-of-the-world request's whole
    /// subscription, or a delta request's subscribe and unsubscribe lists
    /// together. A state-of-the-world client repeats its subscription in
    /// every request, so this is also how many resources of one type it can
    /// name.
    pub names_per_request: usize,
    /// Entries in a delta request's `initial_resource_versions`: what a
    /// resuming client holds, which for a wildcard subscription is far more
    /// than it names.
    pub initial_versions_per_request: usize,
    /// Sustained requests per second, and the burst above it.
    pub requests_per_second: f64,
    pub request_burst: f64,
    /// Open streams of one client (a gRPC client opens one per target).
    pub streams_per_client: usize,
    /// How long a new stream may take to send its first request.
    pub first_request_timeout: Duration,
    /// The largest request message.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            names_per_request: 10_000,
            initial_versions_per_request: 100_000,
            requests_per_second: 50.0,
            request_burst: 200.0,
            streams_per_client: 64,
            first_request_timeout: Duration::from_secs(30),
            max_request_bytes: 4 * 1024 * 1024,
        }
    }
}

/// A token bucket of requests.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(limits: &Limits) -> Self {
        Self {
            rate: limits.requests_per_second,
            burst: limits.request_burst,
            tokens: limits.request_burst,
            last: Instant::now(),
        }
    }

    /// Takes one request's token at `now`; false when none is left.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// One open stream's place in the world: the view it follows and its
/// registration, released when the stream ends.
pub struct Context {
    pub client: ClientKey,
    pub registration: Registration,
    pub fleet: Arc<Fleet>,
    pub view: watch::Receiver<Arc<View>>,
    pub limits: Limits,
    /// Turns true when the server drains.
    pub shutdown: watch::Receiver<bool>,
    compiler: Arc<Mutex<Compiler>>,
    nonce: u64,
    limiter: RateLimiter,
}

impl Drop for Context {
    fn drop(&mut self) {
        self.compiler
            .lock()
            .expect("compiler lock")
            .release(&self.client);
        tracing::info!(client = %self.client, stream = self.registration.id, "xDS stream closed");
    }
}

impl Context {
    pub fn new(
        client: ClientKey,
        registration: Registration,
        fleet: Arc<Fleet>,
        compiler: Arc<Mutex<Compiler>>,
        limits: Limits,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let view = compiler.lock().expect("compiler lock").subscribe(&client);
        Self {
            client,
            registration,
            fleet,
            view,
            shutdown,
            limiter: RateLimiter::new(&limits),
            limits,
            compiler,
            nonce: 0,
        }
    }

    /// A fresh nonce.
    pub fn next_nonce(&mut self) -> String {
        self.nonce += 1;
        self.nonce.to_string()
    }

    /// Refuses a request over the rate, naming too many resources, or
    /// resuming with the versions of too many.
    pub fn admit(&mut self, names: usize, initial_versions: usize) -> Result<(), Status> {
        if names > self.limits.names_per_request {
            return Err(Status::invalid_argument(format!(
                "a request names {names} resources; at most {} are allowed",
                self.limits.names_per_request
            )));
        }
        if initial_versions > self.limits.initial_versions_per_request {
            return Err(Status::invalid_argument(format!(
                "initial_resource_versions: {initial_versions} entries; at most {} are allowed",
                self.limits.initial_versions_per_request
            )));
        }
        if !self.limiter.allow(Instant::now()) {
            return Err(Status::resource_exhausted(format!(
                "more than {} requests per second on one stream",
                self.limits.requests_per_second
            )));
        }
        Ok(())
    }

    /// The latest view. It is not marked seen: a view that arrives while a
    /// request is answered must still wake the stream, so that every type,
    /// not only the requested one, gets its changes.
    pub fn current(&self) -> Arc<View> {
        self.view.borrow().clone()
    }

    /// The stream's id in the fleet.
    pub fn id(&self) -> u64 {
        self.registration.id
    }

    /// Records that the client applied `sent`, and now holds `held`.
    pub fn record_ack(&self, type_url: &str, sent: &mut Sent, held: BTreeMap<String, String>) {
        sent.answer = Answer::Acked;
        let revision = sent.revision;
        self.fleet.update(self.id(), type_url, |t| {
            t.acked_revision = Some(revision);
            t.held = held;
        });
    }

    /// Records that the client rejected `sent` with `error`.
    pub fn record_nack(&self, type_url: &str, sent: &mut Sent, error: &str) {
        sent.answer = Answer::Rejected;
        let revision = sent.revision;
        tracing::warn!(client = %self.client, type_url, revision, error, "xDS response rejected");
        let nack = Nack {
            version: revision.to_string(),
            error: error.to_owned(),
            at: SystemTime::now(),
        };
        self.fleet
            .update(self.id(), type_url, |t| t.last_nack = Some(nack));
    }

    /// Records a response just sent for the type.
    pub fn record_sent(&self, type_url: &str, sent: &Sent, subscribed: Option<usize>) {
        let revision = sent.revision;
        self.fleet.update(self.id(), type_url, |t| {
            t.subscribed = subscribed;
            t.sent_revision = Some(revision);
        });
    }

    /// Records that a view at `revision` left the type as `sent` carried it,
    /// so that the response stands for `revision` too. An acknowledged type
    /// is current at once, one still awaited becomes so when acknowledged; a
    /// rejected one stays behind, since the client holds something older.
    pub fn record_unchanged(&self, type_url: &str, sent: &mut Sent, revision: u64) {
        if sent.revision >= revision || sent.answer == Answer::Rejected {
            return;
        }
        sent.revision = revision;

        let acked = sent.answer == Answer::Acked;
        self.fleet.update(self.id(), type_url, |t| {
            t.sent_revision = Some(revision);
            if acked {
                t.acked_revision = Some(revision);
            }
        });
    }
}

/// The newest response of one type on a stream.
#[derive(Debug)]
pub struct Sent {
    pub nonce: String,
    /// The revision of the view whose content for the type the response
    /// carries; later views that leave that content alone move it forward.
    pub revision: u64,
    pub answer: Answer,
}

impl Sent {
    pub fn new(nonce: String, revision: u64) -> Self {
        Self {
            nonce,
            revision,
            answer: Answer::Awaited,
        }
    }
}

/// What the client said of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Awaited,
    Acked,
    Rejected,
}

/// Resolves when the server drains.
/// A server that can no longer say it drains never does.
pub async fn draining(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|draining| *draining).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The status a stream ends with when the server drains.
pub fn drained() -> Status {
    Status::unavailable("the control plane is shutting down; reconnect to another")
}

/// The status that ends a stream whose client sent a message that could not
/// be read as a request; `None` when the client merely went away.
pub fn unreadable(status: &Status) -> Option<Status> {
    match status.code() {
        Code::OutOfRange => Some(Status::resource_exhausted(format!(
            "a request is larger than the limit: {}",
            status.message()
        ))),
        Code::Internal | Code::InvalidArgument => Some(Status::invalid_argument(format!(
            "the request could not be read: {}",
            status.message()
        ))),
        _ => None,
    }
}

/// Whether a subscription that names nothing means every resource of the
/// type, as for listeners, clusters and the agent's types.
pub fn wildcard_by_default(type_url: &str) -> bool {
    type_url == envoy::LISTENER_TYPE
        || type_url == envoy::CLUSTER_TYPE
        || agent::TYPES.contains(&type_url)
}

/// Sends `item` on the response channel; false when the client is gone.
pub async fn send<T>(tx: &mpsc::Sender<Result<T, Status>>, item: T) -> bool {
    tx.send(Ok(item)).await.is_ok()
}

/// The view revision a version string names, if it names one.
pub fn revision_of(version: &str) -> Option<u64> {
    version.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_the_burst_then_the_rate() {
        let limits = Limits {
            requests_per_second: 10.0,
            request_burst: 3.0,
            ..Limits::default()
        };
        let mut limiter = RateLimiter::new(&limits);
        let start = limiter.last;

        assert!((0..3).all(|_| limiter.allow(start)));
        assert!(!limiter.allow(start));
        assert!(limiter.allow(start + Duration::from_millis(100)));
        assert!(!limiter.allow(start + Duration::from_millis(100)));
    }
}

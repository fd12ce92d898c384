//! Admin calls refused before their handler runs: a request message over the
//! size limit (see `crate::limits`), one that does not decode, a method the
//! service does not have. tonic answers these itself, so this layer around
//! the admin service audits them as the handlers audit their own refusals:
//! the refusal is answered only once it is in the audit log, and if the
//! audit cannot be written, the call fails as a store error instead.
//!
//! Nothing here reads the request body: the refusal is seen in the
//! response's status, so an oversized message is still refused from its
//! length prefix, unbuffered.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tonic::Status;
use tonic::body::Body;

use super::AdminService;
use crate::audit::{AuditRecord, Outcome};

/// The audit action of each admin RPC, as its handler records it.
const ACTIONS: [(&str, &str); 15] = [
    ("Apply", "apply"),
    ("Get", "get"),
    ("List", "list"),
    ("Delete", "delete"),
    ("Watch", "watch"),
    ("ListAudit", "audit list"),
    ("VerifyAudit", "audit verify"),
    ("WhoAmI", "whoami"),
    ("CreateJoinToken", "node token create"),
    ("RevokeNode", "node revoke"),
    ("KeyStatus", "key status"),
    ("PrepareKey", "key prepare"),
    ("ActivateKey", "key activate"),
    ("RetireKey", "key retire"),
    ("FleetStatus", "status"),
];

/// The audit action for a request path such as `/palisade.admin.v1.Admin/Apply`;
/// a method the service does not have is recorded by its whole path.
fn action_of(path: &str) -> String {
    let method = path.rsplit('/').next().unwrap_or_default();
    ACTIONS
        .iter()
        .find(|(name, _)| *name == method)
        .map(|(_, action)| (*action).to_owned())
        .unwrap_or_else(|| path.to_owned())
}

/// Set once a handler has taken the call; a handler audits its own refusals.
#[derive(Clone, Debug, Default)]
pub(super) struct HandlerReached(Arc<AtomicBool>);

impl HandlerReached {
    /// Marks the request as taken by its handler.
    pub(super) fn mark<T>(request: &tonic::Request<T>) {
        if let Some(reached) = request.extensions().get::<HandlerReached>() {
            reached.0.store(true, Ordering::Release);
        }
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Wraps the admin service in [`EarlyRefusalAudit`].
#[derive(Clone)]
pub struct EarlyRefusalLayer {
    admin: AdminService,
}

impl EarlyRefusalLayer {
    /// `admin` is the service whose callers are identified and audited.
    pub fn new(admin: AdminService) -> Self {
        Self { admin }
    }
}

impl<S> tower::Layer<S> for EarlyRefusalLayer {
    type Service = EarlyRefusalAudit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EarlyRefusalAudit {
            inner,
            admin: self.admin.clone(),
        }
    }
}

/// The service that [`EarlyRefusalLayer`] makes.
#[derive(Clone)]
pub struct EarlyRefusalAudit<S> {
    inner: S,
    admin: AdminService,
}

impl<S> tower::Service<http::Request<Body>> for EarlyRefusalAudit<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let reached = HandlerReached::default();
        request.extensions_mut().insert(reached.clone());
        let connection = request.extensions().clone();
        let action = action_of(request.uri().path());

        // The inner service that was made ready is the one to call.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let admin = self.admin.clone();
        Box::pin(async move {
            let response = inner.call(request).await?;
            if reached.is_set() {
                return Ok(response);
            }
            let Some(status) = Status::from_header_map(response.headers()) else {
                return Ok(response);
            };

            match admin
                .audit_early_refusal(connection, &action, &status)
                .await
            {
                Ok(()) => Ok(response),
                Err(failed) => Ok(failed.into_http()),
            }
        })
    }
}

impl AdminService {
    /// Audits a call refused before its handler ran. The actor is the
    /// caller's SPIFFE ID if its certificate names one, else the peer.
    async fn audit_early_refusal(
        &self,
        connection: http::Extensions,
        action: &str,
        status: &Status,
    ) -> Result<(), Status> {
        let mut probe = http::Request::new(());
        *probe.extensions_mut() = connection;
        let actor = match self.identify(&tonic::Request::from_http(probe)) {
            Ok(identity) => identity,
            Err((peer, _)) => peer,
        };

        let detail = match status.message() {
            "" => status.code().description(),
            message => message,
        };
        let record = AuditRecord::now(&actor, action, Outcome::Invalid).with_detail(detail);
        self.audit_refusal(record).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_admin_rpc_is_audited_under_its_handlers_action() {
        let proto = include_str!("../../../proto/proto/palisade/admin/v1/admin.proto");
        let methods: Vec<&str> = proto
            .lines()
            .filter_map(|line| line.trim().strip_prefix("rpc "))
            .map(|rest| rest.split('(').next().unwrap_or_default().trim())
            .collect();

        assert!(methods.len() >= 15, "{methods:?}");
        for method in methods {
            let path = format!("/palisade.admin.v1.Admin/{method}");
            assert_ne!(action_of(&path), path, "{method} has no audit action");
        }
    }

    #[test]
    fn an_unknown_method_is_recorded_by_its_path() {
        let path = "/palisade.admin.v1.Admin/Shutdown";

        assert_eq!(action_of(path), path);
        assert_eq!(
            action_of("/palisade.admin.v1.Admin/"),
            "/palisade.admin.v1.Admin/"
        );
    }
}

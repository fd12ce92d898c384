//! Watch: a stream of changes after a revision, filtered by kind, namespace
//! and what the caller may watch. Streams end when the server drains.

use std::pin::Pin;

use palisade_model::Kind;
use palisade_proto::admin as pb;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status};

use super::resource::{action_to_proto, key_of, parse_kind, to_proto};
use super::{AdminService, Caller};
use crate::authz::{Permission, Verb};
use crate::store::{ChangeEvent, watch};

/// The stream a Watch call returns.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

const BUFFER: usize = 256;

/// Which events a watcher receives.
struct Filter {
    caller: Caller,
    kind: Option<Kind>,
    namespace: String,
}

impl AdminService {
    pub(super) async fn watch_changes(
        &self,
        caller: Caller,
        request: pb::WatchRequest,
    ) -> Result<Response<WatchStream>, Status> {
        let kind = match request.kind.as_str() {
            "" => None,
            kind => match parse_kind(kind) {
                Ok(kind) => Some(kind),
                Err(error) => {
                    return Err(self
                        .finish::<()>(&caller, "watch", Vec::new(), Err(error))
                        .await
                        .unwrap_err());
                }
            },
        };
        let target = vec![format!(
            "{}/{}",
            kind.map_or("*", |k| k.as_str()),
            request.namespace
        )];
        let watchable = match kind {
            Some(kind) => caller.grants.allows_somewhere(Verb::Watch, kind),
            None => Kind::ALL
                .iter()
                .any(|k| caller.grants.allows_somewhere(Verb::Watch, *k)),
        };
        if !request.namespace.is_empty() || !watchable {
            let permission = Permission::on(
                Verb::Watch,
                kind.unwrap_or(Kind::Service),
                &request.namespace,
            );
            self.authorize(&caller, "watch", permission, &target)
                .await?;
        }

        let store = self.state.store.clone();
        let after = match request.after_revision {
            0 => store.revision(),
            revision => revision,
        };
        let changes = watch::changes(store, after);
        let filter = Filter {
            caller,
            kind,
            namespace: request.namespace,
        };

        let (tx, rx) = mpsc::channel(BUFFER);
        tokio::spawn(forward(changes, filter, tx, self.state.shutdown.clone()));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

async fn forward(
    mut changes: mpsc::Receiver<watch::Followed>,
    filter: Filter,
    tx: mpsc::Sender<Result<pb::WatchEvent, Status>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let followed = tokio::select! {
            _ = shutdown.wait_for(|draining| *draining) => return,
            _ = tx.closed() => return,
            followed = changes.recv() => followed,
        };

        let batch = match followed {
            Some(Ok(batch)) => batch,
            Some(Err(error)) => {
                tracing::error!(%error, "watch stopped");
                let _ = tx
                    .send(Err(Status::unavailable("the store stopped; watch again")))
                    .await;
                return;
            }
            None => return,
        };
        for event in &batch.events {
            let Some(message) = filter.event(batch.revision, event) else {
                continue;
            };
            if tx.send(Ok(message)).await.is_err() {
                return;
            }
        }
    }
}

impl Filter {
    fn event(&self, revision: u64, event: &ChangeEvent) -> Option<pb::WatchEvent> {
        let key = key_of(&event.resource).ok()?;
        if self.kind.is_some_and(|kind| kind != key.kind) {
            return None;
        }
        if !self.namespace.is_empty() && self.namespace != key.namespace {
            return None;
        }
        let permission = Permission::on(Verb::Watch, key.kind, &key.namespace);
        if !self.caller.grants.allows(&permission) {
            return None;
        }

        Some(pb::WatchEvent {
            revision,
            action: action_to_proto(event.action) as i32,
            resource: Some(to_proto(&event.resource).ok()?),
        })
    }
}

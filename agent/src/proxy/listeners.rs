//! The listeners that run, and the accept loop they share: a connection
//! limit per listener, and a task per connection so that no caller waits
//! for another.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::counters::Counters;
use super::{Context, inbound, outbound};

/// How long to pause accepting after an accept error (such as running out
/// of file descriptors), so that the loop does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// One listener: what it serves, and where.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ListenerKey {
    Inbound {
        workload: String,
        address: SocketAddr,
    },
    Outbound {
        address: SocketAddr,
        workload: String,
        service: String,
    },
}

impl ListenerKey {
    fn address(&self) -> SocketAddr {
        match self {
            ListenerKey::Inbound { address, .. } | ListenerKey::Outbound { address, .. } => {
                *address
            }
        }
    }
}

/// The running listeners.
#[derive(Debug, Default)]
pub struct Listeners {
    running: BTreeMap<ListenerKey, Running>,
}

#[derive(Debug)]
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Listeners {
    /// Closes the listeners not in `wanted` and opens those missing; the
    /// others keep running. False when one could not bind.
    pub async fn reconcile(
        &mut self,
        wanted: BTreeSet<ListenerKey>,
        context: &Arc<Context>,
    ) -> bool {
        // Close first, so that an address can pass to a new owner.
        let gone: Vec<ListenerKey> = self
            .running
            .keys()
            .filter(|key| !wanted.contains(*key))
            .cloned()
            .collect();
        for key in gone {
            if let Some(running) = self.running.remove(&key) {
                running.close().await;
                tracing::info!(listener = ?key, "listener closed");
            }
        }

        let mut bound = true;
        let missing: Vec<ListenerKey> = wanted
            .into_iter()
            .filter(|key| !self.running.contains_key(key))
            .collect();
        for key in missing {
            match open(&key, context).await {
                Some(running) => {
                    self.running.insert(key, running);
                }
                None => bound = false,
            }
        }
        bound
    }

    /// Closes every listener; established connections go on.
    pub async fn close_all(&mut self) {
        for (_, running) in std::mem::take(&mut self.running) {
            running.close().await;
        }
    }
}

impl Running {
    /// Stops accepting and waits until the socket is closed.
    async fn close(self) {
        let _ = self.stop.send(());
        if let Err(error) = self.task.await {
            tracing::error!(%error, "listener task failed");
        }
    }
}

/// Binds the listener of `key` and starts accepting on it.
async fn open(key: &ListenerKey, context: &Arc<Context>) -> Option<Running> {
    let address = key.address();
    let listener = match TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%address, listener = ?key, %error, "listener could not bind");
            return None;
        }
    };
    let (stop, stopped) = oneshot::channel();

    let task = match key {
        ListenerKey::Inbound { workload, .. } => {
            let span = tracing::info_span!("inbound", %workload, %address);
            let serve = inbound::serve(listener, workload.clone(), context.clone(), stopped);
            tokio::spawn(serve.instrument(span))
        }
        ListenerKey::Outbound {
            workload, service, ..
        } => {
            let span = tracing::info_span!("outbound", %workload, %service, %address);
            let serve = outbound::serve(
                listener,
                workload.clone(),
                service.clone(),
                context.clone(),
                stopped,
            );
            tokio::spawn(serve.instrument(span))
        }
    };
    tracing::info!(%address, listener = ?key, "listening");
    Some(Running { stop, task })
}

/// Accepts connections on `listener` until `stop`, handing each to
/// `connection` with a permit of the listener's limit. A connection beyond
/// the limit is closed at once.
pub async fn accept<F, Fut>(
    listener: TcpListener,
    context: &Context,
    mut stop: oneshot::Receiver<()>,
    connection: F,
) where
    F: Fn(TcpStream, SocketAddr, OwnedSemaphorePermit) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = context.settings.max_connections.min(Semaphore::MAX_PERMITS);
    let limit = Arc::new(Semaphore::new(permits));
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };

        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            Counters::bump(&context.counters.over_limit);
            tracing::debug!(%peer, "listener full; connection closed");
            continue;
        };

        let _ = stream.set_nodelay(true);
        let span = tracing::info_span!("connection", %peer);
        context.spawn_connection(span, connection(stream, peer, permit));
    }
}

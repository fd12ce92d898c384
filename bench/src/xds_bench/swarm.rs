//! The swarm: every simulated agent of one process, started in waves, told
//! when to reconnect, and heard through one channel of [`Event`]s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use super::agent::{self, AgentSpec, Links};
use super::events::{Event, Synced};

/// Errors waiting on the swarm.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error(
        "{synced} of {expected} agents synced within {timeout:?} ({failed} failed; first error: {first_error})"
    )]
    NotSynced {
        synced: usize,
        failed: usize,
        expected: usize,
        timeout: Duration,
        first_error: String,
    },
    #[error("{ended} of {expected} streams ended within {timeout:?}")]
    NotEnded {
        ended: usize,
        expected: usize,
        timeout: Duration,
    },
}

/// Every running agent.
pub struct Swarm {
    events: mpsc::UnboundedReceiver<Event>,
    sender: mpsc::UnboundedSender<Event>,
    gate: Arc<Semaphore>,
    reconnect: watch::Sender<u64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Swarm {
    /// An empty swarm whose agents make at most `concurrency` first
    /// connections at once.
    pub fn new(concurrency: usize) -> Self {
        let (sender, events) = mpsc::unbounded_channel();
        Self {
            events,
            sender,
            gate: Arc::new(Semaphore::new(concurrency.max(1))),
            reconnect: watch::channel(0).0,
            tasks: Vec::new(),
        }
    }

    /// Agents running.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Starts one task per agent.
    pub fn spawn(&mut self, specs: impl IntoIterator<Item = AgentSpec>) {
        for spec in specs {
            let links = Links {
                events: self.sender.clone(),
                gate: self.gate.clone(),
                reconnect: self.reconnect.subscribe(),
            };
            self.tasks.push(tokio::spawn(agent::run(spec, links)));
        }
    }

    /// Tells every agent whose stream ended to reconnect, all at once.
    pub fn reconnect_all(&self) {
        self.reconnect.send_modify(|generation| *generation += 1);
    }

    /// Discards the events that arrived so far.
    pub fn discard(&mut self) -> usize {
        let mut discarded = 0;
        while self.events.try_recv().is_ok() {
            discarded += 1;
        }
        discarded
    }

    /// The next event, unless `deadline` comes first.
    pub async fn next(&mut self, deadline: Instant) -> Option<Event> {
        tokio::time::timeout_at(deadline.into(), self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits until `expected` agents synced a new stream (an agent that
    /// syncs twice counts once, with its first); other events are dropped.
    pub async fn synced(
        &mut self,
        expected: usize,
        timeout: Duration,
    ) -> Result<Vec<Synced>, SwarmError> {
        let deadline = Instant::now() + timeout;
        let mut synced: BTreeMap<usize, Synced> = BTreeMap::new();
        let mut failed = Vec::new();
        while synced.len() + failed.len() < expected {
            match self.next(deadline).await {
                Some(Event::Synced(s)) => {
                    synced.entry(s.agent).or_insert(s);
                }
                Some(Event::Ended {
                    synced: false,
                    agent,
                    error,
                }) => failed.push(format!("agent {agent}: {error}")),
                Some(_) => {}
                None => break,
            }
        }
        let synced: Vec<Synced> = synced.into_values().collect();

        match synced.len() == expected {
            true => Ok(synced),
            false => Err(SwarmError::NotSynced {
                synced: synced.len(),
                failed: failed.len(),
                expected,
                timeout,
                first_error: failed.into_iter().next().unwrap_or_else(|| "none".into()),
            }),
        }
    }

    /// Waits until `expected` synced streams ended.
    pub async fn ended(&mut self, expected: usize, timeout: Duration) -> Result<(), SwarmError> {
        let deadline = Instant::now() + timeout;
        let mut ended = 0;
        while ended < expected {
            match self.next(deadline).await {
                Some(Event::Ended { synced: true, .. }) => ended += 1,
                Some(_) => {}
                None => {
                    return Err(SwarmError::NotEnded {
                        ended,
                        expected,
                        timeout,
                    });
                }
            }
        }
        Ok(())
    }
}

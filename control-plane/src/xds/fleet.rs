//! The fleet: every connected xDS stream, what it subscribed to, what it
//! acknowledged and what it rejected, for `palisadectl status`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::view::ClientKey;

/// The protocol variant a stream speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    StateOfTheWorld,
    Delta,
}

/// A rejected response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    pub version: String,
    pub error: String,
    pub at: SystemTime,
}

/// One type's state on one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeStatus {
    /// `None` for a wildcard subscription.
    pub subscribed: Option<usize>,
    /// The version (a store revision) of the newest response sent. A newer
    /// view that leaves the type as that response carried it moves this to
    /// the newer view's revision, since nothing need be sent for it.
    pub sent_revision: Option<u64>,
    /// The version of the newest response acknowledged, moved forward in the
    /// same way; so a client that applied everything sent to it is at its
    /// view's revision in every type, not only in those that changed.
    pub acked_revision: Option<u64>,
    pub last_nack: Option<Nack>,
    /// What the client holds, by name: the acknowledged versions.
    pub held: BTreeMap<String, String>,
}

/// One stream.
#[derive(Clone, Debug)]
pub struct StreamStatus {
    pub id: u64,
    pub client: ClientKey,
    pub protocol: Protocol,
    pub peer: String,
    pub connected_since: SystemTime,
    pub types: BTreeMap<String, TypeStatus>,
}

/// Every connected stream.
#[derive(Debug, Default)]
pub struct Fleet {
    next_id: AtomicU64,
    streams: Mutex<Streams>,
}

/// The streams by id, and how many each client has open, so that checking
/// a client's limit costs the same in a fleet of ten or of ten thousand.
#[derive(Debug, Default)]
struct Streams {
    by_id: HashMap<u64, StreamStatus>,
    per_client: HashMap<ClientKey, usize>,
}

impl Streams {
    fn insert(&mut self, status: StreamStatus) {
        *self.per_client.entry(status.client.clone()).or_default() += 1;
        self.by_id.insert(status.id, status);
    }

    fn remove(&mut self, id: u64) {
        let Some(status) = self.by_id.remove(&id) else {
            return;
        };
        if let Some(open) = self.per_client.get_mut(&status.client) {
            *open -= 1;
            if *open == 0 {
                self.per_client.remove(&status.client);
            }
        }
    }

    fn open(&self, client: &ClientKey) -> usize {
        self.per_client.get(client).copied().unwrap_or(0)
    }
}

/// A stream's registration; dropping it removes the stream.
#[derive(Debug)]
pub struct Registration {
    fleet: Arc<Fleet>,
    pub id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.fleet
            .streams
            .lock()
            .expect("fleet lock")
            .remove(self.id);
    }
}

impl Fleet {
    /// Registers a stream, unless `client` already has `limit` streams.
    pub fn register(
        self: &Arc<Self>,
        client: ClientKey,
        protocol: Protocol,
        peer: String,
        limit: usize,
    ) -> Option<Registration> {
        let mut streams = self.streams.lock().expect("fleet lock");
        if streams.open(&client) >= limit {
            return None;
        }

        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        streams.insert(StreamStatus {
            id,
            client,
            protocol,
            peer,
            connected_since: SystemTime::now(),
            types: BTreeMap::new(),
        });
        Some(Registration {
            fleet: self.clone(),
            id,
        })
    }

    /// Changes one type's status on stream `id`.
    pub fn update(&self, id: u64, type_url: &str, change: impl FnOnce(&mut TypeStatus)) {
        let mut streams = self.streams.lock().expect("fleet lock");
        if let Some(stream) = streams.by_id.get_mut(&id) {
            change(stream.types.entry(type_url.to_owned()).or_default());
        }
    }

    /// Every stream, ordered by client then id.
    pub fn snapshot(&self) -> Vec<StreamStatus> {
        let streams = self.streams.lock().expect("fleet lock");
        let mut all: Vec<StreamStatus> = streams.by_id.values().cloned().collect();
        all.sort_by(|a, b| (&a.client, a.id).cmp(&(&b.client, b.id)));
        all
    }

    /// How many streams are connected.
    pub fn len(&self) -> usize {
        self.streams.lock().expect("fleet lock").by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str) -> ClientKey {
        ClientKey::Agent(name.into())
    }

    #[test]
    fn streams_per_client_are_limited() {
        let fleet = Arc::new(Fleet::default());

        let first = fleet.register(agent("a"), Protocol::Delta, "p".into(), 2);
        let second = fleet.register(agent("a"), Protocol::Delta, "p".into(), 2);
        let third = fleet.register(agent("a"), Protocol::Delta, "p".into(), 2);
        let other = fleet.register(agent("b"), Protocol::Delta, "p".into(), 2);

        assert!(first.is_some() && second.is_some() && other.is_some());
        assert!(third.is_none());
        assert_eq!(fleet.len(), 3);
    }

    #[test]
    fn a_closed_stream_frees_its_place_under_the_limit() {
        let fleet = Arc::new(Fleet::default());
        let first = fleet.register(agent("a"), Protocol::Delta, "p".into(), 1);
        assert!(
            fleet
                .register(agent("a"), Protocol::Delta, "p".into(), 1)
                .is_none()
        );

        drop(first);
        let again = fleet.register(agent("a"), Protocol::Delta, "p".into(), 1);

        assert!(again.is_some());
        assert_eq!(fleet.len(), 1);
    }

    #[test]
    fn dropped_registration_leaves_the_fleet() {
        let fleet = Arc::new(Fleet::default());
        let registration = fleet
            .register(agent("a"), Protocol::StateOfTheWorld, "p".into(), 1)
            .unwrap();
        fleet.update(registration.id, "t", |t| t.acked_revision = Some(7));

        assert_eq!(fleet.snapshot()[0].types["t"].acked_revision, Some(7));
        drop(registration);
        assert!(fleet.is_empty());
    }
}

//! What simulated agents report to the swarm.

use std::time::Instant;

/// One agent's report.
#[derive(Debug)]
pub enum Event {
    /// A new stream answered every type.
    Synced(Synced),
    /// A response after the stream synced.
    Update(Update),
    /// A stream ended, or no stream could be opened.
    Ended {
        agent: usize,
        /// Whether the stream had synced.
        synced: bool,
        error: String,
    },
}

/// A stream that answered every type, and what those first answers held.
#[derive(Clone, Copy, Debug)]
pub struct Synced {
    pub agent: usize,
    pub first_response: Instant,
    /// When the last of the first answers was acknowledged.
    pub acked: Instant,
    /// Resources in the first answers.
    pub resources: u32,
    /// Of those, the ones the agent already held at the same version.
    pub unchanged: u32,
    /// Encoded size of the first answers.
    pub bytes: usize,
    /// Streams tried, this one included.
    pub attempts: u32,
}

/// One response on a synced stream.
#[derive(Clone, Copy, Debug)]
pub struct Update {
    pub agent: usize,
    /// The type, as an index into the agent types.
    pub type_index: usize,
    pub received: Instant,
    /// When its acknowledgement was handed to the stream.
    pub acked: Instant,
    pub resources: u32,
    /// Resources the agent already held at the same version.
    pub unchanged: u32,
    /// The response's encoded size.
    pub bytes: usize,
}

//! The concurrent-client driver and its latency record.
//!
//! Each client runs in its own task and sends one call at a time, waiting
//! for the answer before the next: so N clients keep at most N calls in
//! flight. Every client makes one untimed call first (connection set-up,
//! first-use costs), then the clock starts. A load ends at its call budget or
//! its deadline, whichever comes first.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;

/// One client of a load: makes call number `n`, whose number is unique
/// within the load (so that it can name a new key).
pub trait Client: Send + 'static {
    fn call(&mut self, n: u64) -> impl Future<Output = Result<(), tonic::Status>> + Send;
}

/// How much a load sends.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub duration: Duration,
    pub max_calls: u64,
}

/// Errors of a load as a whole (single failed calls are only counted).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the first call of client {client} failed: {status}")]
    Warmup {
        client: usize,
        status: tonic::Status,
    },
    #[error("a client task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What a load achieved.
#[derive(Debug)]
pub struct Outcome {
    pub elapsed: Duration,
    pub latencies: Latencies,
    pub errors: u64,
    pub first_error: Option<tonic::Status>,
}

impl Outcome {
    /// Successful calls per second.
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Latencies of successful calls.
#[derive(Debug, Default)]
pub struct Latencies {
    samples: Vec<Duration>,
    sorted: bool,
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        self.samples.push(latency);
        self.sorted = false;
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn merge(&mut self, other: Latencies) {
        self.samples.extend(other.samples);
        self.sorted = false;
    }

    /// The latency below which a fraction `q` of the calls finished
    /// (nearest rank); zero if nothing was recorded.
    pub fn quantile(&mut self, q: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        if !self.sorted {
            self.samples.sort_unstable();
            self.sorted = true;
        }

        let rank = (q * self.samples.len() as f64).ceil() as usize;
        self.samples[rank.clamp(1, self.samples.len()) - 1]
    }
}

/// What one client task reports.
struct ClientReport {
    latencies: Latencies,
    errors: u64,
    first_error: Option<tonic::Status>,
}

/// Runs `clients` concurrently within `limits`.
pub async fn run<C: Client>(mut clients: Vec<C>, limits: Limits) -> Result<Outcome, LoadError> {
    let next = Arc::new(AtomicU64::new(0));
    warm_up(&mut clients, &next).await?;

    // Timed calls.
    let started = Instant::now();
    let deadline = started + limits.duration;
    let budget = next.load(Ordering::Relaxed) + limits.max_calls;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(drive(client, next.clone(), budget, deadline)))
        .collect();

    // Gather the clients' reports.
    let mut outcome = Outcome {
        elapsed: Duration::ZERO,
        latencies: Latencies::default(),
        errors: 0,
        first_error: None,
    };
    for task in tasks {
        let report = task.await?;
        outcome.latencies.merge(report.latencies);
        outcome.errors += report.errors;
        outcome.first_error = outcome.first_error.or(report.first_error);
    }
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

async fn warm_up<C: Client>(clients: &mut [C], next: &AtomicU64) -> Result<(), LoadError> {
    let calls = clients
        .iter_mut()
        .map(|client| client.call(next.fetch_add(1, Ordering::Relaxed)));
    for (client, result) in join_all(calls).await.into_iter().enumerate() {
        result.map_err(|status| LoadError::Warmup { client, status })?;
    }
    Ok(())
}

async fn drive<C: Client>(
    mut client: C,
    next: Arc<AtomicU64>,
    budget: u64,
    deadline: Instant,
) -> ClientReport {
    let mut report = ClientReport {
        latencies: Latencies::default(),
        errors: 0,
        first_error: None,
    };
    while Instant::now() < deadline {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= budget {
            break;
        }

        let sent = Instant::now();
        match client.call(n).await {
            Ok(()) => report.latencies.record(sent.elapsed()),
            Err(status) => {
                report.errors += 1;
                report.first_error = report.first_error.or(Some(status));
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let mut latencies = Latencies::default();
        for ms in (1..=100).rev() {
            latencies.record(Duration::from_millis(ms));
        }

        assert_eq!(latencies.quantile(0.5), Duration::from_millis(50));
        assert_eq!(latencies.quantile(0.99), Duration::from_millis(99));
        assert_eq!(latencies.quantile(1.0), Duration::from_millis(100));
    }

    struct Counter;

    impl Client for Counter {
        async fn call(&mut self, _n: u64) -> Result<(), tonic::Status> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_load_stops_at_its_call_budget() {
        let limits = Limits {
            duration: Duration::from_secs(60),
            max_calls: 1_000,
        };
        let outcome = run(vec![Counter, Counter, Counter], limits).await.unwrap();

        assert_eq!(outcome.latencies.len(), 1_000);
        assert_eq!(outcome.errors, 0);
    }
}

//! The open-loop driver: calls start on a fixed schedule whatever the
//! replies do, and each call's latency runs from the time it was due to its
//! reply. A server that falls behind is charged for the queue it builds,
//! instead of slowing the load down (as a closed loop would).

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::load::Latencies;

/// When calls are due: `rate` per second for `duration`.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Calls per second.
    pub rate: f64,
    /// How long calls are sent.
    pub duration: Duration,
}

impl Schedule {
    /// How many calls the schedule sends.
    pub fn calls(&self) -> u64 {
        (self.rate * self.duration.as_secs_f64()).round() as u64
    }

    fn due(&self, started: Instant, n: u64) -> Instant {
        started + Duration::from_secs_f64(n as f64 / self.rate)
    }
}

/// What a paced load achieved.
#[derive(Debug)]
pub struct PacedOutcome {
    /// Calls sent.
    pub sent: u64,
    /// From the first call's due time to the last reply.
    pub elapsed: Duration,
    /// From due time to reply, of successful calls.
    pub latencies: Latencies,
    /// How late the driver itself started calls (timer granularity and
    /// scheduling), which the latencies include.
    pub start_lag: Latencies,
    pub errors: u64,
    pub first_error: Option<tonic::Status>,
}

impl PacedOutcome {
    /// Successful calls per second over the whole run.
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Starts `call(n)` for every call of `schedule` at its due time, each in a
/// task of its own, and waits for every reply. A thread of its own keeps
/// the schedule, because the runtime's timers tick only every millisecond.
pub async fn run<F, Fut>(schedule: Schedule, call: F) -> PacedOutcome
where
    F: FnMut(u64) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let (tx, mut replies) = mpsc::unbounded_channel();
    let runtime = tokio::runtime::Handle::current();
    let started = Instant::now();
    let pacer = tokio::task::spawn_blocking(move || pace(schedule, started, call, runtime, tx));

    // Gather the replies until the pacer and every call are done.
    let mut outcome = PacedOutcome {
        sent: schedule.calls(),
        elapsed: Duration::ZERO,
        latencies: Latencies::default(),
        start_lag: Latencies::default(),
        errors: 0,
        first_error: None,
    };
    while let Some((result, latency)) = replies.recv().await {
        match result {
            Ok(()) => outcome.latencies.record(latency),
            Err(status) => {
                outcome.errors += 1;
                outcome.first_error = outcome.first_error.or(Some(status));
            }
        }
    }
    outcome.elapsed = started.elapsed();
    outcome.start_lag = pacer.await.expect("the pacer thread panicked");
    outcome
}

type Reply = (Result<(), tonic::Status>, Duration);

/// Sleeps until each call is due and starts it on `runtime`; returns how
/// late each one started.
fn pace<F, Fut>(
    schedule: Schedule,
    started: Instant,
    mut call: F,
    runtime: tokio::runtime::Handle,
    tx: mpsc::UnboundedSender<Reply>,
) -> Latencies
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let mut start_lag = Latencies::default();
    for n in 0..schedule.calls() {
        let due = schedule.due(started, n);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        start_lag.record(due.elapsed());

        let reply = call(n);
        let tx = tx.clone();
        runtime.spawn(async move {
            let result = reply.await;
            let _ = tx.send((result, due.elapsed()));
        });
    }
    start_lag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_scheduled_call_is_sent_and_answered() {
        let schedule = Schedule {
            rate: 1_000.0,
            duration: Duration::from_millis(200),
        };
        let mut outcome = run(schedule, |_| async { Ok(()) }).await;

        assert_eq!(outcome.sent, 200);
        assert_eq!(outcome.latencies.len(), 200);
        assert!(outcome.elapsed >= Duration::from_millis(199));
        assert!(outcome.latencies.quantile(1.0) < Duration::from_millis(100));
    }
}

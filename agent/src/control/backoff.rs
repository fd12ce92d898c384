//! Delays between attempts to reach the control plane: exponential, with
//! full jitter, so that a fleet of agents that lost the control plane at
//! the same moment does not come back at the same moment.

use std::time::Duration;

use tokio::sync::watch;

/// How the xDS client waits before reconnecting.
pub const RECONNECT: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
/// How identity calls wait before trying again.
pub const IDENTITY_RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

/// Exponential backoff with full jitter.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// Starts at `initial` and doubles per failure up to `max`.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            failures: 0,
        }
    }

    /// The longest the next delay may be: `initial` doubled once per failure
    /// so far, at most `max`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32 << self.failures.min(31);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The next delay, drawn uniformly from zero to the ceiling by
    /// `random`, and counts one more failure.
    pub fn next_with(&mut self, random: u64) -> Duration {
        let ceiling = u64::try_from(self.ceiling().as_nanos()).unwrap_or(u64::MAX);
        self.failures = self.failures.saturating_add(1);

        let nanos = match ceiling.checked_add(1) {
            Some(span) => random % span,
            None => random,
        };
        Duration::from_nanos(nanos)
    }

    /// The next delay, with randomness from the system.
    pub fn next_delay(&mut self) -> Duration {
        self.next_with(random_u64())
    }

    /// Forgets past failures, after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Sleeps for `delay` unless `shutdown` turns true first; returns whether
/// it did. A shutdown sender that is gone counts as a shutdown.
pub async fn sleep_unless_stopped(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        () = stopped(shutdown) => true,
    }
}

/// Resolves once `shutdown` turns true, or its sender is gone.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        return now.map_or(0, |d| u64::from(d.subsec_nanos()));
    }
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_from_100_ms_up_to_30_s() {
        let mut backoff = RECONNECT;
        let mut ceilings = Vec::new();
        for _ in 0..12 {
            ceilings.push(backoff.ceiling().as_millis());
            backoff.next_with(0);
        }

        assert_eq!(
            ceilings,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000
            ]
        );
    }

    #[test]
    fn delays_are_jittered_between_zero_and_the_ceiling() {
        let mut backoff = RECONNECT;
        assert_eq!(backoff.next_with(0), Duration::ZERO);
        assert_eq!(backoff.next_with(200_000_000), Duration::from_millis(200));
        assert!(backoff.next_with(u64::MAX) <= Duration::from_millis(400));

        for _ in 0..100 {
            let ceiling = backoff.ceiling();
            assert!(backoff.next_delay() <= ceiling);
        }
    }

    #[test]
    fn a_reset_starts_over() {
        let mut backoff = RECONNECT;
        for _ in 0..5 {
            backoff.next_delay();
        }

        backoff.reset();

        assert_eq!(backoff.ceiling(), Duration::from_millis(100));
    }

    #[test]
    fn many_failures_never_overflow() {
        let mut backoff = IDENTITY_RETRY;
        for _ in 0..1000 {
            backoff.next_with(u64::MAX);
        }
        assert_eq!(backoff.ceiling(), Duration::from_secs(60));
    }
}

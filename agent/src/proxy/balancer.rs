//! Choosing an endpoint of a service: round robin over the endpoints in
//! rotation. An endpoint that failed to connect or to complete the
//! handshake leaves the rotation for a backoff that doubles with each
//! failure in a row, from [`FIRST_BACKOFF`] to [`MAX_BACKOFF`]; then it is
//! tried again. When every endpoint is out, the one that failed least
//! recently is tried.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The endpoints of one service and how they fared.
#[derive(Debug)]
pub struct Balancer {
    /// The endpoints, sorted; they never change.
    addresses: Vec<SocketAddr>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    endpoints: Vec<Health>,
    /// Where the next round robin search starts.
    next: usize,
}

#[derive(Clone, Copy, Debug)]
struct Health {
    address: SocketAddr,
    /// Failures in a row.
    failures: u32,
    last_failure: Option<Instant>,
    /// Out of rotation until then.
    retry_at: Option<Instant>,
}

impl Balancer {
    /// A balancer over `addresses`, keeping what `previous` knew of the
    /// endpoints that remain.
    pub fn new(addresses: &[SocketAddr], previous: Option<&Balancer>) -> Self {
        let known: BTreeMap<SocketAddr, Health> = previous
            .map(|previous| {
                previous
                    .lock()
                    .endpoints
                    .iter()
                    .map(|h| (h.address, *h))
                    .collect()
            })
            .unwrap_or_default();

        let endpoints = addresses
            .iter()
            .map(|address| known.get(address).copied().unwrap_or(Health::new(*address)))
            .collect();
        let mut addresses = addresses.to_vec();
        addresses.sort_unstable();
        Self {
            addresses,
            state: Mutex::new(State { endpoints, next: 0 }),
        }
    }

    /// How many endpoints there are.
    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    /// Whether `address` is one of the endpoints.
    pub fn contains(&self, address: SocketAddr) -> bool {
        self.addresses.binary_search(&address).is_ok()
    }

    /// The next endpoint to try that is not in `tried`: the next in
    /// rotation, else the one out of rotation that failed least recently.
    pub fn pick(&self, now: Instant, tried: &[SocketAddr]) -> Option<SocketAddr> {
        let mut state = self.lock();
        let count = state.endpoints.len();
        let untried = |health: &Health| !tried.contains(&health.address);

        let in_rotation = (0..count)
            .map(|offset| (state.next + offset) % count)
            .find(|&i| untried(&state.endpoints[i]) && state.endpoints[i].in_rotation(now));
        let chosen = in_rotation.or_else(|| {
            (0..count)
                .filter(|&i| untried(&state.endpoints[i]))
                .min_by_key(|&i| state.endpoints[i].last_failure)
        })?;

        state.next = (chosen + 1) % count;
        Some(state.endpoints[chosen].address)
    }

    /// Takes `address` out of rotation, for longer after each failure.
    pub fn failed(&self, address: SocketAddr, now: Instant) {
        self.update(address, |health| {
            health.failures = health.failures.saturating_add(1);
            health.last_failure = Some(now);
            health.retry_at = Some(now + backoff(health.failures));
        });
    }

    /// Puts `address` back in rotation.
    pub fn succeeded(&self, address: SocketAddr) {
        self.update(address, |health| {
            health.failures = 0;
            health.retry_at = None;
        });
    }

    fn update(&self, address: SocketAddr, change: impl FnOnce(&mut Health)) {
        let mut state = self.lock();
        if let Some(health) = state.endpoints.iter_mut().find(|h| h.address == address) {
            change(health);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("balancer lock")
    }
}

impl Health {
    fn new(address: SocketAddr) -> Self {
        Self {
            address,
            failures: 0,
            last_failure: None,
            retry_at: None,
        }
    }

    fn in_rotation(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|at| at <= now)
    }
}

/// The backoff after `failures` failures in a row.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(count: u16) -> Vec<SocketAddr> {
        (1..=count)
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .collect()
    }

    fn picks(balancer: &Balancer, now: Instant, count: usize) -> Vec<u16> {
        (0..count)
            .map(|_| balancer.pick(now, &[]).unwrap().port())
            .collect()
    }

    #[test]
    fn endpoints_take_turns() {
        let balancer = Balancer::new(&addresses(3), None);

        assert_eq!(picks(&balancer, Instant::now(), 5), [1, 2, 3, 1, 2]);
    }

    #[test]
    fn a_failed_endpoint_leaves_the_rotation_until_its_backoff_ends() {
        let balancer = Balancer::new(&addresses(3), None);
        let now = Instant::now();

        balancer.failed(addresses(3)[1], now);

        assert_eq!(picks(&balancer, now, 4), [1, 3, 1, 3]);
        assert_eq!(picks(&balancer, now + FIRST_BACKOFF, 3), [1, 2, 3]);
    }

    #[test]
    fn backoff_doubles_up_to_a_ceiling() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(6), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn with_every_endpoint_out_the_least_recently_failed_is_tried() {
        let balancer = Balancer::new(&addresses(2), None);
        let now = Instant::now();

        balancer.failed(addresses(2)[1], now);
        balancer.failed(addresses(2)[0], now + Duration::from_millis(10));

        assert_eq!(balancer.pick(now, &[]).unwrap().port(), 2);
        assert_eq!(balancer.pick(now, &addresses(2)[1..]).unwrap().port(), 1);
        assert_eq!(balancer.pick(now, &addresses(2)), None);
    }

    #[test]
    fn a_success_restores_the_endpoint() {
        let balancer = Balancer::new(&addresses(2), None);
        let now = Instant::now();

        balancer.failed(addresses(2)[0], now);
        balancer.succeeded(addresses(2)[0]);

        assert_eq!(picks(&balancer, now, 2), [1, 2]);
    }

    #[test]
    fn only_its_endpoints_are_contained() {
        let balancer = Balancer::new(&addresses(3)[1..], None);

        assert!(balancer.contains(addresses(3)[2]));
        assert!(!balancer.contains(addresses(3)[0]));
        assert_eq!(balancer.len(), 2);
    }

    #[test]
    fn a_new_balancer_remembers_endpoints_that_remain() {
        let old = Balancer::new(&addresses(2), None);
        let now = Instant::now();
        old.failed(addresses(2)[0], now);

        let new = Balancer::new(&addresses(3), Some(&old));

        assert_eq!(picks(&new, now, 3), [2, 3, 2]);
    }
}

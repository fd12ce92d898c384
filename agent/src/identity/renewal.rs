//! When certificates are made, renewed and dropped, decided from a clock
//! passed in (Unix seconds) so that tests need not wait.
//!
//! A certificate is renewed half way through its life. For one just issued
//! that life is counted from its arrival rather than from its `not_before`,
//! which the control plane backdates to tolerate clock skew: counted from
//! `not_before`, a short-lived certificate would be due at once. One read
//! back from disk is due at half its life as written, at once if that has
//! passed. One that expired is no longer presented.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::svid::Svid;

/// The soonest a certificate just issued is renewed.
const MIN_RENEW_DELAY: i64 = 1;

/// A certificate held, with when to renew it.
#[derive(Clone, Debug)]
pub struct Held {
    /// The certificate.
    pub svid: Arc<Svid>,
    /// When to renew it, in Unix seconds.
    pub renew_at: i64,
}

impl Held {
    /// A certificate issued at `now`: due half way between now and its
    /// expiry.
    pub fn issued(svid: Arc<Svid>, now: i64) -> Self {
        let start = svid.not_before.max(now);
        let half = (svid.not_after - start) / 2;
        Self {
            renew_at: start + half.max(MIN_RENEW_DELAY),
            svid,
        }
    }

    /// A certificate read back from disk: due half way through its life.
    pub fn stored(svid: Arc<Svid>) -> Self {
        Self {
            renew_at: svid.renew_at(),
            svid,
        }
    }
}

/// What the node certificate needs next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeStep {
    /// There is none, or it expired: attest with the join token.
    Attest,
    /// Renew it at this time; now, if it is past.
    RenewAt(i64),
}

/// The next step for the node certificate `node` at `now`.
pub fn node_step(node: Option<&Held>, now: i64) -> NodeStep {
    match node {
        Some(held) if !held.svid.expired(now) => NodeStep::RenewAt(held.renew_at),
        _ => NodeStep::Attest,
    }
}

/// How long from `now` until `at`; zero when it is past.
pub fn delay_until(at: i64, now: i64) -> Duration {
    Duration::from_secs(u64::try_from(at.saturating_sub(now)).unwrap_or(0))
}

/// What the workload certificates need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Workloads to get a certificate for: new ones, renewals, and those
    /// whose identity changed.
    pub sign: Vec<String>,
    /// Certificates to stop presenting and forget: the workload is gone,
    /// its identity changed, or the certificate expired.
    pub drop: Vec<String>,
}

/// Compares the workloads wanted (`<namespace>/<name>` to SPIFFE ID) with
/// the certificates held, at `now`.
pub fn plan(desired: &BTreeMap<String, String>, held: &BTreeMap<String, Held>, now: i64) -> Plan {
    let usable = |key: &str, held: &Held| {
        desired.get(key) == Some(&held.svid.spiffe_id) && !held.svid.expired(now)
    };
    let drop = held
        .iter()
        .filter(|(key, held)| !usable(key, held))
        .map(|(key, _)| key.clone())
        .collect();

    let sign = desired
        .keys()
        .filter(|key| match held.get(*key) {
            Some(held) => !usable(key, held) || now >= held.renew_at,
            None => true,
        })
        .cloned()
        .collect();
    Plan { sign, drop }
}

/// When the certificates held next need attention after `now`: the
/// earliest renewal still ahead, or else the earliest expiry.
pub fn next_due(held: &BTreeMap<String, Held>, now: i64) -> Option<i64> {
    held.values()
        .filter_map(|held| {
            if held.renew_at > now {
                Some(held.renew_at)
            } else {
                (held.svid.not_after > now).then_some(held.svid.not_after)
            }
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::testing::svid;

    const ORDERS: &str = "spiffe://example.org/ns/shop/sa/orders";

    fn held(entries: &[(&str, Svid)]) -> BTreeMap<String, Held> {
        entries
            .iter()
            .map(|(key, svid)| (key.to_string(), Held::stored(Arc::new(svid.clone()))))
            .collect()
    }

    fn desired(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(key, id)| (key.to_string(), id.to_string()))
            .collect()
    }

    #[test]
    fn the_node_renews_at_half_life_and_attests_when_expired_or_missing() {
        let node = Held::stored(Arc::new(svid(
            "spiffe://example.org/node/web-1",
            1_000,
            2_000,
        )));

        assert_eq!(node_step(Some(&node), 1_100), NodeStep::RenewAt(1_500));
        assert_eq!(node_step(Some(&node), 1_999), NodeStep::RenewAt(1_500));
        assert_eq!(node_step(Some(&node), 2_000), NodeStep::Attest);
        assert_eq!(node_step(None, 0), NodeStep::Attest);
        assert_eq!(delay_until(1_500, 1_100), Duration::from_secs(400));
        assert_eq!(delay_until(1_500, 1_600), Duration::ZERO);
    }

    #[test]
    fn a_backdated_certificate_just_issued_is_due_half_way_from_its_arrival() {
        let backdated = Arc::new(svid(ORDERS, 700, 1_060));

        assert_eq!(Held::issued(backdated.clone(), 1_000).renew_at, 1_030);
        assert_eq!(Held::stored(backdated.clone()).renew_at, 880);
        assert_eq!(
            Held::issued(backdated, 1_060).renew_at,
            1_061,
            "never due at the moment it arrived"
        );
    }

    #[test]
    fn a_certificate_is_kept_until_half_life_then_renewed() {
        let held = held(&[("shop/orders-1", svid(ORDERS, 1_000, 4_600))]);
        let wanted = desired(&[("shop/orders-1", ORDERS)]);

        assert_eq!(plan(&wanted, &held, 2_799), Plan::default());
        assert_eq!(
            plan(&wanted, &held, 2_800),
            Plan {
                sign: vec!["shop/orders-1".into()],
                drop: vec![],
            },
            "a renewal keeps presenting the old certificate until the new one arrives"
        );
    }

    #[test]
    fn new_workloads_are_signed_and_gone_ones_dropped() {
        let held = held(&[("shop/old-1", svid(ORDERS, 1_000, 4_600))]);
        let wanted = desired(&[("shop/orders-1", ORDERS)]);

        let plan = plan(&wanted, &held, 1_001);

        assert_eq!(plan.sign, ["shop/orders-1"]);
        assert_eq!(plan.drop, ["shop/old-1"]);
    }

    #[test]
    fn an_expired_or_reassigned_certificate_is_dropped_at_once() {
        let other = "spiffe://example.org/ns/shop/sa/other";
        let held = held(&[
            ("shop/orders-1", svid(ORDERS, 1_000, 2_000)),
            ("shop/orders-2", svid(ORDERS, 1_000, 9_000)),
        ]);
        let wanted = desired(&[("shop/orders-1", ORDERS), ("shop/orders-2", other)]);

        let plan = plan(&wanted, &held, 2_000);

        assert_eq!(plan.drop, ["shop/orders-1", "shop/orders-2"]);
        assert_eq!(plan.sign, ["shop/orders-1", "shop/orders-2"]);
    }

    #[test]
    fn the_next_check_is_the_earliest_renewal_then_the_earliest_expiry() {
        let held = held(&[
            ("a/one", svid(ORDERS, 1_000, 3_000)),
            ("a/two", svid(ORDERS, 1_000, 5_000)),
        ]);

        assert_eq!(next_due(&held, 1_500), Some(2_000));
        assert_eq!(next_due(&held, 2_000), Some(3_000));
        assert_eq!(next_due(&held, 3_000), Some(5_000));
        assert_eq!(next_due(&held, 5_000), None);
    }
}

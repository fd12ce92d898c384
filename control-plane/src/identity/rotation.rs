//! The life of a signing key, shared by CAs and JWT signing keys: prepared
//! (verifiers trust it, it signs nothing), active (it signs everything new),
//! inactive (trusted until what it signed expires), retired (gone from what
//! verifiers trust, its private key destroyed).
//!
//! The order guarantees that a valid certificate or token never stops
//! verifying for a holder that keeps its bundle fresh: a key is published
//! before it signs, and unpublished only after its last signature expired.
//! [`next_step`] is the automatic schedule, a pure function of the keys and
//! the time so that it can be tested without waiting.
//!
//! Holders learn of a new key only when they fetch the trust bundle or the
//! JWKS again, so a prepared key may start signing only once it has been
//! published for [`PUBLICATION_WINDOW_SECS`]; [`publication_wait`] says how
//! long is left.

use serde::{Deserialize, Serialize};

/// How often holders are told to fetch the trust bundle and JWKS again:
/// the refresh hint of the identity API's `Bundle` call.
pub const BUNDLE_REFRESH_SECS: i64 = 300;
/// How long HTTP caches may keep the JWKS served at
/// `/.well-known/jwks.json`: its `Cache-Control: max-age`.
pub const JWKS_MAX_AGE_SECS: i64 = 60;
/// How long a prepared key must have been published before it may sign:
/// the longer of [`BUNDLE_REFRESH_SECS`] and [`JWKS_MAX_AGE_SECS`]. By then
/// every holder that follows the refresh hint and the cache lifetime has
/// fetched a bundle or JWKS that trusts the key.
pub const PUBLICATION_WINDOW_SECS: i64 = if BUNDLE_REFRESH_SECS > JWKS_MAX_AGE_SECS {
    BUNDLE_REFRESH_SECS
} else {
    JWKS_MAX_AGE_SECS
};

/// Where a key is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Prepared,
    Active,
    Inactive,
    Retired,
}

impl KeyState {
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyState::Prepared => "prepared",
            KeyState::Active => "active",
            KeyState::Inactive => "inactive",
            KeyState::Retired => "retired",
        }
    }

    /// Whether verifiers trust keys in this state.
    pub fn is_published(&self) -> bool {
        !matches!(self, KeyState::Retired)
    }
}

/// A key's state and when it entered each one, in Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    pub state: KeyState,
    pub created: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivated: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<i64>,
}

impl Lifecycle {
    /// A key made at `now` that is not signing yet.
    pub fn prepared(now: i64) -> Self {
        Self {
            state: KeyState::Prepared,
            created: now,
            activated: None,
            deactivated: None,
            retired: None,
        }
    }

    /// A key made at `now` that signs at once: the first key of a new
    /// control plane, which no holder trusts yet anyway.
    pub fn active(now: i64) -> Self {
        Self {
            state: KeyState::Active,
            activated: Some(now),
            ..Self::prepared(now)
        }
    }

    pub fn activate(&mut self, now: i64) {
        self.state = KeyState::Active;
        self.activated = Some(now);
    }

    pub fn deactivate(&mut self, now: i64) {
        self.state = KeyState::Inactive;
        self.deactivated = Some(now);
    }

    pub fn retire(&mut self, now: i64) {
        self.state = KeyState::Retired;
        self.retired = Some(now);
    }
}

/// What the schedule needs to know of one key.
#[derive(Clone, Debug)]
pub struct KeyView<'a> {
    pub id: &'a str,
    pub life: &'a Lifecycle,
    /// When the key's own validity starts and ends: a CA certificate's
    /// validity, or a JWT key's creation plus its configured lifetime.
    pub not_before: i64,
    pub not_after: i64,
    /// The last expiry of anything the key signed.
    pub signed_until: i64,
}

/// When the automatic schedule acts, as fractions of the active key's life.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Prepare a successor once the active key has lived this fraction.
    pub prepare_at: f64,
    /// Activate it once the active key has lived this fraction...
    pub activate_at: f64,
    /// ...and the successor has been published at least this many seconds,
    /// so that holders have fetched a bundle that trusts it.
    pub min_published_secs: i64,
}

/// One step of a rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Prepare,
    Activate(String),
    Retire(String),
}

/// The step the schedule takes now, if any.
pub fn next_step(keys: &[KeyView<'_>], now: i64, schedule: &Schedule) -> Option<Step> {
    let in_state = |state| keys.iter().find(|k| k.life.state == state);

    if let Some(done) = keys
        .iter()
        .find(|k| k.life.state == KeyState::Inactive && k.signed_until < now)
    {
        return Some(Step::Retire(done.id.to_owned()));
    }

    let active = in_state(KeyState::Active)?;
    let lived = lived_fraction(active, now);
    match in_state(KeyState::Prepared) {
        None if lived >= schedule.prepare_at => Some(Step::Prepare),
        Some(next)
            if lived >= schedule.activate_at
                && now - next.life.created >= schedule.min_published_secs =>
        {
            Some(Step::Activate(next.id.to_owned()))
        }
        _ => None,
    }
}

/// How many seconds a prepared key must still wait at `now` before it may
/// sign, or `None` once it has been published for the whole window.
pub fn publication_wait(life: &Lifecycle, now: i64) -> Option<i64> {
    let wait = life.created.saturating_add(PUBLICATION_WINDOW_SECS) - now;
    (wait > 0).then_some(wait)
}

fn lived_fraction(key: &KeyView<'_>, now: i64) -> f64 {
    let span = (key.not_after - key.not_before).max(1) as f64;
    (now - key.not_before) as f64 / span
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: Schedule = Schedule {
        prepare_at: 0.5,
        activate_at: 0.75,
        min_published_secs: 10,
    };

    fn view<'a>(id: &'a str, life: &'a Lifecycle, signed_until: i64) -> KeyView<'a> {
        KeyView {
            id,
            life,
            not_before: life.created,
            not_after: life.created + 100,
            signed_until,
        }
    }

    #[test]
    fn young_active_key_needs_nothing() {
        let life = Lifecycle::active(0);

        assert_eq!(next_step(&[view("a", &life, 0)], 49, &SCHEDULE), None);
    }

    #[test]
    fn successor_is_prepared_at_half_life() {
        let life = Lifecycle::active(0);

        assert_eq!(
            next_step(&[view("a", &life, 0)], 50, &SCHEDULE),
            Some(Step::Prepare)
        );
    }

    #[test]
    fn successor_activates_only_after_it_was_published_long_enough() {
        let active = Lifecycle::active(0);
        let prepared = Lifecycle::prepared(70);
        let keys = [view("a", &active, 0), view("b", &prepared, 0)];

        assert_eq!(next_step(&keys, 75, &SCHEDULE), None);
        assert_eq!(
            next_step(&keys, 80, &SCHEDULE),
            Some(Step::Activate("b".into()))
        );
    }

    #[test]
    fn inactive_key_retires_only_after_its_signatures_expired() {
        let mut old = Lifecycle::active(0);
        old.deactivate(80);
        let active = Lifecycle::active(80);
        let keys = [view("a", &old, 120), view("b", &active, 0)];

        assert_eq!(next_step(&keys, 120, &SCHEDULE), None);
        assert_eq!(
            next_step(&keys, 121, &SCHEDULE),
            Some(Step::Retire("a".into()))
        );
    }

    #[test]
    fn prepared_key_waits_out_the_publication_window() {
        let prepared = Lifecycle::prepared(1000);

        assert_eq!(
            publication_wait(&prepared, 1010),
            Some(PUBLICATION_WINDOW_SECS - 10)
        );
        assert_eq!(
            publication_wait(&prepared, 1000 + PUBLICATION_WINDOW_SECS - 1),
            Some(1)
        );
        assert_eq!(
            publication_wait(&prepared, 1000 + PUBLICATION_WINDOW_SECS),
            None
        );
    }

    #[test]
    fn no_active_key_means_no_automatic_step() {
        let prepared = Lifecycle::prepared(0);

        assert_eq!(next_step(&[view("a", &prepared, 0)], 99, &SCHEDULE), None);
    }
}

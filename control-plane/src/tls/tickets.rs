//! TLS 1.3 session tickets that survive a restart of the control plane.
//!
//! After a restart every agent reconnects at once. A full handshake costs
//! both ends a signature, a signature check and a chain check; a resumed one
//! costs a key exchange only. Tickets are sealed under keys derived from the
//! barrier's data key, one key per period, so a restarted server (or another
//! replica with the same master key) opens the tickets it issued before.
//!
//! Resuming skips nothing Palisade relies on: the ticket carries the
//! client's certificate chain, and every call checks that chain against the
//! current bundle and the clock, as it does on a fresh connection.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use rustls::server::ProducesTickets;

/// How long one ticket key seals new tickets. A ticket opens during its
/// key's period and the next, so no ticket lives beyond two periods.
const PERIOD_SECS: u64 = 6 * 3600;
/// The period number that starts every ticket.
const PERIOD_LEN: usize = 8;

/// Seals and opens session tickets with keys that roll every period.
pub struct SessionTickets {
    seed: hmac::Key,
    clock: fn() -> u64,
}

impl std::fmt::Debug for SessionTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionTickets(<keys>)")
    }
}

impl SessionTickets {
    /// Tickets whose keys derive from `seed`.
    pub fn new(seed: hmac::Key) -> Self {
        Self {
            seed,
            clock: unix_now,
        }
    }

    fn period_now(&self) -> u64 {
        (self.clock)() / PERIOD_SECS
    }

    fn key(&self, period: u64) -> LessSafeKey {
        let derived = hmac::sign(&self.seed, &period.to_be_bytes());
        let unbound = UnboundKey::new(&AES_256_GCM, derived.as_ref()).expect("32-byte key");
        LessSafeKey::new(unbound)
    }
}

impl ProducesTickets for SessionTickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        PERIOD_SECS as u32
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let now = self.period_now();
        let period = now.to_be_bytes();
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;

        let mut sealed = plain.to_vec();
        let key = self.key(now);
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(period),
            &mut sealed,
        )
        .ok()?;

        let mut ticket = Vec::with_capacity(PERIOD_LEN + NONCE_LEN + sealed.len());
        ticket.extend_from_slice(&period);
        ticket.extend_from_slice(&nonce);
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let (period, rest) = cipher.split_first_chunk::<PERIOD_LEN>()?;
        let (nonce, sealed) = rest.split_first_chunk::<NONCE_LEN>()?;
        let issued = u64::from_be_bytes(*period);
        let now = self.period_now();
        if issued != now && issued.checked_add(1) != Some(now) {
            return None;
        }

        let mut opened = sealed.to_vec();
        let nonce = Nonce::assume_unique_for_key(*nonce);
        let plain = self
            .key(issued)
            .open_in_place(nonce, Aad::from(*period), &mut opened)
            .ok()?;
        let length = plain.len();
        opened.truncate(length);
        Some(opened)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tickets(seed: &[u8], now: fn() -> u64) -> SessionTickets {
        SessionTickets {
            seed: hmac::Key::new(hmac::HMAC_SHA256, seed),
            clock: now,
        }
    }

    #[test]
    fn a_ticket_opens_with_the_same_seed_after_a_restart() {
        let before = tickets(b"seed", || 1_000_000);
        let after = tickets(b"seed", || 1_000_000);

        let ticket = before.encrypt(b"session state").unwrap();

        assert_eq!(after.decrypt(&ticket).unwrap(), b"session state");
    }

    #[test]
    fn a_ticket_does_not_open_under_another_seed() {
        let ticket = tickets(b"seed", || 1_000_000).encrypt(b"state").unwrap();

        assert_eq!(tickets(b"other", || 1_000_000).decrypt(&ticket), None);
    }

    #[test]
    fn a_ticket_opens_in_the_next_period_but_not_the_one_after() {
        let ticket = tickets(b"seed", || 0).encrypt(b"state").unwrap();

        assert!(
            tickets(b"seed", || PERIOD_SECS + 1)
                .decrypt(&ticket)
                .is_some()
        );
        assert_eq!(tickets(b"seed", || 2 * PERIOD_SECS).decrypt(&ticket), None);
    }

    #[test]
    fn an_altered_or_truncated_ticket_is_refused() {
        let sealer = tickets(b"seed", || 1_000_000);
        let mut ticket = sealer.encrypt(b"state").unwrap();

        let last = ticket.len() - 1;
        ticket[last] ^= 1;
        assert_eq!(sealer.decrypt(&ticket), None);
        assert_eq!(sealer.decrypt(&ticket[..10]), None);
        assert_eq!(sealer.decrypt(&[]), None);
    }

    #[test]
    fn a_ticket_with_a_forged_period_is_refused() {
        let sealer = tickets(b"seed", || 10 * PERIOD_SECS);
        let mut ticket = sealer.encrypt(b"state").unwrap();

        ticket[..PERIOD_LEN].copy_from_slice(&9u64.to_be_bytes());

        assert_eq!(sealer.decrypt(&ticket), None);
    }
}

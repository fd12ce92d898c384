//! Chains that one set of anchors verified already. A workload meets the
//! same peers again and again with the same certificate, and checking a
//! chain's signatures is the costliest part of a handshake after the key
//! exchange. So each chain's signatures are checked once per bundle; its
//! validity period is checked on every connection, as are the deny list
//! and the handshake's own signature (which prove the peer holds the key).
//!
//! A new bundle makes new anchors with an empty record, so a CA rotation
//! checks every chain again.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use aws_lc_rs::digest;
use rustls::pki_types::{CertificateDer, UnixTime};

/// Chains remembered at most; the record starts over when it is full.
const CAPACITY: usize = 4096;

/// Which checks a chain passed: a client's and a server's differ in the
/// extended key usage they require.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Client,
    Server,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    role: Role,
    digest: [u8; 32],
}

/// When every certificate of a chain is valid, in Unix seconds, bounds
/// included as WebPKI includes them.
#[derive(Clone, Copy, Debug)]
struct Validity {
    not_before: u64,
    not_after: u64,
}

/// The chains verified against one bundle.
#[derive(Default)]
pub struct VerifiedChains {
    chains: Mutex<HashMap<Key, Validity>>,
}

impl fmt::Debug for VerifiedChains {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.chains.lock().map_or(0, |chains| chains.len());
        f.debug_struct("VerifiedChains")
            .field("count", &count)
            .finish()
    }
}

impl VerifiedChains {
    /// Passes a chain this record holds for `role` if it is valid at
    /// `now`; any other chain must pass `verify`, and is remembered when it
    /// does.
    pub fn check(
        &self,
        role: Role,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        verify: impl FnOnce() -> Result<(), rustls::Error>,
    ) -> Result<(), rustls::Error> {
        let key = Key {
            role,
            digest: chain_digest(end_entity, intermediates),
        };
        let known = self.chains.lock().ok().and_then(|c| c.get(&key).copied());
        if known.is_some_and(|validity| validity.contains(now)) {
            return Ok(());
        }

        verify()?;
        if let Some(validity) = Validity::of(end_entity, intermediates) {
            self.remember(key, validity);
        }
        Ok(())
    }

    fn remember(&self, key: Key, validity: Validity) {
        let Ok(mut chains) = self.chains.lock() else {
            return;
        };
        if chains.len() >= CAPACITY {
            chains.clear();
        }
        chains.insert(key, validity);
    }
}

impl Validity {
    /// The span in which every certificate of the chain is valid; none if
    /// one does not parse.
    fn of(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> Option<Self> {
        let mut span = Validity {
            not_before: 0,
            not_after: u64::MAX,
        };
        for der in std::iter::once(end_entity).chain(intermediates) {
            let (_, parsed) = x509_parser::parse_x509_certificate(der).ok()?;
            let validity = parsed.validity();
            let not_before = u64::try_from(validity.not_before.timestamp()).ok()?;
            let not_after = u64::try_from(validity.not_after.timestamp()).ok()?;
            span.not_before = span.not_before.max(not_before);
            span.not_after = span.not_after.min(not_after);
        }
        Some(span)
    }

    fn contains(&self, now: UnixTime) -> bool {
        let now = now.as_secs();
        self.not_before <= now && now <= self.not_after
    }
}

/// SHA-256 over each certificate, each preceded by its length.
fn chain_digest(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> [u8; 32] {
    let mut context = digest::Context::new(&digest::SHA256);
    for der in std::iter::once(end_entity).chain(intermediates) {
        context.update(&(der.len() as u64).to_be_bytes());
        context.update(der);
    }
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use super::*;
    use crate::proxy::tests::support::{TestCa, Validity as LeafValidity, spiffe_id};

    fn now() -> UnixTime {
        UnixTime::now()
    }

    /// A check that counts how often the full verification ran and
    /// returns `result`.
    fn counted(
        chains: &VerifiedChains,
        role: Role,
        leaf: &CertificateDer<'_>,
        at: UnixTime,
        runs: &Cell<u32>,
        result: Result<(), rustls::Error>,
    ) -> Result<(), rustls::Error> {
        chains.check(role, leaf, &[], at, || {
            runs.set(runs.get() + 1);
            result
        })
    }

    #[test]
    fn a_chain_is_verified_once_per_role() {
        let ca = TestCa::new();
        let leaf = ca.leaf(&spiffe_id("shop", "web")).certificate;
        let chains = VerifiedChains::default();
        let runs = Cell::new(0);

        for _ in 0..3 {
            counted(&chains, Role::Client, &leaf, now(), &runs, Ok(())).unwrap();
        }
        assert_eq!(runs.get(), 1);

        counted(&chains, Role::Server, &leaf, now(), &runs, Ok(())).unwrap();
        assert_eq!(runs.get(), 2, "a server check is not a client check");
    }

    #[test]
    fn a_refused_chain_is_not_remembered() {
        let ca = TestCa::new();
        let leaf = ca.leaf(&spiffe_id("shop", "web")).certificate;
        let chains = VerifiedChains::default();
        let runs = Cell::new(0);
        let refusal = || Err(rustls::Error::General("refused".into()));

        assert!(counted(&chains, Role::Client, &leaf, now(), &runs, refusal()).is_err());
        assert!(counted(&chains, Role::Client, &leaf, now(), &runs, refusal()).is_err());
        assert_eq!(runs.get(), 2);
    }

    #[test]
    fn a_remembered_chain_outside_its_validity_is_verified_again() {
        let ca = TestCa::new();
        let leaf = ca.leaf(&spiffe_id("shop", "web")).certificate;
        let chains = VerifiedChains::default();
        let runs = Cell::new(0);
        counted(&chains, Role::Client, &leaf, now(), &runs, Ok(())).unwrap();

        // Past the test leaf's not-after (rcgen's default, the year 4096).
        let later = UnixTime::since_unix_epoch(Duration::from_secs(200_000_000_000));
        let expired = Err(rustls::Error::General("expired".into()));
        assert!(counted(&chains, Role::Client, &leaf, later, &runs, expired).is_err());
        assert_eq!(runs.get(), 2);
    }

    #[test]
    fn an_expired_leaf_never_passes_from_the_record() {
        let ca = TestCa::new();
        let leaf = ca
            .leaf_with(&[&spiffe_id("shop", "web")], LeafValidity::Expired)
            .certificate;
        let chains = VerifiedChains::default();
        let runs = Cell::new(0);

        // Even a verification that wrongly passed leaves nothing usable now.
        counted(&chains, Role::Client, &leaf, now(), &runs, Ok(())).unwrap();
        let refusal = Err(rustls::Error::General("expired".into()));
        assert!(counted(&chains, Role::Client, &leaf, now(), &runs, refusal).is_err());
    }

    #[test]
    fn the_record_is_bounded() {
        let chains = VerifiedChains::default();
        let key = |n: u32| Key {
            role: Role::Client,
            digest: {
                let mut digest = [0; 32];
                digest[..4].copy_from_slice(&n.to_be_bytes());
                digest
            },
        };
        let validity = Validity {
            not_before: 0,
            not_after: u64::MAX,
        };
        for n in 0..(CAPACITY as u32 + 10) {
            chains.remember(key(n), validity);
        }
        assert!(chains.chains.lock().unwrap().len() <= CAPACITY);
    }
}

//! The peer's certificate as an established connection holds it, and how
//! a change of trust is judged for it.
//!
//! Rotating CAs adds the next CA before it signs (prepare), lets it sign
//! (activate) and removes the old one once everything it signed has
//! expired (retire); none of these steps distrusts a held certificate.
//! A bundle that drops the CA of a certificate still valid distrusts it (a
//! CA retired early, or replaced after a compromise), as the deny list
//! does a revoked one.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};

use crate::proxy::peer::{self, PeerError};
use crate::proxy::trust::{Anchors, Trust};
use crate::proxy::verified::Role;

/// What a connection keeps of its peer's certificate.
#[derive(Debug)]
pub struct PeerCertificate {
    /// What the peer was checked as: a client or a server.
    pub role: Role,
    pub spiffe_id: String,
    /// The serial, lowercase hex.
    pub serial: String,
    /// When the certificate expires, in Unix seconds.
    pub not_after: u64,
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// When the chain was verified; a new bundle is checked as of then, so
    /// that a connection outliving its certificate is not cut by chance.
    pub verified_at: UnixTime,
    /// The bundle that last verified the chain.
    pub anchors: Arc<Anchors>,
}

impl PeerCertificate {
    /// The certificate of a peer whose `chain` (leaf first) the handshake
    /// verified as `role` at `verified_at`, against `anchors` or newer.
    pub fn read(
        role: Role,
        chain: Vec<CertificateDer<'static>>,
        verified_at: UnixTime,
        anchors: Arc<Anchors>,
    ) -> Result<Self, PeerError> {
        let leaf = chain.first().ok_or(PeerError::Missing)?;
        let peer = peer::identify(leaf)?;

        Ok(Self {
            role,
            spiffe_id: peer.spiffe_id,
            serial: peer.serial,
            not_after: peer.not_after,
            chain,
            verified_at,
            anchors,
        })
    }

    /// Checks the serial against the deny list, and the chain again when
    /// the bundle changed.
    pub fn recheck(&mut self, trust: &Trust, now: UnixTime) -> Result<(), rustls::Error> {
        if !Arc::ptr_eq(&self.anchors, &trust.anchors) {
            self.reanchor(&trust.anchors, now)?;
        }
        Ok(trust.check_serial(&self.serial)?)
    }

    /// Moves the certificate to new anchors. The chain is checked as of
    /// when it was verified, so that a connection outliving its
    /// certificate is not cut by chance; a chain they no longer lead to is
    /// refused only while the certificate is still valid at `now`. Once it
    /// has expired, dropping its CA retires that CA rather than distrusting
    /// what it signed, and the connection stands on its handshake.
    fn reanchor(&mut self, anchors: &Arc<Anchors>, now: UnixTime) -> Result<(), rustls::Error> {
        let Some((leaf, intermediates)) = self.chain.split_first() else {
            return Err(rustls::Error::NoCertificatesPresented);
        };
        let verify = match self.role {
            Role::Client => Anchors::verify_client,
            Role::Server => Anchors::verify_server,
        };
        let verified = verify(anchors, leaf, intermediates, self.verified_at);
        if let Err(error) = verified
            && self.not_after >= now.as_secs()
        {
            return Err(error);
        }

        self.anchors = anchors.clone();
        Ok(())
    }
}

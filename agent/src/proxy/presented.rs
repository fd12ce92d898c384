//! What a refused client presented, for the log line of its failed
//! handshake: the certificate's SPIFFE ID and serial as written in it.
//! Nothing vouches for them (the certificate was refused, and the client
//! may not even hold its key), so they are logged as unverified.
//!
//! The client verifier runs inside the handshake's future, so it records
//! into a slot of the task that runs the handshake; outside such a task it
//! records nothing. Only refusals are read, after the handshake failed:
//! an accepted certificate costs nothing here.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;

use rustls::pki_types::CertificateDer;
use tokio::task::futures::TaskLocalFuture;
use x509_parser::extensions::GeneralName;

/// The longest SPIFFE ID or serial logged; longer ones are cut.
const MAX_LOGGED: usize = 2048;

tokio::task_local! {
    static PRESENTED: Cell<Option<Presented>>;
}

/// What a refused certificate claims.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Presented {
    /// The first `spiffe://` URI SAN, if any.
    pub spiffe_id: Option<String>,
    /// The serial in lowercase hex.
    pub serial: String,
}

/// A handshake future whose refusals [`taken`] can read.
pub type Watched<F> = TaskLocalFuture<Cell<Option<Presented>>, F>;

/// Runs `handshake` with a slot for what [`record`] reads.
pub fn watch<F: Future>(handshake: F) -> Watched<F> {
    PRESENTED.scope(Cell::new(None), handshake)
}

/// Records what `end_entity` claims, when called within [`watch`].
pub fn record(end_entity: &CertificateDer<'_>) {
    let _ = PRESENTED.try_with(|slot| slot.set(read(end_entity)));
}

/// What the certificate refused during `handshake` claimed, if any.
pub fn taken<F: Future>(handshake: Pin<&mut Watched<F>>) -> Option<Presented> {
    handshake.take_value()?.into_inner()
}

/// Reads the claims of a certificate that may be malformed.
fn read(end_entity: &CertificateDer<'_>) -> Option<Presented> {
    let (_, parsed) = x509_parser::parse_x509_certificate(end_entity).ok()?;
    let spiffe_id = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some(cut(uri)),
                _ => None,
            })
        });
    Some(Presented {
        spiffe_id,
        serial: cut(&hex::encode(parsed.raw_serial())),
    })
}

fn cut(text: &str) -> String {
    text.chars().take(MAX_LOGGED).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::tests::support::{TestCa, spiffe_id};

    #[tokio::test]
    async fn a_recorded_certificate_is_read_after_the_handshake() {
        let leaf = TestCa::new().leaf(&spiffe_id("shop", "web"));
        let certificate = leaf.certificate.clone();
        let mut handshake = std::pin::pin!(watch(async move { record(&certificate) }));

        handshake.as_mut().await;
        let presented = taken(handshake).unwrap();

        assert_eq!(presented.spiffe_id, Some(spiffe_id("shop", "web")));
        assert_eq!(presented.serial, leaf.serial);
    }

    #[tokio::test]
    async fn nothing_is_read_when_nothing_was_refused() {
        let mut handshake = std::pin::pin!(watch(async {}));

        handshake.as_mut().await;

        assert_eq!(taken(handshake), None);
    }

    #[test]
    fn recording_outside_a_handshake_does_nothing() {
        let leaf = TestCa::new().leaf(&spiffe_id("shop", "web"));

        record(&leaf.certificate);
    }

    #[test]
    fn bytes_that_are_no_certificate_claim_nothing() {
        assert_eq!(read(&CertificateDer::from(vec![0x30, 0x03, 0x01])), None);
    }
}

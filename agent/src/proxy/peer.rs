//! Who a peer certificate names: its one SPIFFE ID, and its serial.

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

/// The longest SPIFFE ID accepted, as the SPIFFE specification bounds it.
const MAX_SPIFFE_ID: usize = 2048;

/// What the proxy reads from a verified leaf certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub spiffe_id: String,
    /// The serial in lowercase hex, as the deny list writes it.
    pub serial: String,
    /// The end of the certificate's validity, in Unix seconds.
    pub not_after: u64,
}

/// Why a certificate names no usable peer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("no certificate was presented")]
    Missing,
    #[error("the certificate does not parse")]
    Malformed,
    #[error("the certificate has {0} URI SANs; an SVID has exactly one")]
    UriCount(usize),
    #[error("the URI SAN is not a spiffe:// ID of at most 2048 bytes")]
    NotSpiffe,
}

/// Reads the peer from `certificate`: exactly one URI SAN, a `spiffe://`
/// one.
pub fn identify(certificate: &CertificateDer<'_>) -> Result<Peer, PeerError> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(certificate).map_err(|_| PeerError::Malformed)?;
    let names = parsed
        .subject_alternative_name()
        .map_err(|_| PeerError::Malformed)?
        .map_or(&[][..], |san| &san.value.general_names[..]);

    let uris: Vec<&str> = names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    let [uri] = uris[..] else {
        return Err(PeerError::UriCount(uris.len()));
    };
    if !is_spiffe_id(uri) {
        return Err(PeerError::NotSpiffe);
    }

    Ok(Peer {
        spiffe_id: uri.to_owned(),
        serial: hex::encode(parsed.raw_serial()),
        not_after: u64::try_from(parsed.validity().not_after.timestamp()).unwrap_or(0),
    })
}

/// `spiffe://<trust domain>/<path>`, with a non-empty trust domain and
/// path.
fn is_spiffe_id(uri: &str) -> bool {
    let Some((trust_domain, path)) = uri
        .strip_prefix("spiffe://")
        .and_then(|rest| rest.split_once('/'))
    else {
        return false;
    };
    !trust_domain.is_empty() && !path.is_empty() && uri.len() <= MAX_SPIFFE_ID
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(uris: &[&str]) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["example.test".to_owned()]).unwrap();
        for uri in uris {
            let uri = (*uri).to_owned().try_into().unwrap();
            params.subject_alt_names.push(rcgen::SanType::URI(uri));
        }
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x0a, 0xbc]));
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn one_spiffe_uri_names_the_peer() {
        let peer = identify(&certificate(&["spiffe://td/ns/a/sa/b"])).unwrap();

        assert_eq!(peer.spiffe_id, "spiffe://td/ns/a/sa/b");
        assert_eq!(peer.serial, "0abc");
    }

    #[test]
    fn anything_but_one_spiffe_uri_is_refused() {
        let none = identify(&certificate(&[]));
        let two = identify(&certificate(&["spiffe://td/a", "spiffe://td/b"]));
        let https = identify(&certificate(&["https://td/a"]));
        let bare = identify(&certificate(&["spiffe://td"]));

        assert!(matches!(none, Err(PeerError::UriCount(0))));
        assert!(matches!(two, Err(PeerError::UriCount(2))));
        assert!(matches!(https, Err(PeerError::NotSpiffe)));
        assert!(matches!(bare, Err(PeerError::NotSpiffe)));
    }
}

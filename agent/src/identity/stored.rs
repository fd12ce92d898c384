//! Certificates with their keys on disk: `key.pem` (0600) and `cert.pem`
//! side by side in one directory, each replaced atomically. A crash between
//! the two writes leaves a key that does not match its certificate, which
//! reads as no certificate at all.

use std::path::Path;

use super::IdentityError;
use super::svid::{KeyPem, Svid, SvidError};
use crate::cache::{self, PRIVATE, PUBLIC};

const KEY_FILE: &str = "key.pem";
const CERT_FILE: &str = "cert.pem";

/// The certificate in `dir`, or `None` when its key or chain is missing.
pub fn read(dir: &Path) -> Result<Option<Svid>, IdentityError> {
    let key_path = dir.join(KEY_FILE);
    let cert_path = dir.join(CERT_FILE);
    let (Some(key), Some(chain)) = (
        cache::read_optional(&key_path)?,
        cache::read_optional(&cert_path)?,
    ) else {
        return Ok(None);
    };

    let stored = |path: &Path, source| IdentityError::Stored {
        path: path.to_owned(),
        source,
    };
    let key_pem = String::from_utf8(key)
        .map(KeyPem::new)
        .map_err(|_| stored(&key_path, SvidError::Key("not PEM text".into())))?;
    let chain_pem = String::from_utf8_lossy(&chain).into_owned();
    Svid::from_pem(chain_pem, key_pem)
        .map(Some)
        .map_err(|source| stored(&cert_path, source))
}

/// Writes `svid` into `dir`: the key first, then the chain.
pub fn write(dir: &Path, svid: &Svid) -> Result<(), IdentityError> {
    cache::write_atomic(
        &dir.join(KEY_FILE),
        svid.key_pem.expose().as_bytes(),
        PRIVATE,
    )?;
    cache::write_atomic(&dir.join(CERT_FILE), svid.chain_pem.as_bytes(), PUBLIC)?;
    Ok(())
}

/// Removes `dir` and what it holds.
pub fn remove(dir: &Path) -> Result<(), IdentityError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(cache::CacheError::Io {
            path: dir.to_owned(),
            source,
        }
        .into()),
    }
}

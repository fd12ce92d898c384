//! Tasks that follow the key material as CAs and JWT keys rotate: the TLS
//! listener's bundle and certificate, the JWKS endpoint's document, and the
//! bundle file in the data directory.

use std::sync::Arc;

use tokio::sync::watch;

use crate::data_dir::DataDir;
use crate::identity::authority::Authority;
use crate::tasks::AbortOnDrop;
use crate::tls::TlsSettings;

/// Starts the task that applies each new key material to TLS and to the
/// bundle files.
pub fn spawn(authority: &Arc<Authority>, tls: Option<TlsSettings>, dir: DataDir) -> AbortOnDrop {
    let authority = authority.clone();
    let mut material = authority.watch();
    material.mark_changed();

    AbortOnDrop(tokio::spawn(async move {
        while material.changed().await.is_ok() {
            let current = material.borrow_and_update().clone();
            if let Some(tls) = &tls
                && let Err(error) = apply_to_tls(&authority, tls, &current.bundle_pem).await
            {
                tracing::error!(%error, "could not apply the new CAs to TLS");
            }
            write_bundle_files(&dir, &current.bundle_pem);
        }
    }))
}

async fn apply_to_tls(
    authority: &Authority,
    tls: &TlsSettings,
    bundle: &str,
) -> anyhow::Result<()> {
    tls.peers.set_bundle(bundle)?;
    let (chain, key) = super::server_certificate(authority).await?;
    tls.certificate.replace(&chain, &key)?;
    Ok(())
}

/// Keeps `<data-dir>/ca.pem`, and the first admin's copy when it exists,
/// equal to the trust bundle.
fn write_bundle_files(dir: &DataDir, bundle: &str) {
    let admin_copy = dir.admin().join("ca.pem");
    let mut paths = vec![dir.bundle()];
    if admin_copy.exists() {
        paths.push(admin_copy);
    }

    for path in paths {
        let unchanged = std::fs::read_to_string(&path).is_ok_and(|current| current == bundle);
        if unchanged {
            continue;
        }
        match crate::fsutil::write_public(&path, bundle.as_bytes()) {
            Ok(()) => tracing::info!(path = %path.display(), "trust bundle file updated"),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "could not update the trust bundle file")
            }
        }
    }
}

/// The JWKS document, following the key material.
pub fn jwks_channel(authority: &Arc<Authority>) -> watch::Receiver<Arc<String>> {
    let mut material = authority.watch();
    let (tx, rx) = watch::channel(authority.current().jwks_json.clone());

    tokio::spawn(async move {
        while material.changed().await.is_ok() {
            let jwks = material.borrow_and_update().jwks_json.clone();
            if tx.send(jwks).is_err() {
                return;
            }
        }
    });
    rx
}

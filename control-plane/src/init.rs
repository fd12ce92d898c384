//! `palisade-cp init`: a new data directory with its barrier, store, root CA,
//! server certificate, and the first admin's credentials and binding.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::audit::{AuditChain, AuditRecord, Outcome};
use crate::barrier::{Barrier, BarrierError, MasterKey};
use crate::ca::{CaError, CertificateAuthority, Issued};
use crate::data_dir::{DataDir, OpenError, Opened, keys};
use crate::fsutil;
use crate::store::sled::SledStore;
use crate::store::{Mutation, Precondition, Store, StoreError, WriteRequest};

/// The identity that init writes under, in the audit log.
const INIT_ACTOR: &str = "palisade-cp init";
/// The binding that makes the first admin an admin.
const BOOTSTRAP_BINDING: &str = "bootstrap-admins";

/// Errors of init.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} is already initialized")]
    AlreadyInitialized(PathBuf),
    #[error("trust domain {0:?} is not valid: {1}")]
    TrustDomain(String, String),
    #[error("admin name {0:?} is not a DNS-1123 label")]
    AdminName(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// What init needs.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub data_dir: DataDir,
    pub trust_domain: String,
    /// DNS names and IP addresses the server is reached at, besides loopback.
    pub server_names: Vec<String>,
    pub admin_name: String,
}

/// Initializes `options.data_dir` under `master` and returns it open.
pub async fn initialize(options: &InitOptions, master: &MasterKey) -> Result<Opened, InitError> {
    check_options(options)?;
    let dir = &options.data_dir;
    fsutil::create_private_dir(dir.root()).map_err(|e| io(dir.root(), e))?;

    // The barrier and the store.
    let barrier = Barrier::create(dir.root(), master)?;
    let store = Arc::new(SledStore::open(
        &dir.store(),
        AuditChain::new(barrier.audit_key()),
    )?);
    let td = options.trust_domain.as_str();
    store
        .system_put(keys::TRUST_DOMAIN, td.as_bytes().to_vec())
        .await?;

    // The root CA and the server's certificate, sealed.
    let (ca, ca_key) = CertificateAuthority::create_root(td)?;
    store
        .system_put(keys::CA_CERT, ca.certificate_pem().as_bytes().to_vec())
        .await?;
    store
        .system_put(keys::CA_KEY, barrier.seal(keys::CA_KEY, ca_key.expose())?)
        .await?;
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(options.server_names.iter().cloned());
    let server = ca.issue_server(&names)?;
    store
        .system_put(
            keys::SERVER_CERT,
            server.certificate_pem.as_bytes().to_vec(),
        )
        .await?;
    store
        .system_put(
            keys::SERVER_KEY,
            barrier.seal(keys::SERVER_KEY, server.key_pem.expose())?,
        )
        .await?;
    let bundle = dir.bundle();
    fsutil::write_public(&bundle, ca.certificate_pem().as_bytes()).map_err(|e| io(&bundle, e))?;

    // The first admin: credentials on disk, and a binding in the store.
    write_admin_credentials(&dir.admin(), &ca, &options.admin_name)?;
    bind_bootstrap_admin(&*store, td, &options.admin_name).await?;
    store.flush().await?;
    tracing::info!(trust_domain = td, data_dir = %dir.root().display(), "initialized");
    Ok(Opened {
        barrier,
        store,
        trust_domain: td.to_owned(),
    })
}

/// Issues another admin certificate from an initialized, stopped data
/// directory, writing it to `out`.
pub async fn issue_admin(
    dir: &DataDir,
    master: &MasterKey,
    name: &str,
    out: &Path,
) -> Result<String, InitError> {
    if !palisade_model::is_dns1123_label(name) {
        return Err(InitError::AdminName(name.to_owned()));
    }
    let opened = Opened::open(dir, master).await?;
    let ca = opened.certificate_authority().await?;

    write_admin_credentials(out, &ca, name)?;
    let record =
        AuditRecord::now(INIT_ACTOR, "issue admin certificate", Outcome::Ok).with_targets(vec![
            format!("spiffe://{}/admin/{name}", opened.trust_domain),
        ]);
    opened.store.audit(record).await?;
    Ok(format!("spiffe://{}/admin/{name}", opened.trust_domain))
}

fn check_options(options: &InitOptions) -> Result<(), InitError> {
    if options.data_dir.is_initialized() {
        return Err(InitError::AlreadyInitialized(
            options.data_dir.root().to_owned(),
        ));
    }
    let td = &options.trust_domain;
    palisade_model::validate_spiffe_id(&format!("spiffe://{td}/x"))
        .map_err(|e| InitError::TrustDomain(td.clone(), e))?;
    if td.is_empty() || td.contains('/') {
        return Err(InitError::TrustDomain(
            td.clone(),
            "must be a bare name".into(),
        ));
    }
    if !palisade_model::is_dns1123_label(&options.admin_name) {
        return Err(InitError::AdminName(options.admin_name.clone()));
    }
    Ok(())
}

/// Writes `<dir>/<name>.pem`, `<dir>/<name>-key.pem` (0600) and `<dir>/ca.pem`.
fn write_admin_credentials(
    dir: &Path,
    ca: &CertificateAuthority,
    name: &str,
) -> Result<(), InitError> {
    fsutil::create_private_dir(dir).map_err(|e| io(dir, e))?;
    let Issued {
        certificate_pem,
        key_pem,
    } = ca.issue_admin(name)?;

    let write = |file: &str, bytes: &[u8], private: bool| {
        let path = dir.join(file);
        let written = if private {
            fsutil::write_private(&path, bytes)
        } else {
            fsutil::write_public(&path, bytes)
        };
        written.map_err(|e| io(&path, e))
    };
    write(&format!("{name}.pem"), certificate_pem.as_bytes(), false)?;
    write(&format!("{name}-key.pem"), key_pem.expose(), true)?;
    write("ca.pem", ca.certificate_pem().as_bytes(), false)
}

async fn bind_bootstrap_admin(store: &dyn Store, td: &str, admin: &str) -> Result<(), InitError> {
    let text = format!(
        "apiVersion: palisade.dev/v1\nkind: AdminBinding\nmetadata:\n  name: {BOOTSTRAP_BINDING}\n\
         spec:\n  role: admin\n  subjects: [\"spiffe://{td}/admin/{admin}\"]\n"
    );
    let documents = palisade_model::parse_and_validate(&text)
        .map_err(|e| InitError::TrustDomain(td.to_owned(), e.to_string()))?;
    let key = documents[0].key().store_key();

    let audit = AuditRecord::now(INIT_ACTOR, "apply", Outcome::Ok).with_targets(vec![key.clone()]);
    let request = WriteRequest {
        mutations: vec![Mutation::Put {
            key: key.clone(),
            document: documents[0].to_json(),
        }],
        preconditions: vec![Precondition::Absent { key }],
        audit,
    };
    store.write(request).await?;
    Ok(())
}

fn io(path: &Path, source: std::io::Error) -> InitError {
    InitError::Io {
        path: path.to_owned(),
        source,
    }
}

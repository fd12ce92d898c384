//! `palisade-cp init`: a new data directory with its barrier, store, CA (a
//! root, or an intermediate under an upstream CA), JWT signing key, server
//! certificate, and the first admin's credentials and binding.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::audit::{AuditChain, AuditRecord, Outcome};
use crate::barrier::{Barrier, BarrierError, MasterKey};
use crate::ca::{CaError, CertificateAuthority, Issued, ROOT_LIFETIME};
use crate::data_dir::{DataDir, OpenError, Opened, keys};
use crate::fsutil;
use crate::identity::authorities::{self, AuthorityError, Upstream};
use crate::identity::authority::now_unix;
use crate::identity::keyset::{self, KeySetError};
use crate::identity::records::{self, ADMIN_OWNER, Holder, IssuedRecord};
use crate::identity::revocation;
use crate::identity::rotation::Lifecycle;
use crate::identity::signing_keys::{self, SigningKeyError};
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
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    #[error(transparent)]
    KeySet(#[from] KeySetError),
    #[error(transparent)]
    SigningKey(#[from] SigningKeyError),
}

/// What init needs.
#[derive(Debug)]
pub struct InitOptions {
    pub data_dir: DataDir,
    pub trust_domain: String,
    /// DNS names and IP addresses the server is reached at, besides loopback.
    pub server_names: Vec<String>,
    pub admin_name: String,
    /// How long the first admin's certificate is valid.
    pub admin_ttl: Duration,
    /// Run as an intermediate under this CA instead of making a root.
    pub upstream: Option<Upstream>,
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

    // The CA and the JWT signing key, sealed, and the server's certificate.
    let ca = create_keys(&*store, &barrier, options).await?;
    issue_server_certificate(&*store, &barrier, &ca, &options.server_names).await?;
    let bundle = dir.bundle();
    fsutil::write_public(&bundle, ca.bundle_pem().as_bytes()).map_err(|e| io(&bundle, e))?;

    // The first admin: credentials on disk, and a binding in the store.
    let admin = AdminCertificate {
        name: &options.admin_name,
        lifetime: options.admin_ttl,
    };
    write_admin_credentials(&*store, &dir.admin(), &ca, &admin).await?;
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
    admin: &AdminCertificate<'_>,
    out: &Path,
) -> Result<String, InitError> {
    if !palisade_model::is_dns1123_label(admin.name) {
        return Err(InitError::AdminName(admin.name.to_owned()));
    }
    let opened = Opened::open(dir, master).await?;
    let ca = opened.certificate_authority().await?;

    write_admin_credentials(&*opened.store, out, &ca, admin).await
}

/// An admin certificate to issue.
#[derive(Clone, Copy, Debug)]
pub struct AdminCertificate<'a> {
    pub name: &'a str,
    pub lifetime: Duration,
}

/// Makes the first CA and JWT signing key, both active at once.
async fn create_keys(
    store: &dyn Store,
    barrier: &Barrier,
    options: &InitOptions,
) -> Result<CertificateAuthority, InitError> {
    let now = now_unix();
    if let Some(upstream) = &options.upstream {
        authorities::store_upstream(store, barrier, upstream).await?;
    }
    let lifetime = match options.upstream {
        Some(_) => crate::config::IdentityConfig::default().ca_lifetime,
        None => ROOT_LIFETIME,
    };

    let (ca, record) = authorities::create(
        store,
        barrier,
        &options.trust_domain,
        lifetime,
        Lifecycle::active(now),
    )
    .await?;
    keyset::add(store, INIT_ACTOR, record).await?;
    let jwt_lifetime = crate::config::IdentityConfig::default().jwt_key_lifetime;
    let (_, record) = signing_keys::create(barrier, Lifecycle::active(now), jwt_lifetime)?;
    keyset::add(store, INIT_ACTOR, record).await?;
    Ok(ca)
}

/// Issues the server's certificate for loopback and `extra_names`, and
/// stores it with its chain, key sealed.
async fn issue_server_certificate(
    store: &dyn Store,
    barrier: &Barrier,
    ca: &CertificateAuthority,
    extra_names: &[String],
) -> Result<(), InitError> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(extra_names.iter().cloned());

    let server = ca.issue_server(&names)?;
    let chain = format!("{}{}", server.certificate_pem, ca.chain_pem());
    store
        .system_put(keys::SERVER_CERT, chain.into_bytes())
        .await?;
    store
        .system_put(
            keys::SERVER_KEY,
            barrier.seal(keys::SERVER_KEY, server.key_pem.expose())?,
        )
        .await?;
    Ok(())
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

/// Issues an admin certificate, records it in the store with its audit
/// entry, and writes `<dir>/<name>.pem` (with the chain) and
/// `<dir>/<name>-key.pem`, both 0600, and `<dir>/ca.pem` (the trust bundle).
/// Returns the admin's identity.
async fn write_admin_credentials(
    store: &dyn Store,
    dir: &Path,
    ca: &CertificateAuthority,
    admin: &AdminCertificate<'_>,
) -> Result<String, InitError> {
    fsutil::create_private_dir(dir).map_err(|e| io(dir, e))?;
    let Issued {
        certificate_pem,
        key_pem,
    } = ca.issue_admin_for(admin.name, admin.lifetime)?;
    let identity = format!("spiffe://{}/admin/{}", ca.trust_domain(), admin.name);
    record_admin_certificate(store, ca, &identity, &certificate_pem).await?;

    let write = |file: &str, bytes: &[u8], private: bool| {
        let path = dir.join(file);
        let written = if private {
            fsutil::write_private(&path, bytes)
        } else {
            fsutil::write_public(&path, bytes)
        };
        written.map_err(|e| io(&path, e))
    };
    let chain = format!("{certificate_pem}{}", ca.chain_pem());
    write(&format!("{}.pem", admin.name), chain.as_bytes(), true)?;
    write(&format!("{}-key.pem", admin.name), key_pem.expose(), true)?;
    write("ca.pem", ca.bundle_pem().as_bytes(), false)?;
    Ok(identity)
}

/// Records an admin certificate, so that its CA is not retired while it is
/// valid.
async fn record_admin_certificate(
    store: &dyn Store,
    ca: &CertificateAuthority,
    identity: &str,
    certificate_pem: &str,
) -> Result<(), InitError> {
    let (serial, not_after) = serial_and_expiry(certificate_pem)?;
    let record = IssuedRecord {
        serial: serial.clone(),
        spiffe_id: identity.to_owned(),
        holder: Holder::Admin,
        authority: ca.id(),
        requester: INIT_ACTOR.to_owned(),
        not_after,
    };
    let key = revocation::issued_key(ADMIN_OWNER, &serial);
    let audit = AuditRecord::now(INIT_ACTOR, "issue admin certificate", Outcome::Ok)
        .with_targets(vec![identity.to_owned(), format!("serial:{serial}")]);

    let request = WriteRequest {
        mutations: vec![Mutation::Put {
            key: key.clone(),
            document: records::encode(&record),
        }],
        preconditions: vec![Precondition::Absent { key }],
        audit,
    };
    store.write(request).await?;
    Ok(())
}

fn serial_and_expiry(certificate_pem: &str) -> Result<(String, i64), InitError> {
    let bad = || {
        InitError::Ca(CaError::BadCertificate {
            which: "the new admin certificate".into(),
        })
    };
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes()).map_err(|_| bad())?;
    let certificate = pem.parse_x509().map_err(|_| bad())?;
    let not_after = certificate.validity().not_after.timestamp();
    Ok((hex::encode(certificate.raw_serial()), not_after))
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

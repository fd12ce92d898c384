//! The `palisade-cp` command line: init, serve, dev and admin-cert.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::barrier::{MasterKey, SecretBytes};
use crate::config::{
    ConfigError, FileConfig, IdentityOverrides, LogConfig, LogFormat, Overrides, ServeConfig,
};
use crate::data_dir::{DataDir, Opened};
use crate::identity::authorities::Upstream;
use crate::init::{AdminCertificate, InitOptions, initialize, issue_admin};
use crate::server::bind;
use crate::signals::ShutdownSignal;

/// Exit code for bad configuration or usage.
const EXIT_CONFIG: u8 = 64;
/// Where `dev` serves xDS in plaintext.
const DEV_XDS_PLAINTEXT_LISTEN: &str = "127.0.0.1:7445";
/// Where `dev` serves the JWKS.
const DEV_JWKS_LISTEN: &str = "127.0.0.1:7444";
/// Upstream CA files larger than this are refused.
const MAX_UPSTREAM_FILE_BYTES: u64 = 1024 * 1024;
/// The longest admin certificate lifetime: one year.
const MAX_ADMIN_TTL_SECS: u64 = 366 * 24 * 3600;

/// The Palisade control plane.
#[derive(Debug, Parser)]
#[command(name = "palisade-cp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a data directory: barrier, store, root CA, server certificate and
    /// the first admin's credentials.
    Init(InitArgs),
    /// Serve the admin API from an initialized data directory.
    Serve(ServeArgs),
    /// Development mode: init a local data directory if needed, then serve on
    /// loopback and print how to connect.
    Dev(DevArgs),
    /// Issue another admin's client certificate (with the server stopped).
    AdminCert(AdminCertArgs),
}

#[derive(Debug, Args)]
struct InitArgs {
    /// The data directory to create.
    #[arg(long, env = "PALISADE_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The SPIFFE trust domain, e.g. example.org.
    #[arg(long, env = "PALISADE_TRUST_DOMAIN")]
    trust_domain: String,
    /// The master key file; created (0600) if it does not exist. Without it,
    /// the key comes from PALISADE_MASTER_KEY.
    #[arg(long, env = "PALISADE_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// Extra DNS names or IP addresses for the server certificate.
    #[arg(long = "server-name")]
    server_names: Vec<String>,
    /// The first admin's name: its identity is spiffe://<td>/admin/<name>.
    #[arg(long, default_value = "admin")]
    admin_name: String,
    /// Lifetime of the first admin's certificate, in seconds [default: 30 days].
    #[arg(long)]
    admin_ttl_secs: Option<u64>,
    /// Run as an intermediate CA under this upstream CA certificate (PEM; its
    /// chain up to the root may follow it in the file). Needs --upstream-key.
    #[arg(long, requires = "upstream_key")]
    upstream_ca: Option<PathBuf>,
    /// The upstream CA's private key (PEM), sealed into the store.
    #[arg(long, requires = "upstream_ca")]
    upstream_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// A TOML configuration file; environment and flags override it.
    #[arg(long, env = "PALISADE_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, env = "PALISADE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The admin API's address [default: 0.0.0.0:7443].
    #[arg(long, env = "PALISADE_LISTEN")]
    listen: Option<String>,
    #[arg(long, env = "PALISADE_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    #[arg(long, env = "PALISADE_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// A tracing filter, e.g. info or debug [default: info].
    #[arg(long, env = "PALISADE_LOG")]
    log_level: Option<String>,
    /// Serve the admin API without TLS, every caller being the first admin.
    /// Development only, and only on a loopback address.
    /// `--insecure-plaintext=false` turns off what the file or the
    /// environment turned on.
    #[arg(
        long,
        env = "PALISADE_INSECURE_PLAINTEXT",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    insecure_plaintext: Option<bool>,
    /// Also serve xDS without TLS on this loopback address, believing the
    /// node each client claims. Development only.
    #[arg(long, env = "PALISADE_XDS_PLAINTEXT_LISTEN")]
    xds_plaintext_listen: Option<String>,
    /// Seconds that in-flight calls get to finish on shutdown [default: 15].
    #[arg(long, env = "PALISADE_DRAIN_TIMEOUT_SECS")]
    drain_timeout_secs: Option<u64>,
    #[command(flatten)]
    identity: IdentityArgs,
}

/// Identity settings; a TOML file holds them under `[identity]`.
#[derive(Debug, Args, Default)]
struct IdentityArgs {
    /// Lifetime of workload certificates, in seconds [default: 3600].
    #[arg(long, env = "PALISADE_WORKLOAD_TTL_SECS")]
    workload_ttl_secs: Option<u64>,
    /// Lifetime of node certificates, in seconds [default: 86400].
    #[arg(long, env = "PALISADE_NODE_TTL_SECS")]
    node_ttl_secs: Option<u64>,
    /// Longest lifetime of a JWT-SVID, in seconds [default: 300].
    #[arg(long, env = "PALISADE_JWT_SVID_TTL_SECS")]
    jwt_svid_ttl_secs: Option<u64>,
    /// Validity of CAs that rotation makes, in seconds [default: one year].
    #[arg(long, env = "PALISADE_CA_LIFETIME_SECS")]
    ca_lifetime_secs: Option<u64>,
    /// How long a JWT signing key signs before rotation replaces it, in
    /// seconds [default: 30 days].
    #[arg(long, env = "PALISADE_JWT_KEY_LIFETIME_SECS")]
    jwt_key_lifetime_secs: Option<u64>,
    /// Rotate CAs and JWT keys on a schedule [default: true].
    #[arg(long, env = "PALISADE_AUTO_ROTATE")]
    auto_rotate: Option<bool>,
    /// Where to serve /.well-known/jwks.json over HTTPS, or "off"
    /// [default: 0.0.0.0:7444].
    #[arg(long, env = "PALISADE_JWKS_LISTEN")]
    jwks_listen: Option<String>,
}

impl From<IdentityArgs> for IdentityOverrides {
    fn from(args: IdentityArgs) -> Self {
        IdentityOverrides {
            workload_ttl_secs: args.workload_ttl_secs,
            node_ttl_secs: args.node_ttl_secs,
            jwt_svid_ttl_secs: args.jwt_svid_ttl_secs,
            ca_lifetime_secs: args.ca_lifetime_secs,
            jwt_key_lifetime_secs: args.jwt_key_lifetime_secs,
            auto_rotate: args.auto_rotate,
            jwks_listen: args.jwks_listen,
        }
    }
}

impl From<ServeArgs> for Overrides {
    fn from(args: ServeArgs) -> Self {
        Overrides {
            data_dir: args.data_dir,
            listen: args.listen,
            master_key_file: args.master_key_file,
            log_format: args.log_format,
            log_level: args.log_level,
            insecure_plaintext: args.insecure_plaintext,
            xds_plaintext_listen: args.xds_plaintext_listen,
            drain_timeout_secs: args.drain_timeout_secs,
            identity: args.identity.into(),
        }
    }
}

#[derive(Debug, Args)]
struct DevArgs {
    #[arg(long, env = "PALISADE_DATA_DIR", default_value = ".palisade-dev")]
    data_dir: PathBuf,
    #[arg(long, env = "PALISADE_LISTEN", default_value = "127.0.0.1:7443")]
    listen: String,
    #[arg(long, env = "PALISADE_LOG_FORMAT", default_value = "human")]
    log_format: LogFormat,
}

#[derive(Debug, Args)]
struct AdminCertArgs {
    #[arg(long, env = "PALISADE_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    #[arg(long, env = "PALISADE_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// The admin's name: its identity is spiffe://<td>/admin/<name>.
    #[arg(long)]
    name: String,
    /// Where to write <name>.pem, <name>-key.pem and ca.pem.
    #[arg(long)]
    out: PathBuf,
    /// Lifetime of the certificate, in seconds [default: 30 days].
    #[arg(long)]
    ttl_secs: Option<u64>,
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&anyhow::Error::new(error).context("starting the runtime")),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Init(args) => init_command(args).await,
            Command::Serve(args) => serve_command(args).await,
            Command::Dev(args) => dev_command(args).await,
            Command::AdminCert(args) => admin_cert_command(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    if error.downcast_ref::<ConfigError>().is_some() {
        return ExitCode::from(EXIT_CONFIG);
    }
    ExitCode::FAILURE
}

fn human_logs() -> LogConfig {
    LogConfig {
        format: LogFormat::Human,
        level: "info".into(),
    }
}

async fn init_command(args: InitArgs) -> anyhow::Result<()> {
    crate::telemetry::init(&human_logs());
    let master = master_key_for_init(args.master_key_file.as_deref())?;
    let upstream = read_upstream(args.upstream_ca.as_deref(), args.upstream_key.as_deref())?;
    let options = InitOptions {
        data_dir: DataDir::new(&args.data_dir),
        trust_domain: args.trust_domain,
        server_names: args.server_names,
        admin_name: args.admin_name.clone(),
        admin_ttl: admin_lifetime(args.admin_ttl_secs)?,
        upstream,
    };

    initialize(&options, &master).await?;
    let admin = options.data_dir.admin();
    println!(
        "initialized {} for trust domain {}",
        args.data_dir.display(),
        options.trust_domain
    );
    println!(
        "first admin: spiffe://{}/admin/{}",
        options.trust_domain, args.admin_name
    );
    println!("credentials: {}", admin.display());
    Ok(())
}

/// Reads the upstream CA's chain and key files, if given.
fn read_upstream(
    chain: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> anyhow::Result<Option<Upstream>> {
    let (Some(chain), Some(key)) = (chain, key) else {
        return Ok(None);
    };
    let read = |path: &std::path::Path| {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if size > MAX_UPSTREAM_FILE_BYTES {
            anyhow::bail!(
                "{} is larger than {MAX_UPSTREAM_FILE_BYTES} bytes",
                path.display()
            );
        }
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    };
    let chain_pem = String::from_utf8(read(chain)?)
        .with_context(|| format!("{} is not PEM text", chain.display()))?;
    let key_pem = SecretBytes::new(read(key)?);
    Ok(Some(Upstream { chain_pem, key_pem }))
}

/// An admin certificate's lifetime from a flag, checked.
fn admin_lifetime(secs: Option<u64>) -> Result<Duration, ConfigError> {
    match secs {
        None => Ok(crate::ca::ADMIN_LIFETIME),
        Some(secs) if (1..=MAX_ADMIN_TTL_SECS).contains(&secs) => Ok(Duration::from_secs(secs)),
        Some(secs) => Err(ConfigError::Invalid {
            setting: "admin ttl",
            detail: format!("{secs} is outside 1 to {MAX_ADMIN_TTL_SECS} seconds"),
        }),
    }
}

/// Loads the master key, or creates it when a file is named but missing.
fn master_key_for_init(file: Option<&std::path::Path>) -> anyhow::Result<MasterKey> {
    match file {
        Some(path) if !path.exists() => {
            let key = MasterKey::generate()?;
            key.write_new(path)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "created master key {}; keep it apart from the data directory",
                path.display()
            );
            Ok(key)
        }
        file => Ok(MasterKey::load(file)?),
    }
}

async fn serve_command(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::read(path)?,
        None => FileConfig::default(),
    };
    let config = ServeConfig::resolve(file, args.into())?;
    crate::telemetry::init(&config.log);
    log_config(&config);

    let signal = ShutdownSignal::register();
    let master = MasterKey::load(config.master_key_file.as_deref())?;
    let opened = Opened::open(&DataDir::new(&config.data_dir), &master).await?;
    let listener = bind(config.listen, &config.data_dir).await?;
    crate::serve::serve_opened(opened, &config, listener, signal).await
}

fn log_config(config: &ServeConfig) {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        data_dir = %config.data_dir.display(),
        listen = %config.listen,
        master_key_file = ?config.master_key_file,
        insecure_plaintext = config.insecure_plaintext,
        drain_timeout = ?config.drain_timeout,
        "palisade-cp starting"
    );
}

async fn admin_cert_command(args: AdminCertArgs) -> anyhow::Result<()> {
    crate::telemetry::init(&human_logs());
    let master = MasterKey::load(args.master_key_file.as_deref())?;

    let admin = AdminCertificate {
        name: &args.name,
        lifetime: admin_lifetime(args.ttl_secs)?,
    };
    let identity = issue_admin(&DataDir::new(&args.data_dir), &master, &admin, &args.out).await?;
    println!("issued {identity} into {}", args.out.display());
    println!(
        "bind it a role: palisadectl admin binding create NAME --role viewer --subject {identity}"
    );
    Ok(())
}

async fn dev_command(args: DevArgs) -> anyhow::Result<()> {
    let config = ServeConfig::resolve(
        FileConfig::default(),
        Overrides {
            data_dir: Some(args.data_dir.clone()),
            listen: Some(args.listen),
            log_format: Some(args.log_format),
            drain_timeout_secs: Some(5),
            xds_plaintext_listen: Some(DEV_XDS_PLAINTEXT_LISTEN.into()),
            identity: IdentityOverrides {
                jwks_listen: Some(DEV_JWKS_LISTEN.into()),
                ..IdentityOverrides::default()
            },
            ..Overrides::default()
        },
    )?;
    if !config.listen.ip().is_loopback() {
        return Err(ConfigError::Invalid {
            setting: "listen",
            detail: "dev mode listens on loopback only".into(),
        }
        .into());
    }
    crate::telemetry::init(&config.log);
    let signal = ShutdownSignal::register();

    let opened = crate::dev::prepare(&config).await?;
    let listener = bind(config.listen, &config.data_dir).await?;
    crate::dev::announce(&config, listener.local_addr()?)?;
    crate::serve::serve_opened(opened, &config, listener, signal).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The overrides that `palisade-cp serve ARGS` gives.
    fn serve_overrides(args: &[&str]) -> Overrides {
        let argv = ["palisade-cp", "serve"].iter().chain(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(args) => args.into(),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn insecure_plaintext_is_on_bare_off_with_false_and_unset_when_absent() {
        let on = serve_overrides(&["--insecure-plaintext"]);
        let on_then_listen = serve_overrides(&["--insecure-plaintext", "--listen", "127.0.0.1:1"]);
        let off = serve_overrides(&["--insecure-plaintext=false"]);
        let absent = serve_overrides(&[]);

        assert_eq!(on.insecure_plaintext, Some(true));
        assert_eq!(on_then_listen.insecure_plaintext, Some(true));
        assert_eq!(on_then_listen.listen.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(off.insecure_plaintext, Some(false));
        assert_eq!(absent.insecure_plaintext, None);
    }

    #[test]
    fn auto_rotate_takes_true_or_false() {
        let off = serve_overrides(&["--auto-rotate", "false"]);

        assert_eq!(off.identity.auto_rotate, Some(false));
        assert_eq!(serve_overrides(&[]).identity.auto_rotate, None);
    }
}

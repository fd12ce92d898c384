//! The `palisade-cp` command line: init, serve, dev and admin-cert.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::admin::PeerMode;
use crate::barrier::MasterKey;
use crate::config::{ConfigError, FileConfig, LogConfig, LogFormat, Overrides, ServeConfig};
use crate::data_dir::{DataDir, Opened, keys};
use crate::init::{InitOptions, initialize, issue_admin};
use crate::server::{Listening, bind, run};

/// Exit code for bad configuration or usage.
const EXIT_CONFIG: u8 = 64;

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
    #[arg(long, env = "PALISADE_INSECURE_PLAINTEXT")]
    insecure_plaintext: bool,
    /// Seconds that in-flight calls get to finish on shutdown [default: 15].
    #[arg(long, env = "PALISADE_DRAIN_TIMEOUT_SECS")]
    drain_timeout_secs: Option<u64>,
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
    let options = InitOptions {
        data_dir: DataDir::new(&args.data_dir),
        trust_domain: args.trust_domain,
        server_names: args.server_names,
        admin_name: args.admin_name.clone(),
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
    let overrides = Overrides {
        data_dir: args.data_dir,
        listen: args.listen,
        master_key_file: args.master_key_file,
        log_format: args.log_format,
        log_level: args.log_level,
        insecure_plaintext: args.insecure_plaintext,
        drain_timeout_secs: args.drain_timeout_secs,
    };
    let config = ServeConfig::resolve(file, overrides)?;
    crate::telemetry::init(&config.log);
    log_config(&config);

    let master = MasterKey::load(config.master_key_file.as_deref())?;
    let opened = Opened::open(&DataDir::new(&config.data_dir), &master).await?;
    let listener = bind(config.listen, &config.data_dir).await?;
    serve_opened(opened, &config, listener).await
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

async fn serve_opened(
    opened: Opened,
    config: &ServeConfig,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<()> {
    let (tls, peers) = if config.insecure_plaintext {
        tracing::warn!("admin API is plaintext: development only, every caller is the admin");
        let identity = format!("spiffe://{}/admin/admin", opened.trust_domain);
        (None, PeerMode::Plaintext { identity })
    } else {
        let (server_config, verifier) = tls_settings(&opened).await?;
        (
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(server_config))),
            PeerMode::Mtls(verifier),
        )
    };

    let listening = Listening {
        listener,
        tls,
        peers,
        drain_timeout: config.drain_timeout,
    };
    let store: Arc<dyn crate::store::Store> = opened.store.clone();
    run(store, listening, shutdown_signal()).await
}

async fn tls_settings(
    opened: &Opened,
) -> anyhow::Result<(rustls::ServerConfig, crate::tls::PeerVerifier)> {
    let ca = opened.system(keys::CA_CERT).await?;
    let certificate = opened.system(keys::SERVER_CERT).await?;
    let sealed_key = opened.system(keys::SERVER_KEY).await?;
    let key = opened.barrier.open(keys::SERVER_KEY, &sealed_key)?;

    let settings = crate::tls::server_config(
        &opened.trust_domain,
        &String::from_utf8_lossy(&ca),
        &String::from_utf8_lossy(&certificate),
        &key,
    )?;
    Ok(settings)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        _ = ctrl_c => tracing::info!(signal = "interrupt", "shutting down"),
        _ = terminate => tracing::info!(signal = "terminate", "shutting down"),
    }
}

async fn admin_cert_command(args: AdminCertArgs) -> anyhow::Result<()> {
    crate::telemetry::init(&human_logs());
    let master = MasterKey::load(args.master_key_file.as_deref())?;

    let identity = issue_admin(
        &DataDir::new(&args.data_dir),
        &master,
        &args.name,
        &args.out,
    )
    .await?;
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

    let opened = crate::dev::prepare(&config).await?;
    let listener = bind(config.listen, &config.data_dir).await?;
    crate::dev::announce(&config, listener.local_addr()?)?;
    serve_opened(opened, &config, listener).await
}

//! What `palisade-cp serve` runs once its data directory is open: the
//! identity authority, TLS that follows CA rotations, the JWKS endpoint, the
//! rotation schedule, and the gRPC server until a signal.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::admin::PeerMode;
use crate::config::ServeConfig;
use crate::data_dir::{DataDir, Opened, keys};
use crate::identity::authority::Authority;
use crate::identity::jwks_http;
use crate::server::{Listening, Planes, run};
use crate::signals::ShutdownSignal;
use crate::store::Store;
use crate::tasks::AbortOnDrop;
use crate::tls::{SessionTickets, TlsSettings};
use crate::xds::runtime::Xds;

mod followers;

/// Serves `opened` on `listener` until Ctrl-C or SIGTERM, which `signal`
/// has caught since before the listener was bound.
pub async fn serve_opened(
    opened: Opened,
    config: &ServeConfig,
    listener: TcpListener,
    signal: ShutdownSignal,
) -> anyhow::Result<()> {
    // The authority, with the key material the server signs with.
    let store: Arc<dyn Store> = opened.store.clone();
    let barrier = Arc::new(opened.barrier);
    let authority = Authority::open(
        store.clone(),
        barrier,
        &opened.trust_domain,
        config.identity.clone(),
    )
    .await
    .context("loading the CAs and signing keys")?;
    let dir = DataDir::new(&config.data_dir);

    // TLS, kept in step with the CAs.
    let (tls, peers, settings) = if config.insecure_plaintext {
        tracing::warn!("admin API is plaintext: development only, every caller is the admin");
        let identity = format!("spiffe://{}/admin/admin", opened.trust_domain);
        (None, PeerMode::Plaintext { identity }, None)
    } else {
        let settings = tls_settings(&authority).await?;
        let acceptor = tokio_rustls::TlsAcceptor::from(settings.config.clone());
        (
            Some(acceptor),
            PeerMode::Mtls(settings.peers.clone()),
            Some(settings),
        )
    };
    let _followers = followers::spawn(&authority, settings.clone(), dir.clone());

    // The JWKS endpoint and the rotation schedule.
    let _jwks = serve_jwks(&authority, config, settings.as_ref(), &dir).await?;
    let _schedule = crate::identity::schedule::spawn(authority.clone());

    // xDS, compiled from the store and kept current.
    let xds = Arc::new(
        Xds::start(store.clone(), authority.clone())
            .await
            .context("loading the xDS world")?,
    );

    let _plaintext_xds = match config.xds_plaintext_listen {
        Some(address) => Some(serve_plaintext_xds(&xds, address, &dir).await?),
        None => None,
    };

    let listening = Listening {
        listener,
        tls,
        peers,
        drain_timeout: config.drain_timeout,
    };
    let planes = Planes { authority, xds };
    run(store, planes, listening, signal.recv()).await
}

/// The server's TLS settings from the current bundle and its certificate.
async fn tls_settings(authority: &Authority) -> anyhow::Result<TlsSettings> {
    let (chain, key) = server_certificate(authority).await?;
    let material = authority.current();
    let tickets = Arc::new(SessionTickets::new(authority.barrier().ticket_seed()));
    let settings = crate::tls::server_config(
        authority.trust_domain(),
        &material.bundle_pem,
        &chain,
        &key,
        tickets,
    )?;
    Ok(settings)
}

/// The server's certificate chain and unsealed key, from the store.
pub(crate) async fn server_certificate(
    authority: &Authority,
) -> anyhow::Result<(String, crate::barrier::SecretBytes)> {
    let store = authority.store();
    let chain = store
        .system_get(keys::SERVER_CERT)
        .await?
        .context("the store has no server certificate")?;
    let sealed = store
        .system_get(keys::SERVER_KEY)
        .await?
        .context("the store has no server key")?;
    let key = authority.barrier().open(keys::SERVER_KEY, &sealed)?;
    Ok((String::from_utf8_lossy(&chain).into_owned(), key))
}

/// Binds and starts the JWKS endpoint, unless it is turned off, recording
/// its address in `<data-dir>/jwks.addr`.
async fn serve_jwks(
    authority: &Arc<Authority>,
    config: &ServeConfig,
    settings: Option<&TlsSettings>,
    dir: &DataDir,
) -> anyhow::Result<Option<AbortOnDrop>> {
    let Some(address) = config.identity.jwks_listen else {
        return Ok(None);
    };
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("binding the JWKS endpoint on {address}"))?;
    let bound = listener.local_addr()?;
    crate::fsutil::write_public(&dir.root().join("jwks.addr"), bound.to_string().as_bytes())
        .context("recording the JWKS address")?;

    let tls = match settings {
        Some(settings) => {
            let config = crate::tls::config_with_alpn(settings, &jwks_http::ALPN_PROTOCOLS)?;
            Some(tokio_rustls::TlsAcceptor::from(config))
        }
        None => None,
    };
    let jwks = followers::jwks_channel(authority);
    let task = tokio::spawn(async move {
        let served = jwks_http::serve(listener, tls, jwks, std::future::pending::<()>()).await;
        if let Err(error) = served {
            tracing::error!(%error, "JWKS endpoint stopped");
        }
    });
    Ok(Some(AbortOnDrop(task)))
}

/// Serves ADS alone, without TLS, on a loopback address, recording it in
/// `<data-dir>/xds-plaintext.addr`. Development only: the node id a client
/// claims is believed.
async fn serve_plaintext_xds(
    xds: &Xds,
    address: std::net::SocketAddr,
    dir: &DataDir,
) -> anyhow::Result<AbortOnDrop> {
    use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;

    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("binding plaintext xDS on {address}"))?;
    let bound = listener.local_addr()?;
    crate::fsutil::write_public(
        &dir.root().join("xds-plaintext.addr"),
        bound.to_string().as_bytes(),
    )
    .context("recording the plaintext xDS address")?;
    tracing::warn!(address = %bound, "xDS is also served in plaintext: development only, clients are believed");

    let (keep_serving, shutdown) = tokio::sync::watch::channel(false);
    let ads = AggregatedDiscoveryServiceServer::new(xds.service(None, shutdown))
        .max_decoding_message_size(xds.limits().max_request_bytes);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let task = tokio::spawn(async move {
        let _keep_serving = keep_serving;
        let served = tonic::transport::Server::builder()
            .add_service(ads)
            .serve_with_incoming(incoming)
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "plaintext xDS stopped");
        }
    });
    Ok(AbortOnDrop(task))
}

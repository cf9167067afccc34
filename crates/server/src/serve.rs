//! Wiring and the HTTP(S) listener with graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth_app::{Registry, SystemClock};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::{AuthMode, Config};
use crate::connection::{self, Activity, Timeouts, Watched, WatchedIo};

/// Opens the stores, binds the listener and serves until SIGTERM or SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let database = crate::database::Location::of(&config).map_err(anyhow::Error::msg)?;
    let meta = database.open().await?;
    let blobs = crate::storage::open(&config).await?;
    let clock: Arc<dyn berth_app::Clock> = Arc::new(SystemClock);
    // Upload URLs are sealed with a key derived from the token signing key, which every
    // node of a registry shares.
    let signing_key_pem = crate::signing_key::load_or_generate(&config.token_key_path())?;
    let registry_config = config.registry_config(berth_app::UploadUrlKey::derived_from(
        signing_key_pem.as_bytes(),
    ));
    let registry = Arc::new(Registry::new(
        meta.clone(),
        blobs,
        clock.clone(),
        registry_config,
    ));
    let identity = Arc::new(crate::identity::open(&config, meta.clone(), clock).await?);
    let job_store: Arc<dyn berth_meta::JobStore> = meta.clone();
    let jobs = crate::jobs::runner(&config, meta, registry.clone(), &identity);
    if config.auth.mode == AuthMode::Open {
        tracing::warn!(
            "auth.mode = \"open\": every /v2/ request is allowed, anonymous pushes and \
             deletes included; use it only on a trusted network"
        );
    }
    let tls = crate::tls::acceptor(&config.tls)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(
        address = %listener.local_addr()?,
        tls = tls.is_some(),
        data_dir = %config.data_dir.display(),
        database = %database.describe(),
        "berth is listening"
    );

    let (stop, stopped) = watch::channel(false);
    let workers = tokio::spawn(crate::workers::run(
        registry.clone(),
        identity.clone(),
        stopped.clone(),
    ));
    let jobs = tokio::spawn(jobs.run(stopped));
    let app = berth_api::router(Arc::new(berth_api::Services {
        registry,
        identity,
        jobs: job_store,
        external_url: config.external_url.clone(),
        scheme: if tls.is_some() { "https" } else { "http" },
    }));
    run(
        listener,
        tls,
        app,
        shutdown_signal(),
        config.listener_limits(),
    )
    .await;
    let _ = stop.send(true);
    if tokio::time::timeout(Duration::from_secs(1), workers)
        .await
        .is_err()
    {
        tracing::warn!("pull times were not recorded in time; leaving them");
    }
    // Running jobs get their grace period, then give their jobs back to the queue.
    let jobs_grace = config.jobs.runner().shutdown_grace + Duration::from_secs(1);
    if tokio::time::timeout(jobs_grace, jobs).await.is_err() {
        tracing::warn!("background jobs did not stop in time; their leases will expire");
    }
    tracing::info!("berth stopped");
    Ok(())
}

/// How the listener treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// Most connections open at once; further clients wait in the accept queue.
    pub max_connections: usize,
    /// How long a connection may wait on its client.
    pub timeouts: Timeouts,
    /// Time in-flight requests get to finish after the shutdown signal.
    pub grace: Duration,
}

/// Accepts connections until `shutdown` completes, then lets in-flight requests finish
/// (for at most `limits.grace`).
pub async fn run(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
    limits: ListenerLimits,
) {
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(http_builder());
    let service = TowerToHyperService::new(app);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new(limits.timeouts);
        let service = Watched::new(service.clone(), activity.clone(), peer.ip());
        let io = WatchedIo::new(stream, activity.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let handshake_timeout = limits.timeouts.header_read;
        tokio::spawn(async move {
            let _slot = slot;
            let served = async {
                match tls {
                    None => {
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(io), service)
                            .into_owned();
                        watcher.watch(conn).await
                    }
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(handshake_timeout, acceptor.accept(io));
                        let stream = match handshake.await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => return Err(e.into()),
                            Err(_) => return Err("TLS handshake timed out".into()),
                        };
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .into_owned();
                        watcher.watch(conn).await
                    }
                }
            };
            tokio::select! {
                result = served => if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                },
                reason = connection::watch(activity) => {
                    tracing::debug!(%peer, reason, "dropped a stalled connection");
                }
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    if tokio::time::timeout(limits.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
}

/// Response bytes HTTP/2 buffers for one stream before it stops asking the body for more.
const HTTP2_STREAM_SEND_BUFFER: usize = 256 << 10;
/// Streams one HTTP/2 connection may have open at once.
const HTTP2_MAX_STREAMS: u32 = 100;

/// The HTTP/2 connection settings: what one connection holds is bounded whatever its
/// client does.
///
/// HTTP/1.1 keeps hyper's buffer limit (a connection keeps the read buffer an upload
/// grew, 450 to 640 KiB measured): hyper bounds reads and queued writes with one
/// setting, and with less than two blob chunks of write queue a pull is a quarter
/// slower. `limits.max_connections` bounds what connections hold together.
fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_send_buf_size(HTTP2_STREAM_SEND_BUFFER)
        .max_concurrent_streams(HTTP2_MAX_STREAMS);
    builder
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

//! Wiring and the HTTP(S) listener with graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth_app::{Registry, SystemClock};
use berth_blob::FsBlobStore;
use berth_meta_sqlite::SqliteMetaStore;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;

/// Opens the stores, binds the listener and serves until SIGTERM or SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let meta =
        SqliteMetaStore::open(config.database_path()).context("opening the metadata database")?;
    let blobs = FsBlobStore::open(config.storage_path()).context("opening the blob store")?;
    let registry = Arc::new(Registry::new(
        Arc::new(meta),
        Arc::new(blobs),
        Arc::new(SystemClock),
        config.registry_config(),
    ));
    let tls = crate::tls::acceptor(&config.tls)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(
        address = %listener.local_addr()?,
        tls = tls.is_some(),
        data_dir = %config.data_dir.display(),
        "berth is listening"
    );

    let (stop, stopped) = watch::channel(false);
    let purge_every = Duration::from_secs(config.limits.upload_purge_interval_secs.max(1));
    let workers = tokio::spawn(crate::workers::run(registry.clone(), purge_every, stopped));
    let app = berth_api::router(registry);
    let grace = Duration::from_secs(config.limits.shutdown_grace_secs);
    run(listener, tls, app, shutdown_signal(), grace).await;
    let _ = stop.send(true);
    let _ = workers.await;
    tracing::info!("berth stopped");
    Ok(())
}

/// Accepts connections until `shutdown` completes, then lets in-flight requests finish
/// (for at most `grace`).
pub async fn run(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    let service = TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    loop {
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
        let service = service.clone();
        let builder = builder.clone();
        match &tls {
            None => {
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match acceptor.accept(stream).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                    };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

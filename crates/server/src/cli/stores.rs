//! Commands that work on the server's stores beside running servers (`gc`, `fsck`):
//! a runtime, the configured metadata and blob stores, and a registry over them.

use std::sync::Arc;

use anyhow::Context;
use berth_app::{Registry, SystemClock, UploadUrlKey};

use super::DataArgs;
use crate::config::{Config, LogConfig};

/// Loads the configuration, opens its stores and runs `work` on a registry over them,
/// logging warnings only.
pub fn with_registry<T>(
    data: &DataArgs,
    work: impl AsyncFnOnce(&Registry, &Config) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let config = data.load()?;
    crate::telemetry::init(&LogConfig {
        level: "warn".into(),
        format: config.log.format,
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let meta = crate::database::open(&config).await?;
        let blobs = crate::storage::open(&config).await?;
        // Offline commands open no upload URLs.
        let config_of_registry = config.registry_config(UploadUrlKey::of_this_process());
        let registry = Registry::new(meta, blobs, Arc::new(SystemClock), config_of_registry);
        work(&registry, &config).await
    })
}

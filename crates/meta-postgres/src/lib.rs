//! The scale-out metadata store: PostgreSQL through a connection pool.
//!
//! Every node of a cluster opens the same database; nothing of the metadata is kept
//! only in one node's memory. Each write is one transaction, so the invariants the
//! SQLite adapter keeps (a manifest push is one transaction, a delete checks references
//! in the transaction that deletes) hold here too, between nodes as well as within one.

mod jobs;
mod migrate;

use std::time::Duration;

use berth_meta::MetaError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/database?…`.
    pub url: String,
    /// Most connections this node opens.
    pub pool_size: u32,
    /// Longest a statement may run before the server cancels it.
    pub statement_timeout: Duration,
}

/// Metadata store on a PostgreSQL database.
pub struct PgMetaStore {
    pool: PgPool,
}

impl PgMetaStore {
    /// Connects, then applies pending migrations under the migration lock.
    pub async fn connect(config: &PgConfig) -> Result<Self, MetaError> {
        let options = connect_options(config)?;
        let mut conn = options.connect().await.map_err(db_err)?;
        migrate::run(&mut conn).await?;
        conn.close().await.map_err(db_err)?;
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(db_err)?;
        Ok(PgMetaStore { pool })
    }
}

fn connect_options(config: &PgConfig) -> Result<PgConnectOptions, MetaError> {
    let options: PgConnectOptions = config
        .url
        .parse()
        .map_err(|e| MetaError(format!("database.url: {e}")))?;
    let timeout_ms = config.statement_timeout.as_millis();
    Ok(options
        .application_name("berth")
        .options([("statement_timeout", format!("{timeout_ms}"))]))
}

pub(crate) fn db_err(e: sqlx::Error) -> MetaError {
    MetaError(e.to_string())
}

#[cfg(test)]
mod tests;

//! The metadata store the configuration names: SQLite in a file (the default), or a
//! PostgreSQL database shared by every node (`database.url`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth_meta::Metadata;
use berth_meta_postgres::{PgConfig, PgMetaStore};
use berth_meta_sqlite::SqliteMetaStore;

use crate::config::Config;

/// Where the metadata lives.
pub enum Location {
    /// An SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(PgConfig),
}

impl Location {
    /// The store `config` names, or why its `database` section names none.
    pub fn of(config: &Config) -> Result<Self, String> {
        let db = &config.database;
        let Some(url) = &db.url else {
            return Ok(Location::Sqlite(config.database_path()));
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(format!(
                "database.url must be a postgres:// or postgresql:// URL, not {}",
                redacted(url)
            ));
        }
        Ok(Location::Postgres(PgConfig {
            url: url.clone(),
            pool_size: db.pool_size.max(1),
            statement_timeout: Duration::from_secs(db.statement_timeout_secs),
        }))
    }

    /// The store for logs and messages: the file, or the URL with its password hidden.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(path) => format!("sqlite:{}", path.display()),
            Location::Postgres(pg) => redacted(&pg.url),
        }
    }

    /// Opens the store, applying the migrations it has not seen yet.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Metadata>> {
        let context = || format!("opening the metadata database {}", self.describe());
        Ok(match self {
            Location::Sqlite(path) => Arc::new(SqliteMetaStore::open(path).with_context(context)?),
            Location::Postgres(pg) => {
                Arc::new(PgMetaStore::connect(pg).await.with_context(context)?)
            }
        })
    }
}

/// Opens the metadata store `config` names.
pub async fn open(config: &Config) -> anyhow::Result<Arc<dyn Metadata>> {
    Location::of(config)
        .map_err(anyhow::Error::msg)?
        .open()
        .await
}

/// `url` with the password of its user info and of a `password=` parameter hidden.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".into();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<&str> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some(("password", _)) => "password=***",
                    _ => pair,
                })
                .collect();
            format!("{path}?{}", pairs.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Serializes `database.url` with its password hidden (`berth config` prints it).
pub fn serialize_url<S: serde::Serializer>(
    url: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => serializer.serialize_some(&redacted(url)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_wherever_the_url_holds_them() {
        assert_eq!(
            redacted("postgres://berth:s3cret@db:5432/berth?sslmode=require&password=x"),
            "postgres://berth:***@db:5432/berth?sslmode=require&password=***"
        );
        assert_eq!(
            redacted("postgresql://berth@db/berth"),
            "postgresql://berth@db/berth"
        );
        assert_eq!(redacted("postgres://db"), "postgres://db");
        assert_eq!(redacted("s3cret"), "(not a URL)");
    }
}

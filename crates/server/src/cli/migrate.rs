//! `berth migrate`: brings the configured metadata database to this Berth's schema and
//! exits (every start does the same; this runs it on its own, before rolling nodes out),
//! or, with `--from sqlite:PATH --to postgres://…`, copies a single node's SQLite
//! database into a new PostgreSQL database, for a move to several nodes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use berth_meta_postgres::{PgConfig, import_sqlite};
use berth_meta_sqlite::SqliteMetaStore;

use super::DataArgs;
use crate::database::{Location, redacted};

/// The arguments of `berth migrate`.
#[derive(clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Copy this SQLite database (`sqlite:PATH`) instead of migrating the configured
    /// one. Stop the node that uses it first, or copy a consistent snapshot of it.
    #[arg(long, value_name = "sqlite:PATH", requires = "to")]
    from: Option<String>,
    /// The PostgreSQL database to copy into (`postgres://…`): new, or holding no users
    /// or repositories yet.
    #[arg(long, value_name = "URL", requires = "from")]
    to: Option<String>,
}

/// Runs `berth migrate`.
pub fn run(args: &MigrateArgs) -> anyhow::Result<()> {
    let config = args.data.load()?;
    crate::telemetry::init(&config.log)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match (&args.from, &args.to) {
        (Some(from), Some(to)) => runtime.block_on(copy(from, to)),
        _ => {
            let location = Location::of(&config).map_err(anyhow::Error::msg)?;
            runtime.block_on(location.open())?;
            println!("{} is up to date", location.describe());
            Ok(())
        }
    }
}

/// Copies the SQLite database `from` names into the PostgreSQL database `to` names.
async fn copy(from: &str, to: &str) -> anyhow::Result<()> {
    let Some(path) = from.strip_prefix("sqlite:").map(PathBuf::from) else {
        bail!("--from must be sqlite:PATH, not {from:?}");
    };
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        bail!("--to must be a postgres:// URL, not {}", redacted(to));
    }
    if !path.is_file() {
        bail!("{} is not a file", path.display());
    }
    // Brings the file to this Berth's schema, as its next start would.
    drop(SqliteMetaStore::open(&path).with_context(|| format!("opening {}", path.display()))?);
    let target = PgConfig {
        url: to.to_owned(),
        pool_size: 2,
        // A large table is copied in statements of many rows: no statement timeout.
        statement_timeout: Duration::ZERO,
    };
    let report = import_sqlite(&path, &target)
        .await
        .with_context(|| format!("copying {} into {}", path.display(), redacted(to)))?;
    for (table, rows) in &report.tables {
        println!("{table:<24} {rows:>10} rows");
    }
    println!(
        "copied {} into {}; nodes with database.url = that URL now serve it (blob bytes \
         stay where [storage] puts them)",
        path.display(),
        redacted(to)
    );
    Ok(())
}

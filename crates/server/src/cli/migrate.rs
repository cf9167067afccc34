//! `berth migrate`: brings the configured metadata database to this Berth's schema and
//! exits. Every start does the same; this runs it on its own, before rolling nodes out.

use anyhow::Context;

use super::DataArgs;
use crate::database::Location;

/// Applies the pending migrations to the database `args` names; says which one.
pub fn run(args: &DataArgs) -> anyhow::Result<()> {
    let config = args.load()?;
    crate::telemetry::init(&config.log)?;
    let location = Location::of(&config).map_err(anyhow::Error::msg)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(location.open())?;
    println!("{} is up to date", location.describe());
    Ok(())
}

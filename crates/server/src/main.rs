//! `berth`: the registry binary — configuration, wiring, listeners, background work.

mod config;
mod connection;
mod serve;
mod signing_key;
mod telemetry;
mod tls;
mod workers;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;

/// Berth: an OCI registry with Harbor's management features, in one binary.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry (defaults: 0.0.0.0:5000, SQLite + files under ./berth-data).
    Serve(ServeArgs),
    /// Print the effective configuration (defaults, file and BERTH_* variables merged) as TOML.
    Config(ConfigArgs),
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// Configuration file (TOML). Every key can also be set as BERTH_<KEY>, nested keys
    /// with a double underscore (BERTH_LOG__LEVEL).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Listen address; overrides the file and BERTH_LISTEN.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Data directory; overrides the file and BERTH_DATA_DIR.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn load(args: &ConfigArgs) -> anyhow::Result<Config> {
    Config::load(args.config.as_deref()).context("loading the configuration")
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let mut config = load(&args.config)?;
            if let Some(listen) = args.listen {
                config.listen = listen;
            }
            if let Some(dir) = args.data_dir {
                config.data_dir = dir;
            }
            telemetry::init(&config.log)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            let served = runtime.block_on(serve::serve(config));
            // Blocking work still running (a long re-hash) must not hold the exit.
            runtime.shutdown_timeout(std::time::Duration::from_millis(500));
            served
        }
        Command::Config(args) => {
            print!(
                "{}",
                toml::to_string(&load(&args)?).context("rendering the configuration")?
            );
            Ok(())
        }
    }
}

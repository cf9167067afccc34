//! The command line: `serve`, `config`, `migrate`, `gc`, `fsck`, and the offline commands that
//! work on a server's database directly, with or without the server running (`admin`,
//! `user`, `project`, `robot`), for bootstrap and recovery.

mod admin;
mod fsck;
mod gc;
mod migrate;
mod offline;
mod output;
mod project;
mod robot;
mod stores;
mod user;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;

/// Berth: an OCI registry with Harbor's management features, in one binary.
#[derive(Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry (defaults: 0.0.0.0:5000, SQLite + files under ./berth-data).
    Serve(ServeArgs),
    /// Print the effective configuration (defaults, file and BERTH_* variables merged) as TOML.
    Config(ConfigArgs),
    /// Apply the metadata database's pending migrations and exit (every start does too),
    /// or copy a single node's SQLite database into PostgreSQL (--from, --to).
    Migrate(migrate::MigrateArgs),
    /// Delete the blobs nothing references any more (longer than `gc.grace_period`),
    /// beside running servers.
    Gc(gc::GcArgs),
    /// Recompute every project's storage usage from its manifests and report any
    /// difference from the stored counters (--blobs: also re-hash every stored blob).
    Fsck(fsck::FsckArgs),
    /// Recover administrative access (offline: works on the database directly).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Create and list users (offline: works on the database directly).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Create and list projects (offline: works on the database directly).
    #[command(subcommand)]
    Project(project::ProjectCommand),
    /// Create and list robot accounts (offline: works on the database directly).
    #[command(subcommand)]
    Robot(robot::RobotCommand),
}

/// Where the configuration comes from.
#[derive(clap::Args)]
pub struct ConfigArgs {
    /// Configuration file (TOML). Every key can also be set as BERTH_<KEY>, nested keys
    /// with a double underscore (BERTH_LOG__LEVEL).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

impl ConfigArgs {
    /// The configuration: defaults, then the file, then `BERTH_*` variables.
    fn load(&self) -> anyhow::Result<Config> {
        Config::load(self.config.as_deref()).context("loading the configuration")
    }
}

/// The configuration and the data directory, as `serve` and the offline commands take
/// them.
#[derive(clap::Args)]
pub struct DataArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Data directory; overrides the file and BERTH_DATA_DIR.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl DataArgs {
    /// The configuration, with the data directory given on the command line.
    fn load(&self) -> anyhow::Result<Config> {
        let mut config = self.config.load()?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        Ok(config)
    }
}

#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Listen address; overrides the file and BERTH_LISTEN.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

/// Runs the command the command line names.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Config(args) => {
            print!(
                "{}",
                toml::to_string(&args.load()?).context("rendering the configuration")?
            );
            Ok(())
        }
        Command::Migrate(args) => migrate::run(&args),
        Command::Gc(args) => gc::run(&args),
        Command::Fsck(args) => fsck::run(&args),
        Command::Admin(command) => admin::run(command),
        Command::User(command) => user::run(command),
        Command::Project(command) => project::run(command),
        Command::Robot(command) => robot::run(command),
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let mut config = args.data.load()?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    crate::telemetry::init(&config.log)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.worker_threads > 0 {
        runtime.worker_threads(config.worker_threads);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let served = runtime.block_on(crate::serve::serve(config));
    // Blocking work still running (a long re-hash) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    served
}

//! `berth`: the registry binary — configuration, wiring, listeners, background work,
//! and the offline administration commands.

mod cli;
mod config;
mod connection;
mod database;
mod identity;
mod jobs;
mod serve;
mod signing_key;
mod storage;
mod telemetry;
mod tls;
mod workers;

fn main() -> anyhow::Result<()> {
    cli::run(clap::Parser::parse())
}

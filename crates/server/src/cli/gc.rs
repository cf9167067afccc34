//! `berth gc`: one garbage collection over the server's stores, beside running servers
//! (collection is online: see `docs/design/gc.md`).

use anyhow::Context;
use berth_app::CollectionOptions;

use super::DataArgs;
use super::output::table;
use super::stores::with_registry;

/// What `berth gc` is asked.
#[derive(clap::Args)]
pub struct GcArgs {
    #[command(flatten)]
    data: DataArgs,
    /// List the blobs a collection would delete now, and delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Delete, first, the manifests that no tag names and nothing needs (no index of
    /// their repository lists them, and their subject, if any, is gone), pushed before
    /// the grace period.
    #[arg(long)]
    delete_untagged: bool,
}

/// Runs one collection and prints what it deleted, or would delete.
pub fn run(args: &GcArgs) -> anyhow::Result<()> {
    let report = with_registry(&args.data, async |registry, config| {
        let options = CollectionOptions {
            dry_run: args.dry_run,
            grace: config.gc.grace_period,
            workers: config.gc.workers.max(1),
            delete_untagged: args.delete_untagged,
        };
        registry
            .collect_garbage(options)
            .await
            .context("collecting garbage")
    })?;
    let manifests: Vec<[String; 3]> = (report.manifests.iter())
        .map(|m| {
            [
                m.repository.to_string(),
                m.digest.to_string(),
                m.size.to_string(),
            ]
        })
        .collect();
    if !manifests.is_empty() {
        print!(
            "{}",
            table(["REPOSITORY", "UNTAGGED MANIFEST", "BYTES"], &manifests)
        );
    }
    let rows: Vec<[String; 2]> = (report.blobs.iter())
        .map(|b| [b.digest.to_string(), b.size.to_string()])
        .collect();
    if !rows.is_empty() {
        print!("{}", table(["BLOB", "BYTES"], &rows));
    }
    for failed in &report.failed {
        eprintln!("could not delete blob {}: {}", failed.digest, failed.error);
    }
    let (blobs, bytes, untagged) = (report.blobs.len(), report.bytes, report.manifests.len());
    if args.dry_run {
        println!("would delete {untagged} untagged manifests, {blobs} blobs, {bytes} bytes");
    } else {
        println!(
            "deleted {untagged} untagged manifests, {blobs} blobs, {bytes} bytes; \
             removed {} unreferenced blob links",
            report.links_removed
        );
    }
    if !report.failed.is_empty() {
        anyhow::bail!(
            "{} blobs could not be deleted; they stay marked for the next collection",
            report.failed.len()
        );
    }
    Ok(())
}

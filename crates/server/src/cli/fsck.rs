//! `berth fsck`: recomputes every project's usage and counts from its manifests and
//! reports any difference from the stored counters; with `--blobs`, also re-hashes every
//! stored blob. Exits with an error when anything differs.

use anyhow::Context;
use berth_meta::UsageDrift;

use super::DataArgs;
use super::output::table;
use super::stores::with_registry;

/// What `berth fsck` is asked.
#[derive(clap::Args)]
pub struct FsckArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Also list every project's quota: its limit and its usage.
    #[arg(long)]
    projects: bool,
    /// Also read every stored blob and check its bytes against its digest.
    #[arg(long)]
    blobs: bool,
}

/// A stored size and reference count, or `-` when there is none.
fn counts(pair: Option<(i64, i64)>) -> String {
    pair.map_or("-".into(), |(size, refs)| {
        format!("{size} bytes, {refs} refs")
    })
}

/// One line about a difference.
fn describe(drift: &UsageDrift) -> String {
    match drift {
        UsageDrift::Missing { project } => format!("project {project:?} has no quota"),
        UsageDrift::Used {
            project,
            stored,
            recomputed,
        } => format!(
            "project {project:?} uses {stored} bytes by its counter, {recomputed} by its manifests"
        ),
        UsageDrift::References {
            project,
            digest,
            stored,
            recomputed,
        } => format!(
            "project {project:?} counts {digest} as {}, its manifests as {}",
            counts(*stored),
            counts(*recomputed)
        ),
    }
}

/// Runs the checks and prints what differs.
pub fn run(args: &FsckArgs) -> anyhow::Result<()> {
    let report = with_registry(&args.data, async |registry, _| {
        registry
            .check_integrity(args.projects, args.blobs)
            .await
            .context("checking the stores")
    })?;
    if args.projects {
        let rows: Vec<[String; 3]> = (report.quotas.iter())
            .map(|q| {
                [
                    q.project_name.clone(),
                    q.hard.to_string(),
                    q.used.to_string(),
                ]
            })
            .collect();
        print!("{}", table(["PROJECT", "LIMIT", "USED"], &rows));
    }
    for drift in &report.drift {
        println!("{}", describe(drift));
    }
    for corrupt in &report.corrupt {
        println!("blob {} is corrupt: {}", corrupt.digest, corrupt.problem);
    }
    if args.blobs {
        println!("{} blobs re-hashed", report.blobs_checked);
    }
    if !report.is_clean() {
        anyhow::bail!(
            "{} usage differences, {} corrupt blobs",
            report.drift.len(),
            report.corrupt.len()
        );
    }
    println!("usage and references agree with the manifests");
    Ok(())
}

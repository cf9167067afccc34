//! Garbage collection as a job of the queue: a run goes a batch at a time, saves its
//! progress after each, stops when asked, and logs what it deletes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_meta::Checkpoint;
use serde::{Deserialize, Serialize};

use crate::Registry;
use crate::collector::{CollectionOptions, CollectionProgress, CollectionStep};
use crate::jobs::handler::{Finished, HandlerError, JobContext, JobHandler};

/// How a collection job was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Trigger {
    /// Asked for once.
    Manual,
    /// Fired by the schedule.
    Schedule,
}

/// A collection job's payload: Harbor's GC parameters, and how it was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionParameters {
    /// Delete untagged manifests that nothing needs first.
    #[serde(default)]
    pub delete_untagged: bool,
    /// List what would be deleted, and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Sweeps run at once.
    #[serde(default = "one_worker")]
    pub workers: usize,
    /// How the job was started.
    pub trigger: Trigger,
}

fn one_worker() -> usize {
    1
}

/// Runs collection jobs ([`GarbageCollection::KIND`]) on the registry, with its grace
/// period.
pub struct GarbageCollection {
    /// The registry collected.
    pub registry: Arc<Registry>,
    /// How long a blob or manifest stays unreferenced before it is collected.
    pub grace: Duration,
}

impl GarbageCollection {
    /// The job kind, and the name of its schedule.
    pub const KIND: &str = "gc";

    fn options(&self, parameters: &CollectionParameters) -> CollectionOptions {
        CollectionOptions {
            dry_run: parameters.dry_run,
            grace: self.grace,
            workers: parameters.workers.max(1),
            delete_untagged: parameters.delete_untagged,
        }
    }

    /// Lists what a collection would delete now, in the job's log.
    async fn dry_run(
        &self,
        job: &JobContext,
        options: CollectionOptions,
    ) -> Result<Finished, HandlerError> {
        let report = self.registry.collect_garbage(options).await?;
        let manifests = (report.manifests.iter())
            .map(|m| format!("would delete manifest {}@{}", m.repository, m.digest));
        let blobs = (report.blobs.iter())
            .map(|b| format!("would delete blob {} ({} bytes)", b.digest, b.size));
        job.log(manifests.chain(blobs)).await?;
        job.log([format!(
            "dry run: {} untagged manifests, {} blobs and {} bytes would be deleted",
            report.manifests.len(),
            report.blobs.len(),
            report.bytes
        )])
        .await?;
        Ok(Finished::Done)
    }
}

/// The log lines of what `step` deleted.
fn step_lines(step: &CollectionStep) -> Vec<String> {
    match step {
        CollectionStep::Manifests(deleted) => (deleted.iter())
            .map(|m| format!("deleted untagged manifest {}@{}", m.repository, m.digest))
            .collect(),
        CollectionStep::Swept { swept, failed } => (swept.iter())
            .map(|b| format!("deleted blob {} ({} bytes)", b.digest, b.size))
            .chain(failed.iter().map(|f| {
                format!(
                    "could not delete blob {}, kept for the next run: {}",
                    f.digest, f.error
                )
            }))
            .collect(),
        CollectionStep::Unlinked(_) | CollectionStep::Marked(_) | CollectionStep::Done => {
            Vec::new()
        }
    }
}

#[async_trait]
impl JobHandler for GarbageCollection {
    async fn run(&self, job: &JobContext) -> Result<Finished, HandlerError> {
        let parameters: CollectionParameters = serde_json::from_str(&job.payload)?;
        let options = self.options(&parameters);
        if options.dry_run {
            return self.dry_run(job, options).await;
        }
        let mut progress = match &job.progress {
            Some(saved) => {
                let progress: CollectionProgress = serde_json::from_str(saved)?;
                job.log([format!("resumed at the {:?} phase", progress.phase)])
                    .await?;
                progress
            }
            None => {
                let progress = self.registry.start_collection(&options);
                job.log([format!(
                    "started: collecting what is unreferenced since before {} (Unix ms)",
                    progress.before
                )])
                .await?;
                progress
            }
        };
        loop {
            let step = (self.registry)
                .collection_step(&mut progress, options.workers)
                .await?;
            let lines = step_lines(&step);
            if !lines.is_empty() {
                job.log(lines).await?;
            }
            let checkpoint = job.checkpoint(&serde_json::to_string(&progress)?).await?;
            let totals = progress.totals;
            let summary = format!(
                "{} untagged manifests, {} blob links, {} blobs and {} bytes deleted; \
                 {} blobs could not be deleted",
                totals.manifests, totals.links_removed, totals.blobs, totals.bytes, totals.failed
            );
            if step == CollectionStep::Done {
                job.log([format!("done: {summary}")]).await?;
                return Ok(Finished::Done);
            }
            if checkpoint == Checkpoint::StopRequested {
                job.log([format!("stopped on request: {summary}")]).await?;
                return Ok(Finished::Stopped);
            }
        }
    }
}

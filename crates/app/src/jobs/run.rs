//! One claimed job's run: the handler in a task of its own, heartbeats while it works,
//! and the end recorded with the lease.

use std::sync::Arc;
use std::time::Duration;

use berth_meta::{ClaimedJob, JobError, JobOutcome, JobStore, Lease};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::Clock;
use crate::jobs::handler::{Finished, HandlerError, JobContext, JobHandler};

/// What every run of a node shares.
#[derive(Clone)]
pub(super) struct RunEnv {
    pub store: Arc<dyn JobStore>,
    pub clock: Arc<dyn Clock>,
    /// How long a claim or heartbeat holds the job.
    pub lease: Duration,
    /// On shutdown, how long the handler may go on before its lease is released.
    pub shutdown_grace: Duration,
}

impl RunEnv {
    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A task that is aborted when this is dropped, so that a run dropped with its node
/// (the runner's task aborted, the process ending) stops its handler too.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    /// Aborts the task and waits until it is gone, so that nothing of it runs on once
    /// the lease is given up.
    async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why a run stopped without an outcome.
enum Interrupted {
    /// Another runner holds the job now.
    LeaseLost,
    /// The node is stopping and the grace period ran out.
    ShuttingDown,
}

/// Runs `job` with `handler` until it ends, its lease is lost, or the node stops
/// (`shutdown` flips) and the grace period passes; records what happened.
pub(super) async fn run(
    env: RunEnv,
    handler: Arc<dyn JobHandler>,
    job: ClaimedJob,
    shutdown: watch::Receiver<bool>,
) {
    let span =
        tracing::info_span!("job", id = job.lease.job, kind = %job.kind, attempt = job.attempt);
    run_and_record(env, handler, job, shutdown)
        .instrument(span)
        .await
}

async fn run_and_record(
    env: RunEnv,
    handler: Arc<dyn JobHandler>,
    job: ClaimedJob,
    shutdown: watch::Receiver<bool>,
) {
    let lease = job.lease.clone();
    let context = JobContext::claimed(job, env.store.clone(), env.clock.clone());
    let work = AbortOnDrop(tokio::spawn(
        async move { handler.run(&context).await }.in_current_span(),
    ));
    match supervise(&env, &lease, work, shutdown).await {
        Ok(outcome) => {
            match &outcome {
                JobOutcome::Failed { error } => tracing::warn!(error = %error, "job failed"),
                JobOutcome::Stopped => tracing::info!("job stopped as requested"),
                JobOutcome::Succeeded => {}
            }
            let now = env.clock.now_ms();
            match env.store.finish(&lease, &outcome, now).await {
                Ok(()) => {}
                Err(JobError::LeaseLost(_)) => {
                    tracing::warn!("job ended after another runner took it over")
                }
                Err(e) => tracing::warn!(error = %e, "recording the job's end failed"),
            }
        }
        Err(Interrupted::LeaseLost) => {
            tracing::warn!("another runner took the job over; stopped this run")
        }
        Err(Interrupted::ShuttingDown) => {
            match env.store.release(&lease, env.clock.now_ms()).await {
                Ok(()) => tracing::info!("stopping: gave the job back to the queue"),
                Err(e) => tracing::warn!(error = %e, "giving the job back failed"),
            }
        }
    }
}

/// Waits for the handler while heartbeating its lease.
async fn supervise(
    env: &RunEnv,
    lease: &Lease,
    mut work: AbortOnDrop<Result<Finished, HandlerError>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<JobOutcome, Interrupted> {
    let every = (env.lease / 3).max(Duration::from_millis(1));
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut grace_ends: Option<tokio::time::Instant> = None;
    if *shutdown.borrow() {
        grace_ends = Some(tokio::time::Instant::now() + env.shutdown_grace);
    }
    let interrupted = loop {
        let grace = async {
            match grace_ends {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = &mut work.0 => return Ok(match ended {
                Ok(Ok(Finished::Done)) => JobOutcome::Succeeded,
                Ok(Ok(Finished::Stopped)) => JobOutcome::Stopped,
                Ok(Err(e)) => JobOutcome::Failed { error: e.to_string() },
                Err(e) if e.is_panic() => JobOutcome::Failed { error: "the handler panicked".into() },
                Err(_) => JobOutcome::Failed { error: "the handler was cancelled".into() },
            }),
            _ = beat.tick() => {
                match env.store.heartbeat(lease, env.clock.now_ms(), env.lease_ms()).await {
                    Ok(_) => {}
                    Err(JobError::LeaseLost(_)) => break Interrupted::LeaseLost,
                    // The lease holds until it expires; the next beat tries again.
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
            _ = shutdown.changed(), if grace_ends.is_none() => {
                grace_ends = Some(tokio::time::Instant::now() + env.shutdown_grace);
            }
            () = grace => break Interrupted::ShuttingDown,
        }
    };
    work.stop().await;
    Err(interrupted)
}

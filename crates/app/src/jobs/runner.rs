//! A node's job runner: fires due schedules, claims due jobs, runs them a bounded
//! number at a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_meta::{JobSpec, JobStore, Period, RetryPolicy};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Clock;
use crate::jobs::handler::{HandlerError, JobHandler};
use crate::jobs::run::{self, RunEnv};
use crate::jobs::schedules::{self, Plan, Wanted};

/// How a node runs jobs.
#[derive(Debug, Clone, Copy)]
pub struct RunnerConfig {
    /// Jobs this node runs at once (at least one).
    pub workers: usize,
    /// How long a claim holds a job without a heartbeat; a job whose node died is taken
    /// over this long after its last heartbeat. Heartbeats come every third of it.
    pub lease: Duration,
    /// How often schedules and the queue are looked at.
    pub poll: Duration,
    /// On shutdown, how long running jobs may go on before they are given back.
    pub shutdown_grace: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            workers: 2,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Schedules kept beside the queue's own, fired at each poll of the runner: tag
/// retention's, one per policy, stored with the policy.
#[async_trait]
pub trait ScheduleSource: Send + Sync + 'static {
    /// Starts the work due at `now`, each firing once cluster-wide (as the queue's
    /// schedules do, with a compare-and-set on the fire time seen).
    async fn fire_due(&self, now: i64) -> Result<(), HandlerError>;
}

/// Runs this node's share of the cluster's jobs.
pub struct JobRunner {
    env: RunEnv,
    workers: usize,
    poll: Duration,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    plan: Plan,
    sources: Vec<Arc<dyn ScheduleSource>>,
}

impl JobRunner {
    /// A runner with no handlers yet.
    pub fn new(store: Arc<dyn JobStore>, clock: Arc<dyn Clock>, config: RunnerConfig) -> Self {
        JobRunner {
            env: RunEnv {
                store,
                clock,
                lease: config.lease.max(Duration::from_millis(3)),
                shutdown_grace: config.shutdown_grace,
            },
            workers: config.workers.max(1),
            poll: config.poll.max(Duration::from_millis(1)),
            handlers: HashMap::new(),
            plan: Plan::default(),
            sources: Vec::new(),
        }
    }

    /// Fires `source`'s schedules at each poll, beside the queue's own.
    pub fn fire_also(&mut self, source: Arc<dyn ScheduleSource>) -> &mut Self {
        self.sources.push(source);
        self
    }

    /// Runs the jobs of `kind` on this node with `handler`.
    pub fn handle(&mut self, kind: &str, handler: Arc<dyn JobHandler>) -> &mut Self {
        self.handlers.insert(kind.to_owned(), handler);
        self
    }

    /// Keeps the schedule `name` in the store, firing `spec` every `period` once
    /// cluster-wide (when new, first at start on an interval, at its first matching time
    /// for a cron).
    pub fn schedule(&mut self, name: &str, spec: JobSpec, period: Period) -> &mut Self {
        self.plan.wanted.push(Wanted {
            name: name.to_owned(),
            spec,
            period,
        });
        self
    }

    /// Deletes the schedule `name` from the store at start, if it is there.
    pub fn unschedule(&mut self, name: &str) -> &mut Self {
        self.plan.retired.push(name.to_owned());
        self
    }

    /// Runs `handler` every `every`: a schedule named after `kind`, whose jobs carry an
    /// empty payload and the default retry policy, and the handler of its jobs.
    pub fn recurring(
        &mut self,
        kind: &str,
        every: Duration,
        handler: Arc<dyn JobHandler>,
    ) -> &mut Self {
        let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
        let spec = JobSpec {
            kind: kind.to_owned(),
            payload: "{}".into(),
            retry: RetryPolicy::default(),
        };
        self.handle(kind, handler)
            .schedule(kind, spec, Period::EveryMs(every_ms))
    }

    /// Runs until `shutdown` flips (or its sender is dropped), then lets running jobs
    /// finish for the grace period and gives back those that did not.
    ///
    /// Dropping the future instead stops everything at once, leases held: as when the
    /// process dies, other nodes take the jobs over when the leases expire.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let kinds: Vec<String> = self.handlers.keys().cloned().collect();
        let store = &*self.env.store;
        let mut running = JoinSet::new();
        let mut planned = false;
        let mut poll = tokio::time::interval(self.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !*shutdown.borrow() {
            tokio::select! {
                _ = poll.tick() => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = shutdown.changed() => break,
            }
            let now = self.env.clock.now_ms();
            if !planned {
                match self.plan.apply(store, now).await {
                    Ok(()) => planned = true,
                    Err(e) => tracing::warn!(error = %e, "storing the schedules failed"),
                }
            }
            if let Err(e) = schedules::fire_due(store, now).await {
                tracing::warn!(error = %e, "firing due schedules failed");
            }
            for source in &self.sources {
                if let Err(e) = source.fire_due(now).await {
                    tracing::warn!(error = %e, "firing due schedules failed");
                }
            }
            while running.len() < self.workers {
                let claimed = store
                    .claim(&kinds, self.env.clock.now_ms(), self.env.lease_ms())
                    .await;
                let job = match claimed {
                    Ok(Some(job)) => job,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming a job failed");
                        break;
                    }
                };
                let Some(handler) = self.handlers.get(&job.kind).cloned() else {
                    // Only a store breaking its contract hands out a kind not asked for.
                    tracing::error!(kind = %job.kind, "claimed a job of a kind not asked for");
                    let _ = store.release(&job.lease, self.env.clock.now_ms()).await;
                    break;
                };
                running.spawn(run::run(self.env.clone(), handler, job, shutdown.clone()));
            }
        }
        while running.join_next().await.is_some() {}
    }
}

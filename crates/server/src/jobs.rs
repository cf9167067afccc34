//! The node's job runner, with the registry's recurring work on it.

use std::sync::Arc;
use std::time::Duration;

use berth_app::Registry;
use berth_app::identity::Identity;
use berth_app::jobs::{
    AuditRetention, GarbageCollection, JobHistory, JobRunner, RetentionSchedules, TagRetention,
    UploadPurge,
};
use berth_meta::JobStore;

use crate::config::Config;

/// How often audit entries past their retention are looked for.
const AUDIT_RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// How often ended jobs past the history's length are looked for.
const JOB_HISTORY_INTERVAL: Duration = Duration::from_secs(3600);

/// A runner for this node, handling and scheduling the upload purge, the job history
/// and (when configured) audit retention, handling garbage collection (scheduled
/// through Harbor's `/system/gc/schedule`) and tag retention's executions, and firing
/// the retention policies' schedules; audit retention turned off is unscheduled.
pub fn runner(
    config: &Config,
    store: Arc<dyn JobStore>,
    registry: Arc<Registry>,
    identity: &Arc<Identity>,
) -> JobRunner {
    let clock = identity.clock.clone();
    let mut runner = JobRunner::new(store.clone(), clock.clone(), config.jobs.runner());
    runner
        .handle(
            GarbageCollection::KIND,
            Arc::new(GarbageCollection {
                registry: registry.clone(),
                grace: config.gc.grace_period,
            }),
        )
        .handle(
            TagRetention::KIND,
            Arc::new(TagRetention {
                registry: registry.clone(),
                identity: identity.clone(),
            }),
        )
        .fire_also(Arc::new(RetentionSchedules {
            registry: registry.clone(),
        }))
        .recurring(
            UploadPurge::KIND,
            config.upload_purge_interval(),
            Arc::new(UploadPurge(registry)),
        )
        .recurring(
            JobHistory::KIND,
            JOB_HISTORY_INTERVAL,
            Arc::new(JobHistory {
                store,
                keep: config.jobs.history(),
                clock: clock.clone(),
            }),
        );
    match config.audit.retention() {
        Some(keep) => runner.recurring(
            AuditRetention::KIND,
            AUDIT_RETENTION_INTERVAL,
            Arc::new(AuditRetention {
                store: identity.stores.audit.clone(),
                keep,
                clock,
            }),
        ),
        None => runner.unschedule(AuditRetention::KIND),
    };
    runner
}

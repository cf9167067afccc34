//! Running a test registry's background jobs: a job runner polling often, with the
//! handlers a test registers.

use std::sync::Arc;
use std::time::Duration;

use berth_app::Clock;
use berth_app::jobs::{JobRunner, RetentionSchedules, RunnerConfig, TagRetention};
use tokio::sync::watch;

use super::TestRegistry;

/// Runs `reg`'s jobs of the kinds `register` adds handlers for, on `clock`, until the
/// returned sender is dropped.
pub fn job_runner(
    reg: &TestRegistry,
    clock: Arc<dyn Clock>,
    register: impl FnOnce(&mut JobRunner),
) -> watch::Sender<bool> {
    let mut runner = JobRunner::new(
        reg.jobs.clone(),
        clock,
        RunnerConfig {
            workers: 1,
            lease: Duration::from_secs(5),
            poll: Duration::from_millis(20),
            shutdown_grace: Duration::from_millis(100),
        },
    );
    register(&mut runner);
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(runner.run(stopped));
    stop
}

/// Registers tag retention's executions and the firing of its policies' schedules.
pub fn retention_jobs(reg: &TestRegistry, runner: &mut JobRunner) {
    runner
        .handle(
            TagRetention::KIND,
            Arc::new(TagRetention {
                registry: reg.registry.clone(),
                identity: reg.identity.clone(),
            }),
        )
        .fire_also(Arc::new(RetentionSchedules {
            registry: reg.registry.clone(),
        }));
}

//! Background work of the cluster, run from the durable job queue (`berth_meta::JobStore`).
//!
//! Every node runs a [`JobRunner`]: it fires the schedules that are due (each once
//! cluster-wide, whichever node gets there first), claims due jobs of the kinds it has
//! handlers for, and runs each under a lease it heartbeats, a bounded number at a time.
//! A node that dies leaves its leases to expire; another node then takes its jobs over,
//! and the new run resumes from the last checkpoint the old one saved. A run stops early
//! when a checkpoint answers that a stop was requested.
//! The queue is the one mechanism for background work: maintenance (the upload purge,
//! audit retention, the job history), garbage collection, tag retention and every later
//! kind of job.

mod collection;
mod control;
mod handler;
mod maintenance;
mod retention;
mod run;
mod runner;
mod schedules;

pub use collection::{CollectionParameters, GarbageCollection, Trigger};
pub use control::JobControl;
pub use handler::{Finished, HandlerError, JobContext, JobHandler};
pub use maintenance::{AuditRetention, JobHistory, UploadPurge};
pub use retention::{
    KEPT_EXECUTIONS, RetentionSchedules, SCHEDULE_OPERATOR, TRIGGER_MANUAL, TRIGGER_SCHEDULE,
    TagRetention,
};
pub use runner::{JobRunner, RunnerConfig, ScheduleSource};

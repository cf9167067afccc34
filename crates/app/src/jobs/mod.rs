//! Background work of the cluster, run from the durable job queue (`berth_meta::JobStore`).
//!
//! Every node runs a [`JobRunner`]: it fires the schedules that are due (each once
//! cluster-wide, whichever node gets there first), claims due jobs of the kinds it has
//! handlers for, and runs each under a lease it heartbeats, a bounded number at a time.
//! A node that dies leaves its leases to expire; another node then takes its jobs over.
//! The queue is the one mechanism for background work: maintenance (the upload purge,
//! audit retention, the job history) and every later kind of job.

mod handler;
mod maintenance;
mod run;
mod runner;
mod schedules;

pub use handler::{HandlerError, JobContext, JobHandler};
pub use maintenance::{AuditRetention, JobHistory, UploadPurge};
pub use runner::{JobRunner, RunnerConfig};
